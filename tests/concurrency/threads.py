"""Release N webtest clients at once (each its own app on the shared session factory)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import webtest

from paddles.app import make_app

THREADS = 8


def run_together(settings, session_factory, work, n=THREADS):
    """work(app, i) in n threads released together by a barrier; results in thread order."""
    barrier = threading.Barrier(n)

    def one(i):
        app = webtest.TestApp(make_app(settings, session_factory=session_factory))
        barrier.wait(timeout=30)
        return work(app, i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))
