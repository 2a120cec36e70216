"""Pecan hooks: the database session of each request, errors as JSON, the blob store.

DBSessionHook is first in the hook list: it opens the request's session (on the read
replica for the routes the route table marks `replica`) and commits a write last, after
every other hook; ErrorHook turns any exception into `{"message": ...}` through
responses.exception_response. The WSGI layers around Pecan are in paddles/middleware.py.
"""
from __future__ import annotations

from pecan.hooks import PecanHook
from sqlalchemy.exc import DBAPIError

from . import routes
from .db import begin_write, reading, write_locks_up_front
from .middleware import STREAMED_BODY
from .replica import ReplicaReads
from .responses import database_error_response, exception_response

READ_METHODS = ("GET", "HEAD", "OPTIONS")


# Read-only routes served from the replica when one is configured (database_read_url): the
# heavy reads of pulpito and reporting, where a replica a few seconds behind is harmless
# (`replica` in the route table, paddles/routes.py). Not those: what teuthology reads right
# after writing (a run's jobs, nodes while locking, queues), artifacts (fetched right after
# upload), events (NOTIFY is not replicated), and /ready and /metrics (about the primary).
READ_REPLICA_ROUTES = routes.REPLICA_ROUTES


def reads_from_replica(method: str, path: str) -> bool:
    if method not in ("GET", "HEAD"):
        return False
    return routes.route_template(path) in READ_REPLICA_ROUTES


class RequestSessions:
    """The database session of each request, for DBSessionHook and for the direct routes
    (paddles/direct.py): `open` gives a request its session (on the read replica for the
    routes the route table marks `replica`), `finish` commits a write that succeeded and
    closes, `abort` rolls back after an exception."""

    def __init__(self, make_session, make_read_session=None, read_max_wait: float = 0.0):
        self.make_session = make_session
        self.make_read_session = make_read_session
        # what a GET's own session comes from: autocommit on PostgreSQL (db.reading)
        self.reader = {make_session: reading(make_session)}
        self.replica_reads = None
        if make_read_session is not None:
            self.reader[make_read_session] = reading(make_read_session)
            self.replica_reads = ReplicaReads(self.reader[make_session],
                                              self.reader[make_read_session], read_max_wait)
        self.lock_up_front = write_locks_up_front(make_session)  # writes never use the replica

    def open(self, method: str, path: str, environ):
        """(session, the factory it came from) for a request."""
        if self.replica_reads is not None and reads_from_replica(method, path):
            session = self.replica_reads.session()  # None: the replica is behind
            if session is not None:
                return session, self.make_read_session
        if method in READ_METHODS:
            return self.reader[self.make_session](), self.make_session
        return self.open_write(environ), self.make_session

    def open_write(self, environ):
        """A write's session. SQLite: the write lock up front (BEGIN IMMEDIATE), except for
        a streamed upload, which takes it after the body is in (it would otherwise hold the
        database's write lock for as long as the client sends). PostgreSQL needs no such
        lock: the session begins at its first statement, and a request whose one statement
        runs alone (db.execute_alone: a heartbeat) never begins one."""
        session = self.make_session()
        if self.lock_up_front and STREAMED_BODY not in environ:
            begin_write(session)
        return session

    @staticmethod
    def finish(session, method: str, status: int):
        """Commit a write that answered below 400, then close the session; the error
        response when COMMIT failed (rolled back), else None."""
        try:
            if method not in READ_METHODS and status < 400 and session.in_transaction():
                session.commit()
        except DBAPIError as exc:
            session.rollback()
            return database_error_response(exc)
        finally:
            if session.in_transaction() or session.identity_map:
                session.close()
            # else it never began (a read or a heartbeat that ran alone, db.execute_alone):
            # nothing to give back, and closing an unused Session is not free
        return None

    @staticmethod
    def abort(session) -> None:
        session.rollback()


class DBSessionHook(PecanHook):
    """First in the hook list: opens the session first, commits (or not) last."""

    def __init__(self, sessions: RequestSessions):
        self.sessions = sessions

    def on_route(self, state):
        request = state.request
        request.db, request.session_factory = self.sessions.open(
            request.method, request.path_info, request.environ)
        request.replica_factory = self.sessions.make_read_session
        # request.session_factory: for streamed exports (in a transaction)

    def after(self, state):
        session = getattr(state.request, "db", None)
        if session is None:
            return
        failed = self.sessions.finish(session, state.request.method,
                                      state.response.status_int)
        if failed is not None:
            state.response = failed

    def on_error(self, state, exc):
        session = getattr(state.request, "db", None)
        if session is not None:
            self.sessions.abort(session)


class ErrorHook(PecanHook):
    """Every exception becomes `{"message": ...}` with the right status (the mapping, 405's
    Allow header included, is responses.exception_response)."""

    def on_error(self, state, exc):
        return exception_response(exc, state.request.method, state.request.path)


class StorageHook(PecanHook):
    """Hands the blob store to the request, as DBSessionHook does the session."""

    def __init__(self, store):
        self.store = store

    def on_route(self, state):
        state.request.blobs = self.store
