"""A per-process cache of rendered run documents, and their ETags.

`GET /runs/NAME/` of a 300-job run renders ~450 KB of JSON; pulpito and scripts ask for the
same run again and again between its changes. Every such answer is keyed on the run's
state, `(run id, posted, version)`, read from the database on each request (one single-row
SELECT), so the cache never decides freshness itself: `runs.version` moves in the
transaction of every change to the run or its jobs (services/runs.py, bump_run_versions),
and another process's write is seen at the next request. `posted` is in the key because
SQLite may hand a deleted run's id to a new run.

The cache is bounded in bytes (setting `response_cache_size`; 0 turns it off) and evicts
the least recently used bodies; a body larger than an eighth of the bound is not kept. Each
entry counts its bodies' bytes and ENTRY_OVERHEAD for its key and bookkeeping.
Within the same bound it keeps the jobs rendered into those documents, each under its row
version (paddles/rendered_jobs.py): a run whose jobs are running changes at every
heartbeat, and then only the jobs that changed are rendered again. Run lists keep each
run's summary the same way, under its run's state (paddles/rendered_runs.py).
The same key gives the weak ETag, so `If-None-Match` is answered 304 even when the body
was never cached in this process.

A client that takes gzip (`Accept-Encoding`, as `requests` sends it: teuthology, pulpito)
gets the body gzipped: compressed once per kept body, at the first such request, and kept
beside it within the same bound. A 300-job run document shrinks from ~700 KB to a few
tens of KB, so serving it costs far less than moving its bytes did. Both codings share the
weak ETag (they are the same document, RFC 9110 8.8.1) and answer `Vary: Accept-Encoding`.
"""
from __future__ import annotations

import collections
import hashlib
import threading
from collections.abc import Callable, Hashable

import orjson
from pecan.hooks import PecanHook
from webob import Response

from .content_coding import Encoded, accepts_gzip, encode
from .services import runs as run_service


# What an entry costs besides its bodies, counted in the bound: its key (a tuple of a few
# ints and strings), its [body, packed] list and its node in the ordered dict, about 310
# bytes in CPython 3.11 (tests/api/test_response_cache.py measures it). Next to a job's
# rendering (~3 KB, paddles/rendered_jobs.py) that is a tenth, so the bound counts it.
ENTRY_OVERHEAD = 320


class ResponseCache:
    """Bodies by key, each with its gzip form once asked for; the bytes of both, and
    ENTRY_OVERHEAD per entry, count."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max(0, int(max_bytes))
        # key -> [body, its gzip form or None until asked for]
        self._entries: collections.OrderedDict[Hashable, list] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable, *, gzip_ok: bool = False) -> Encoded | None:
        """The body kept for `key` as sent to a client that takes gzip or not (the gzip
        form is made outside the lock the first time it is asked for, then kept)."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            body, packed = entry
        if packed is not None and gzip_ok:
            return packed, "gzip"
        found = encode(body, gzip_ok)
        if found[1] is not None:
            self._keep_packed(key, entry, found[0])
        return found

    def put(self, key: Hashable, body: bytes, *, gzip_ok: bool = False) -> Encoded:
        """Keeps `body` (unless it is over an eighth of the bound), and returns it as sent
        to a client that takes gzip or not."""
        found = encode(body, gzip_ok)
        if len(body) * 8 > self.max_bytes:
            return found
        with self._lock:
            entry = self._store(key, body)
            self._evict()
        if found[1] is not None:
            self._keep_packed(key, entry, found[0])
        return found

    def put_many(self, items: list[tuple[Hashable, bytes]]) -> None:
        """Keeps each (key, body) as `put` does, under one lock: the parts of a document
        rendered for one read (paddles/rendered_jobs.py, rendered_runs.py)."""
        if not items:
            return
        with self._lock:
            for key, body in items:
                if len(body) * 8 <= self.max_bytes:
                    self._store(key, body)
            self._evict()

    def _store(self, key: Hashable, body: bytes) -> list:
        """(Under the lock.) `body` kept for `key`, in place of what was; its entry."""
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= _cost(old)
        entry = self._entries[key] = [body, None]
        self._bytes += _cost(entry)
        return entry

    def get_many(self, keys: list[Hashable]) -> list[bytes | None]:
        """Plain bodies kept for `keys` (None where none is), under one lock; the ones found
        become the most recently used. For parts of documents (paddles/rendered_jobs.py)."""
        entries = self._entries
        with self._lock:
            found = [entries.get(key) for key in keys]
            for key, entry in zip(keys, found):
                if entry is not None:
                    entries.move_to_end(key)
        return [None if entry is None else entry[0] for entry in found]

    def _keep_packed(self, key: Hashable, entry: list, packed: bytes) -> None:
        with self._lock:
            if self._entries.get(key) is entry and entry[1] is None:
                entry[1] = packed
                self._bytes += len(packed)
                self._evict()

    def _evict(self) -> None:
        while self._bytes > self.max_bytes:
            self._bytes -= _cost(self._entries.popitem(last=False)[1])

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)


