"""`paddles token`: API tokens for the HTTP API when authentication is on (SECURITY.md).

  paddles token create --name N --role R [--role R2 ...] [--owner LOCKED_BY]
                       [--expires-in AGE]
  paddles token list [--json] [--all]
  paddles token revoke NAME

Roles: read (GET routes), write (runs, jobs, artifacts, message events, queues), lock
(node inventory, lock and unlock), admin (deletes, webhook subscriptions; implies all the
others). A token with --owner may lock and unlock nodes only as that `locked_by` value
(e.g. scheduled_teuthology@teuthology), unless it is an admin token.

`create` prints the secret once on stdout; only its sha256 is stored, so keep it then.
A teuthology host uses it as the password of its results_server and lock_server URLs:
    results_server: http://teuthology:SECRET@paddles.example.com/
`revoke` takes effect on the next request, as does expiry (--expires-in 90d; units s, m,
h, d, w). Revoked and expired tokens stay listed with --all.
"""
from __future__ import annotations

import json
import sys

from ..services import tokens
from ._common import note, transaction
from .purge import age


def register(sub):
    parser = sub.add_parser("token", help="create, list and revoke API tokens",
                            description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    create = actions.add_parser("create", help="make a token and print its secret once",
                                description="Make a token and print its secret (once) "
                                            "on stdout.")
    create.add_argument("--name", required=True, help="unique name (who or what uses it)")
    create.add_argument("--role", action="append", required=True, choices=tokens.ROLES,
                        dest="roles", help="a role; repeat for several")
    create.add_argument("--owner", help="the only locked_by value it may lock nodes as")
    create.add_argument("--expires-in", type=age, metavar="AGE",
                        help="refuse the token after this long (90d, 12h); default: never")
    listing = actions.add_parser("list", help="list tokens (never their secrets)",
                                 description="List live tokens: name, roles, owner, the "
                                             "secret's first characters, created, expires.")
    listing.add_argument("--all", action="store_true",
                         help="include revoked and expired tokens")
    listing.add_argument("--json", action="store_true", help="JSON instead of a table")
    revoke = actions.add_parser("revoke", help="revoke a token (next request: 401)",
                                description="Revoke a token by name (or #ID).")
    revoke.add_argument("name", metavar="NAME", help="the token's name, or #ID")
    return parser


def run(args, settings) -> int:
    return {"create": _create, "list": _list, "revoke": _revoke}[args.action](args, settings)


def _create(args, settings) -> int:
    with transaction(settings) as session:
        token, secret = tokens.create_token(session, args.name, args.roles, args.owner,
                                            args.expires_in)
        expires = token.expires
        roles = ",".join(token.roles)
    print(secret)
    note(f"created token {args.name} (roles {roles}"
         + (f", owner {args.owner}" if args.owner else "")
         + (f", expires {expires:%Y-%m-%d %H:%M:%S} UTC" if expires else "")
         + "); the secret above is not "
         "stored and will not be shown again")
    if not settings.auth_enabled:
        note("note: authentication is off; set PADDLES_AUTH_ENABLED=1 to require tokens")
    return 0


def _row(token) -> dict:
    def when(value):
        return value.strftime("%Y-%m-%d %H:%M:%S") if value else None

    return {"id": token.id, "name": token.name, "roles": list(token.roles),
            "owner": token.owner, "prefix": token.prefix, "created": when(token.created),
            "expires": when(token.expires), "revoked": when(token.revoked)}


def _list(args, settings) -> int:
    with transaction(settings, write=False) as session:
        rows = [_row(t) for t in tokens.list_tokens(session, live_only=not args.all)]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    columns = ("id", "name", "roles", "owner", "prefix", "created", "expires") + (
        ("revoked",) if args.all else ())
    table = [[str(r["id"]), r["name"], ",".join(r["roles"]), r["owner"] or "-",
              r["prefix"] + "...", r["created"], r["expires"] or "never"]
             + ([r["revoked"] or "-"] if args.all else []) for r in rows]
    widths = [max([len(c)] + [len(line[i]) for line in table]) for i, c in enumerate(columns)]
    for line in [list(columns)] + table:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    note(f"{len(rows)} token(s)")
    return 0


def _revoke(args, settings) -> int:
    with transaction(settings) as session:
        token, was_live = tokens.revoke_token(session, args.name)
        name = token.name
    note(f"revoked token {name}" if was_live else f"token {name} was already revoked")
    return 0
