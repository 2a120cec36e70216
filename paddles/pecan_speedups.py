"""Two caches for Pecan's per-request routing work (measured: a third of a heartbeat PUT).

1. `pecan.util.getargspec` builds a new namedtuple class on every call (pecan.compat), and
   routing calls it about 16 times a request. The answer depends only on the function, so
   it is cached per underlying function (bound methods report `self` either way).
2. `RestController.__new__` re-scans the whole class with `inspect.getmembers` on every
   instantiation to reject `route=` arguments; `Resource.__new__` does it once per class.
3. `pecan.routing._detect_custom_path_segments` runs `set(dir(obj))` for every controller
   on the path of every request (five a heartbeat) before it checks whether the class was
   already scanned, which is all the work it does for a scanned class: skipped for those.

Installed by the app factory (paddles.app.make_app), not on import: `install()` may be
called any number of times. tests/unit/test_internals.py checks that every internal patched
here still has the shape relied on (it fails on a Pecan upgrade that moves one);
tests/api/test_wire.py covers routing.
"""
from __future__ import annotations

import pecan.core
import pecan.decorators
import pecan.rest
import pecan.routing
import pecan.util

_original = pecan.util.getargspec
_cache: dict = {}


def cached_getargspec(method):
    key = getattr(method, "__func__", method)
    try:
        return _cache[key]
    except KeyError:
        spec = _cache[key] = _original(method)
        return spec
    except TypeError:  # unhashable callable
        return _original(method)


_original_detect = pecan.routing._detect_custom_path_segments
_observed = pecan.routing.__observed_controllers__


def detect_custom_path_segments_once(obj):
    if obj.__class__ in _observed:  # scanned: the original would compute dir() and return
        return
    _original_detect(obj)


PATCHED_MODULES = (pecan.util, pecan.core, pecan.rest, pecan.routing, pecan.decorators)


def install() -> None:
    """Put the caches in place of Pecan's functions (idempotent)."""
    pecan.routing._detect_custom_path_segments = detect_custom_path_segments_once
    for module in PATCHED_MODULES:
        if getattr(module, "getargspec", None) is _original:
            module.getargspec = cached_getargspec


def installed() -> bool:
    return pecan.routing._detect_custom_path_segments is detect_custom_path_segments_once \
        and all(m.getargspec is cached_getargspec for m in PATCHED_MODULES)
