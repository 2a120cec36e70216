"""`paddles token create|list|revoke`, and that what it makes works against the API."""
from __future__ import annotations

import dataclasses

import pytest
import webtest

from paddles.app import make_app
from paddles.commands import main


def _auth_app(settings, session_factory):
    return webtest.TestApp(make_app(dataclasses.replace(settings, auth_enabled=True),
                                    session_factory=session_factory))


def test_create_list_revoke(cli, settings, session_factory):
    made = cli("token", "create", "--name", "teuthology", "--role", "read", "--role", "write",
               "--role", "lock", "--owner", "scheduled_teuthology@teuthology")
    secret = made.out.strip()
    assert secret.startswith("pdl_") and len(made.lines) == 1  # stdout: the secret only
    assert "will not be shown again" in made.err

    listed = cli("token", "list")
    assert listed.lines[0].split() == ["id", "name", "roles", "owner", "prefix", "created",
                                       "expires"]
    row = listed.lines[1].split()
    assert row[1:5] == ["teuthology", "read,write,lock", "scheduled_teuthology@teuthology",
                        secret[:12] + "..."]
    assert secret not in listed.out
    (entry,) = cli("token", "list", "--json").json()
    assert entry["roles"] == ["read", "write", "lock"] and entry["revoked"] is None

    app = _auth_app(settings, session_factory)
    app.get("/runs/", headers={"Authorization": f"Bearer {secret}"}, status=200)
    cli("token", "revoke", "teuthology")
    app.get("/runs/", headers={"Authorization": f"Bearer {secret}"}, status=401)
    assert cli("token", "list").lines[1:] == []
    (entry,) = cli("token", "list", "--all", "--json").json()
    assert entry["revoked"] is not None
    assert "already revoked" in cli("token", "revoke", f"#{entry['id']}").err


def test_create_errors(cli):
    cli("token", "create", "--name", "ci", "--role", "read")
    assert "already exists" in cli("token", "create", "--name", "ci", "--role", "admin",
                                   expect=1).err
    assert "a token name" in cli("token", "create", "--name", "no spaces", "--role", "read",
                                 expect=1).err
    assert "no token named ghost" in cli("token", "revoke", "ghost", expect=1).err


@pytest.mark.parametrize("argv", [
    ["token", "create", "--name", "x"],  # no role
    ["token", "create", "--name", "x", "--role", "root"],
    ["token"],
])
def test_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


@pytest.mark.parametrize("action", ["create", "list", "revoke"])
def test_every_action_has_help(action, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["token", action, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: paddles token {action}")


def test_expiring_token(cli, settings, session_factory):
    from sqlalchemy import update

    from paddles.models import ApiToken, utcnow

    made = cli("token", "create", "--name", "short", "--role", "read", "--expires-in", "1h")
    assert ", expires 20" in made.err
    secret = made.out.strip()
    app = _auth_app(settings, session_factory)
    app.get("/runs/", headers={"Auth-Token": secret}, status=200)
    with session_factory.begin() as session:  # an hour later
        session.execute(update(ApiToken).values(expires=utcnow()))
    app.get("/runs/", headers={"Auth-Token": secret}, status=401)
    assert cli("token", "list").lines[1:] == []
    (entry,) = cli("token", "list", "--all", "--json").json()
    assert entry["expires"] is not None and entry["revoked"] is None
    with pytest.raises(SystemExit) as exit_:
        main(["token", "create", "--name", "x", "--role", "read", "--expires-in", "soon"])
    assert exit_.value.code == 2
