"""`paddles purge --events-older-than AGE`: old events go, with their webhook deliveries."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import func, select, update

from paddles.commands import main
from paddles.models import Delivery, Event
from paddles.services import webhooks


@pytest.fixture
def purge(settings, db_engine, monkeypatch, capsys):
    monkeypatch.setenv("PADDLES_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PADDLES_DATA_DIR", settings.data_dir)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)

    def run(*argv, expect=0):
        capsys.readouterr()
        try:
            code = main(["purge", *argv])
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == expect, err
        return err
    return run


def _count(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_old_events_and_their_deliveries_go(app, settings, session_factory, purge):
    app.post("/subscriptions/", json.dumps({"url": "http://x.test/"}), status=201)
    ids = [app.post("/events/", json.dumps({"message": i}), status=201).json["id"]
           for i in range(5)]
    with session_factory.begin() as session:
        webhooks.fan_out(session, settings)
        session.execute(update(Event).where(Event.id.in_(ids[:3])).values(
            time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=100)))
    assert _count(session_factory, Delivery) == 5

    err = purge("--events-older-than", "90d", "--dry-run")
    assert "would delete 3 event(s)" in err and "dry run: nothing was changed" in err
    assert _count(session_factory, Event) == 5

    assert "deleted 3 event(s)" in purge("--events-older-than", "90d")
    with session_factory() as session:
        assert list(session.scalars(select(Event.id).order_by(Event.id))) == ids[3:]
        assert sorted(session.scalars(select(Delivery.event_id))) == ids[3:]
    assert "deleted 0 event(s)" in purge("--events-older-than", "90d")
    with session_factory.begin() as session:
        session.execute(update(Event).values(
            time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=100)))
    assert "deleted 2 event(s)" in purge("--events-older-than", "90d")
    # even with every event gone, ids are never handed out again (a client may hold one as
    # its Last-Event-ID): SQLite's AUTOINCREMENT, PostgreSQL's sequence
    assert app.post("/events/", json.dumps({"message": "next"}), status=201).json["id"] \
        == ids[-1] + 1


def test_both_retentions_at_once(purge):
    err = purge("--events-older-than", "90d", "--artifacts-older-than", "30d")
    assert "deleted 0 event(s)" in err and "deleted 0 artifact(s)" in err


@pytest.mark.parametrize("argv", [["--events-older-than", "90"], []])
def test_bad_command_lines_exit_2(purge, argv):
    purge(*argv, expect=2)
