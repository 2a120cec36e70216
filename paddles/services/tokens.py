"""API tokens and their roles: creating, listing, revoking, and recognising a secret.

Role model (SECURITY.md):
- `read`: every GET/HEAD route except webhook subscriptions;
- `write`: reporting: runs, jobs, artifacts, message events, queues;
- `lock`: nodes: create, update, lock and unlock;
- `admin`: deletes, webhook subscriptions and everything the other roles may do.
`admin` implies every role; the other three are independent (a reporting token need not
read), and a token holds any set of them. Which role each route needs is RULES, the access
policy of the route table (paddles/routes.py).

A secret is `pdl_` plus 43 URL-safe characters (256 random bits), so it fits in a URL's
user-info (`http://user:SECRET@host/`) unescaped. Only its sha256 is stored: the secret is
shown once, by `paddles token create`, and cannot be recovered.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ..errors import AlreadyExists, InvalidRequest, NotFound
from ..models import ApiToken, utcnow
from .common import add_if_new

READ, WRITE, LOCK, ADMIN = "read", "write", "lock", "admin"
ROLES = (READ, WRITE, LOCK, ADMIN)
SECRET_PREFIX = "pdl_"
PREFIX_CHARS = 12  # what listings show of a secret: "pdl_" and 8 random characters
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")


class TokenNotFound(NotFound):
    pass


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token's name, roles and (optional) node-lock owner."""

    name: str
    roles: frozenset[str]
    owner: str | None = None

    def has(self, role: str) -> bool:
        return role in self.roles or ADMIN in self.roles


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def parse_roles(roles: Iterable[str]) -> list[str]:
    """Known roles, each once, in the canonical order; at least one."""
    given = {r.strip().lower() for r in roles if r and r.strip()}
    unknown = sorted(given - set(ROLES))
    if unknown:
        raise InvalidRequest(f"unknown role {unknown[0]!r}; roles are: {', '.join(ROLES)}")
    if not given:
        raise InvalidRequest("a token needs at least one role: " + ", ".join(ROLES))
    return [r for r in ROLES if r in given]


def create_token(session: Session, name: str, roles: Iterable[str],
                 owner: str | None = None,
                 expires_in: dt.timedelta | None = None) -> tuple[ApiToken, str]:
    """A new token and its secret (the only time the secret exists outside the client);
    with `expires_in` it is refused once that time has passed."""
    if not _NAME.fullmatch(name or ""):
        raise InvalidRequest("a token name is 1-128 characters: letters, digits and . _ @ : + -"
                             ", starting with a letter or digit")
    if owner is not None and not (0 < len(owner) <= 64):
        raise InvalidRequest("owner must be 1-64 characters (a node's locked_by value)")
    if expires_in is not None and expires_in <= dt.timedelta(0):
        raise InvalidRequest("a token's lifetime must be positive")
    secret = new_secret()
    now = utcnow()
    token = ApiToken(name=name, secret_sha256=digest(secret), prefix=secret[:PREFIX_CHARS],
                     roles=parse_roles(roles), owner=owner, created=now,
                     expires=None if expires_in is None else now + expires_in)
    if not add_if_new(session, token):
        raise AlreadyExists(f"token with name {name} already exists")
    return token, secret


def list_tokens(session: Session, *, live_only: bool = False) -> list[ApiToken]:
    """Every token by id; `live_only`: those neither revoked nor expired."""
    stmt = select(ApiToken).order_by(ApiToken.id)
    if live_only:
        stmt = stmt.where(ApiToken.revoked.is_(None),
                          or_(ApiToken.expires.is_(None), ApiToken.expires > utcnow()))
    return list(session.scalars(stmt))


def revoke_token(session: Session, name: str) -> tuple[ApiToken, bool]:
    """Revoke by name (or `#ID`); True when it was live until now. Takes effect on the next
    request: every request looks its token up."""
    if name.startswith("#") and name[1:].isdigit():
        stmt = select(ApiToken).where(ApiToken.id == int(name[1:]))
    else:
        stmt = select(ApiToken).where(ApiToken.name == name)
    token = session.scalar(stmt.with_for_update())
    if token is None:
        raise TokenNotFound(f"no token named {name}")
    if token.revoked is not None:
        return token, False
    token.revoked = utcnow()
    return token, True


def authenticate(session: Session, secret: str) -> Principal | None:
    """The principal a secret stands for; None when it is unknown, revoked or expired."""
    row = session.execute(select(ApiToken.name, ApiToken.roles, ApiToken.owner,
                                 ApiToken.revoked, ApiToken.expires)
                          .where(ApiToken.secret_sha256 == digest(secret))).first()
    if row is None or not _live(row.revoked, row.expires):
        return None
    return Principal(row.name, frozenset(row.roles or ()), row.owner)


def is_live(session: Session, name: str) -> bool:
    """Whether the token named `name` is still good: not revoked, not expired. For what
    outlives the request it authenticated (an event stream)."""
    row = session.execute(select(ApiToken.revoked, ApiToken.expires)
                          .where(ApiToken.name == name)).first()
    return row is not None and _live(row.revoked, row.expires)


def _live(revoked: dt.datetime | None, expires: dt.datetime | None) -> bool:
    return revoked is None and (expires is None or expires > utcnow())


def acting_owner(principal: Principal | None) -> str | None:
    """The only locked_by value this principal may lock and unlock nodes as, or None for
    no restriction (auth off, anonymous, a token without owner, an admin token)."""
    if principal is None or principal.owner is None or principal.has(ADMIN):
        return None
    return principal.owner
