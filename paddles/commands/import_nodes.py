"""`paddles import-nodes`: create (and with --update, update) nodes from a YAML or JSON file.

FILE (`-` for standard input) holds either a list of node objects, each with a `name`, or
a mapping of node name to its attributes (null for none). Attributes are the updatable node
keys: arch, description, os_type, os_version, is_vm, locked, locked_by, locked_since,
mac_address, machine_type, ssh_pub_key, up, vm_host (the name of a node in the database or
in the file). Values are checked as a node PUT checks them; other keys are ignored and
reported. Nodes that already exist are left alone unless --update is given, which rewrites
the keys the file gives for them. Lock rules are the API's: a node created locked needs
locked_by, and an update that changes `locked` passes the lock checks (unlocking needs the
owner's locked_by); a `locked` equal to the stored one is no change. A `locked_since` in the
file is kept as given. The whole file is one transaction: on any error nothing is stored
and the exit code is 1.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import InvalidRequest
from ..services import nodes as node_service
from ._common import Progress, add_dry_run, dry_run_note, note, transaction


def register(sub):
    parser = sub.add_parser("import-nodes", help="create/update nodes from a YAML or JSON file",
                            description=__doc__)
    parser.add_argument("file", metavar="FILE", help="YAML or JSON file, or - for stdin")
    parser.add_argument("--update", action="store_true",
                        help="also rewrite the given keys of nodes that already exist")
    add_dry_run(parser)
    return parser


def load_file(path: str):
    """JSON for *.json, YAML otherwise (YAML also reads JSON)."""
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    if path.endswith(".json"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidRequest(f"{path}: not valid JSON: {exc}") from None
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidRequest(f"{path}: not valid YAML: {exc}") from None


def run(args, settings) -> int:
    records = node_service.normalise_node_records(load_file(args.file))
    with transaction(settings, dry_run=args.dry_run) as session:
        report = node_service.import_nodes(session, records, update=args.update,
                                           progress=Progress("import-nodes: nodes"))
    would = "would be " if args.dry_run else ""
    for label, names in (("created", report.created), ("updated", report.updated)):
        for name in names:
            print(f"{label}: {name}")
    for key, names in sorted(report.ignored_keys.items()):
        note(f"ignored unknown key {key!r} (on {len(names)} node(s))")
    note(f"{len(records)} node(s) in file: {len(report.created)} {would}created, "
         f"{len(report.updated)} {would}updated, {len(report.unchanged)} unchanged, "
         f"{len(report.skipped)} already present (not updated without --update)")
    dry_run_note(args)
    return 0
