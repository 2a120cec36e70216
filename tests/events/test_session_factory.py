"""The services' session listeners (events at commit, run versions at flush) and the event
topic prefix belong to the session factories paddles builds, not to the process: two apps
in one process keep their own prefixes, and a Session made otherwise is left alone."""
from __future__ import annotations

import json

import webtest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from paddles.app import make_app
from paddles.db import make_session_factory, reading, with_topic_prefix
from paddles.models import Event, Run
from paddles.services import events as event_service
from paddles.services import runs as run_service
from tests.events.conftest import new_events
from tests.factories import post_job, run_name

LISTENERS = [("before_flush", run_service.bump_run_versions),
             ("before_commit", event_service._flush_on_commit),
             ("after_transaction_end", event_service._forget_on_end)]


def _app(settings, session_factory, prefix):
    return webtest.TestApp(make_app(settings.__class__(**{
        **settings.__dict__, "event_topic_prefix": prefix}), session_factory=session_factory))


def test_two_apps_in_one_process_keep_their_own_topic_prefix(settings, session_factory):
    first = _app(settings, session_factory, "org.first")
    second = _app(settings, session_factory, "org.second.")  # dots at the ends dropped
    post_job(first, run_name(), "1")
    assert {e["topic"] for e in new_events(first)} == {"org.first.run", "org.first.job"}
    since = max(e["id"] for e in new_events(first))
    post_job(second, run_name(), "1")
    assert {e["topic"] for e in new_events(second, since)} == {"org.second.run",
                                                               "org.second.job"}
    # and an app built after them with the default leaves both as they are
    _app(settings, session_factory, "org.paddles")
    since = max(e["id"] for e in new_events(first))
    post_job(first, run_name(), "1")
    assert {e["topic"] for e in new_events(first, since)} == {"org.first.run",
                                                              "org.first.job"}


def test_message_topics_follow_the_prefix(settings, session_factory):
    app = _app(settings, session_factory, "org.lab")
    app.post("/events/", json.dumps({"message": "hello", "topic": "shell"}))
    assert [e["topic"] for e in new_events(app)] == ["org.lab.message.shell"]


def test_a_session_made_otherwise_records_nothing_at_commit(db_engine):
    """No listener on the Session class: a Session not from paddles' factory commits what it
    was told to, and the services' listeners do not run for it."""
    for name, listener in LISTENERS:
        assert not event.contains(Session, name, listener), f"{name} listener on Session"
    with Session(bind=db_engine) as session:
        event_service.record_event(session, "message", {"message": 1}, subject="events")
        session.commit()
    with make_session_factory(db_engine)() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0


def test_every_factory_paddles_builds_has_the_listeners(db_engine):
    """make_session_factory (the app's, the commands', the tests' fixtures), a factory the
    app is given (with_topic_prefix), and the read-only sessions made from either
    (db.reading: autocommit on PostgreSQL, so only their listeners are looked at)."""
    base = make_session_factory(db_engine, topic_prefix="org.made")
    given = with_topic_prefix(base, "org.given")
    for factory in (base, given, reading(base), reading(given)):
        for name, listener in LISTENERS:
            assert event.contains(factory, name, listener), name
    for factory in (base, given):
        with factory() as session:
            event_service.record_event(session, "message", {"message": 1}, subject="events")
            session.commit()
    with base() as session:
        topics = session.scalars(select(Event.topic).order_by(Event.id)).all()
    assert topics == ["org.made.message", "org.given.message"]
    assert reading(given)().info[event_service.TOPIC_PREFIX] == "org.given"


def test_run_versions_move_in_paddles_sessions_only(settings, session_factory):
    app = _app(settings, session_factory, "org.paddles")
    name = run_name()
    post_job(app, name, "1")
    with session_factory() as session:
        run = session.scalars(select(Run).where(Run.name == name)).one()
        version = run.version
        run.suite = "other"
        session.commit()
        assert run.version == version + 1
    with Session(bind=session_factory.kw["bind"], expire_on_commit=False) as session:
        run = session.scalars(select(Run).where(Run.name == name)).one()
        run.suite = "again"
        session.commit()
        assert run.version == version + 1  # not bumped: no listener on this Session
