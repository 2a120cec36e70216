"""Application factory: settings in, WSGI app out."""
from __future__ import annotations

import logging

import pecan
from webob import Request as WebObRequest

from .cache import ResponseCache, ResponseCacheHook
from .db import make_engine, make_session_factory, with_topic_prefix
from . import metrics, pecan_speedups
from .limits import BodyLimits
from .hooks import DBSessionHook, ErrorHook, RequestSessions, StorageHook
from .middleware import RequestObserver, WireMiddleware
from .responses import OrjsonRenderer
from .settings import Settings, load_settings
from .storage import make_blob_store

log = logging.getLogger(__name__)


class Request(WebObRequest):
    """The request object Pecan builds: webob's, without pecan.core.Request's
    `__getattribute__`, which wraps every attribute read (about 140 a request) to turn a
    UnicodeDecodeError into a 400. Here URLs that are not UTF-8 never reach Pecan
    (WireMiddleware), bodies are decoded by schemas.parse_json, and ErrorHook answers any
    UnicodeDecodeError left with that same 400."""


def setup_app(config=None):
    """Entry point Pecan's loader (`pecan serve config.py`) calls."""
    path = getattr(config, "__file__", None) if config is not None else None
    return make_app(load_settings(path))


def make_app(settings: Settings, *, session_factory=None, read_session_factory=None,
             extra_hooks=()):
    prefix = settings.event_topic_prefix  # of the event topics the app's sessions write
    if session_factory is None:
        engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                             max_overflow=settings.db_max_overflow,
                             lock_timeout=settings.db_lock_timeout or None,
                             prepared_statements=settings.db_prepared_statements)
        metrics.instrument_engine(engine, settings.db_pool_size + settings.db_max_overflow)
        session_factory = make_session_factory(engine, topic_prefix=prefix)
    else:  # a factory given (tests): its sessions as the app's own
        session_factory = with_topic_prefix(session_factory, prefix)
    if read_session_factory is None and settings.database_read_url:
        read_engine = make_engine(settings.database_read_url, pool_size=settings.db_pool_size,
                                  max_overflow=settings.db_max_overflow,
                                  lock_timeout=settings.db_lock_timeout or None)
        metrics.instrument_engine(read_engine,
                                  settings.db_pool_size + settings.db_max_overflow)
        read_session_factory = make_session_factory(read_engine, topic_prefix=prefix)
    elif read_session_factory is not None:
        read_session_factory = with_topic_prefix(read_session_factory, prefix)
    from .controllers.root import RootController
    from .direct import DirectRoutes

    pecan_speedups.install()  # Pecan's routing, cached (idempotent)
    sessions = RequestSessions(session_factory, read_session_factory,
                               settings.database_read_max_wait)
    app = pecan.Pecan(
        RootController(settings),
        hooks=[DBSessionHook(sessions), ErrorHook(),
               StorageHook(make_blob_store(settings)),
               ResponseCacheHook(ResponseCache(settings.response_cache_size)), *extra_hooks],
        default_renderer="json",
        custom_renderers={"json": OrjsonRenderer},
        force_canonical=False,
        # resource names look like files (node FQDNs, run names with dots, artifacts)
        guess_content_type_from_ext=False,
        request_cls=Request,
    )
    app = DirectRoutes(app, sessions, settings)  # the hot job writes (paddles/direct.py)
    if settings.auth_enabled:  # tokens checked before routing (paddles/auth.py)
        from .auth import AuthMiddleware
        app = AuthMiddleware(app, session_factory, anonymous_read=settings.auth_anonymous_read)
    return RequestObserver(WireMiddleware(app, max_body_size=settings.max_body_size,
                                          body_limits=BodyLimits(settings),
                                          client_timeout=settings.client_timeout))
