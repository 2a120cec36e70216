"""Artifact paths, kinds, upload media types and test-case statuses (extras 1)."""
from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidRequest
from ..models.artifacts import ARTIFACT_KINDS, TEST_STATUS_VALUES


MAX_ARTIFACT_NAME_BYTES = 1024
_SEPARATORS = re.compile(r"[/\\]")


def parse_artifact_name(name: str | None) -> str:
    """An artifact PATH: relative, `/`-separated, no `.`/`..` segments, NUL or control chars."""
    if not name:
        raise InvalidRequest("artifact path is empty")
    if "\x00" in name:
        raise InvalidRequest("artifact path must not contain NUL")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("artifact path must not contain control characters")
    if name[0] in "/\\" or re.match(r"[A-Za-z]:[/\\]", name):
        raise InvalidRequest("artifact path must be relative")
    segments = _SEPARATORS.split(name)
    if any(s in (".", "..") for s in segments):
        raise InvalidRequest("artifact path must not contain '.' or '..' segments")
    if "" in segments:
        raise InvalidRequest("artifact path must not contain empty segments")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_ARTIFACT_NAME_BYTES:
        raise InvalidRequest(f"artifact path is longer than {MAX_ARTIFACT_NAME_BYTES} bytes")
    return name


def parse_artifact_path(segments: Iterable[str]) -> str:
    return parse_artifact_name("/".join(segments))


_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+"
                         r"(\s*;[\x20-\x7e]*)?")


def parse_content_type(value: str | None) -> str | None:
    """An upload's Content-Type, stored and sent back as a header: a media type in printable
    ASCII (a control character in it made the download's response invalid)."""
    if value is None or value.strip() == "":
        return None
    if not _MEDIA_TYPE.fullmatch(value.strip()):
        raise InvalidRequest("Content-Type must be a media type such as text/plain")
    return value.strip()


def parse_artifact_kind(value: str | None) -> str | None:
    """`?kind=`: one of ARTIFACT_KINDS, or None to detect it from the content."""
    if value in (None, ""):
        return None
    if value not in ARTIFACT_KINDS:
        raise InvalidRequest("kind must be one of " + ", ".join(ARTIFACT_KINDS))
    return value


def parse_test_status(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in TEST_STATUS_VALUES:
        raise InvalidRequest("status must be one of " + ", ".join(TEST_STATUS_VALUES))
    return value
