"""`paddles migrate`: create or upgrade the schema to the newest revision (no-op if current)."""
from __future__ import annotations

import sys

from .. import migrations
from ..settings import redact_url


def register(sub):
    parser = sub.add_parser("migrate", help="create or upgrade the database schema",
                            description=__doc__)
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    return parser


def run(args, settings) -> int:
    print(f"migrating {redact_url(settings.database_url)} to {args.revision}", file=sys.stderr)
    migrations.upgrade(settings.database_url, args.revision, verbose=True)
    print("schema is current", file=sys.stderr)
    return 0
