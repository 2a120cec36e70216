"""Run-name parsing (spec section 7): four patterns tried in order, first match wins."""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

_TS = r"[0-9]{1,4}-[0-9]{1,2}-[0-9]{1,2}_[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}"
_KNOWN_SUITES = (
    "big", "ceph-deploy", "clusters", "dummy", "experimental", "fs", "hadoop", "iozone",
    "kcephfs", "knfs", "krbd", "marginal", "mixed-clients", "mount", "multimds", "nfs",
    "powercycle", "rados", "rbd", "rest", "rgw", "samba", "smoke", "stress", "tgt",
    "upgrade:dumpling-x:stress-split", "upgrade:dumpling-x", "upgrade:dumpling-emperor-x",
    "upgrade-cuttlefish", "upgrade-dumpling", "upgrade-fs", "upgrade-mixed-cluster",
    "upgrade-mixed-mons", "upgrade-parallel", "upgrade-rados-double", "upgrade-rados",
    "upgrade-rbd-double", "upgrade-rbd", "upgrade-rgw-double", "upgrade-rgw", "upgrade-small",
    "upgrade", "workload",
)
_SUITES = "(" + "|".join(re.escape(s) + "[^-]*" for s in _KNOWN_SUITES) + ")"
_MTYPES = "burnupi|mira|plana|saya|tala|vps"
_DISTROS = "centos|debian|fedora|opensuse|rhel|suse|ubuntu"
_HEAD = (rf"(?P<user>.*)-(?P<scheduled>{_TS})-(?P<suite>{_SUITES})-(?P<branch>.+)"
         rf"-(?P<kernel_branch>.+)-(?P<flavor>[^-]+)")
_PATTERNS = (
    re.compile(rf"{_HEAD}-(?P<machine_type>{_MTYPES})-(?P<distro>({_DISTROS}))$"),
    re.compile(rf"{_HEAD}-(?P<machine_type>{_MTYPES})$"),
    re.compile(rf"{_HEAD}$"),
    re.compile(rf"(?P<user>.*)-(?P<scheduled>{_TS})-(?P<suite>.*)-(?P<branch>.*)-.*?-.*?-(?P<machine_type>.*?)"),
)


@dataclasses.dataclass(frozen=True)
class ParsedName:
    user: str = ""
    scheduled: dt.datetime | None = None  # aware UTC; None when the name has no valid timestamp
    suite: str = ""
    branch: str = ""
    machine_type: str = ""


def parse_run_name(name: str, timezone: str = "UTC") -> ParsedName:
    for pattern in _PATTERNS:
        match = pattern.match(name)
        if match is None:
            continue
        groups = {k: (v or "").strip(" -") for k, v in match.groupdict().items()}
        try:
            local = dt.datetime.strptime(groups["scheduled"], "%Y-%m-%d_%H:%M:%S")
            scheduled = local.replace(tzinfo=ZoneInfo(timezone)).astimezone(dt.UTC)
        except (ValueError, OverflowError):
            # matches TS but is no real date (or none UTC can hold): all defaults
            return ParsedName()
        return ParsedName(user=groups["user"], scheduled=scheduled, suite=groups["suite"],
                          branch=groups["branch"], machine_type=groups.get("machine_type", ""))
    return ParsedName()
