"""`paddles migrate`: create or upgrade the schema to the newest revision (no-op if current)."""
from __future__ import annotations

import sys

from .. import migrations


def register(sub):
    parser = sub.add_parser("migrate", help="create or upgrade the database schema",
                            description=__doc__)
    parser.add_argument("--revision", default="head", help="target revision (default: head)")
    return parser


def run(args, settings) -> int:
    print(f"migrating {_redact(settings.database_url)} to {args.revision}", file=sys.stderr)
    migrations.upgrade(settings.database_url, args.revision)
    print("schema is current", file=sys.stderr)
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    return make_url(url).render_as_string(hide_password=True)