def _cost(entry: list) -> int:
    body, packed = entry
    return len(body) + len(packed or b"") + ENTRY_OVERHEAD


class ResponseCacheHook(PecanHook):
    """Hands the app's cache to the request (one cache per app, so per process)."""

    def __init__(self, cache: ResponseCache):
        self.cache = cache

    def on_route(self, state):
        state.request.response_cache = self.cache


def etag_of(key: Hashable) -> str:
    digest = hashlib.blake2b(repr(key).encode(), digest_size=12).hexdigest()
    return f'W/"{digest}"'


def cached_json(request, key: Hashable, build: Callable[[], object]) -> Response:
    """The JSON answer for `key`: 304 when the client has it, else from the cache, else
    `build()` rendered (and kept). `key` must name the run's state and every request
    parameter the document depends on."""
    etag = etag_of(key)
    given = _client_etags(request)
    if etag in given or "*" in given:
        resp = Response(status=304, charset=None)
    else:
        cache: ResponseCache | None = getattr(request, "response_cache", None)
        gzip_ok = accepts_gzip(request.environ.get("HTTP_ACCEPT_ENCODING"))
        found = cache.get(key, gzip_ok=gzip_ok) if cache is not None else None
        if found is None:
            body = orjson.dumps(build())
            found = cache.put(key, body, gzip_ok=gzip_ok) if cache is not None \
                else encode(body, gzip_ok)
        body, coding = found
        resp = Response(body=body, content_type="application/json", charset=None)
        if coding is not None:
            resp.headers["Content-Encoding"] = coding
    resp.headers["ETag"] = etag
    resp.headers["Vary"] = "Accept-Encoding"
    return resp


def cached_run_json(request, db, run_name: str, variant: tuple,
                    build: Callable[[object], object], *, missing: str = "run not found"
                    ) -> Response:
    """`cached_json` for a document of the run named `run_name`, keyed on the run's state
    (one narrow SELECT, services.runs.run_state) and `variant` (which document, and every
    request parameter it depends on); `build(run)` renders it from the run's row (of the id
    its state was read with, as values: services.runs.run_values), which is read only when
    the answer is not cached."""
    return cached_run_id_json(
        request, db, run_name, variant,
        lambda run_id: build(run_service.run_values(db, run_id, missing=missing)),
        missing=missing)


def cached_run_id_json(request, db, run_name: str, variant: tuple,
                       build: Callable[[int], object], *, missing: str = "run not found"
                       ) -> Response:
    """`cached_run_json` for a document built from the run's id alone (a list of its jobs):
    `build(run_id)`, with the id its state was read with, and no read of the run's row."""
    state = run_service.run_state(db, run_name, missing=missing)
    return cached_json(request, (*variant, *state), lambda: build(state[0]))


def _client_etags(request) -> set[str]:
    raw = request.environ.get("HTTP_IF_NONE_MATCH")
    if not raw:
        return set()
    # a weak comparison (RFC 9110 13.1.2): W/"x" and "x" name the same representation
    return {f'W/{tag}' if tag.startswith('"') else tag
            for tag in (t.strip() for t in raw.split(",")) if tag}
