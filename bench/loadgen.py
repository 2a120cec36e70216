"""A small closed-loop HTTP load generator: N client threads, keep-alive connections.

Each phase runs a request function in N threads for a fixed number of requests or seconds
and records every latency. Threads suffice: the client spends its time in socket waits.
"""
from __future__ import annotations

import dataclasses
import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit


# what `requests` sends unless told otherwise, so what teuthology and pulpito send
CLIENT_HEADERS = {"Accept-Encoding": "gzip, deflate"}
IDENTITY = {"Accept-Encoding": "identity"}  # a client that does not take gzip (curl, urllib)


class Client:
    """One keep-alive connection; reconnects when the server closes it.

    Every request carries CLIENT_HEADERS, as teuthology's do. Bodies are read whole, never
    decoded: the load generator measures the server, and decoding JSON (or gzip) is the
    client's work, on its own machine in a lab."""

    def __init__(self, base: str):
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(self, method: str, path: str, body=None, headers: dict | None = None
                ) -> tuple[int, bytes]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        sent = CLIENT_HEADERS if headers is None else {**CLIENT_HEADERS, **headers}
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=sent)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.HTTPException, ConnectionError, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
                if attempt == 2:
                    return 599, b""
        raise AssertionError


@dataclasses.dataclass
class PhaseResult:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]

    @property
    def errors_5xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)

    def as_dict(self) -> dict:
        return {"phase": self.name, "requests": self.requests, "seconds": round(self.seconds, 3),
                "rps": round(self.rps, 1), "p50_ms": round(self.pct(50), 2),
                "p95_ms": round(self.pct(95), 2), "p99_ms": round(self.pct(99), 2),
                "mean_ms": round(statistics.fmean(self.latencies_ms), 2)
                if self.latencies_ms else 0.0,
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "errors_5xx": self.errors_5xx}


Work = Callable[[Client, int], tuple[int, bytes]]


def run_phase(name: str, base: str, work: Work, *, threads: int, requests: int | None = None,
              seconds: float | None = None, ok: Callable[[int], bool] | None = None
              ) -> PhaseResult:
    """Run `work(client, i)` for i in 0..requests-1 (or until `seconds`) over `threads`."""
    counter = iter(range(requests if requests is not None else 10**12))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds if seconds else None

    def loop():
        client = Client(base)
        mine: list[float] = []
        codes: dict[int, int] = {}
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                break
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            status, _ = work(client, i)
            mine.append((time.perf_counter() - t0) * 1000)
            codes[status] = codes.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    return PhaseResult(name, len(latencies), elapsed, latencies, statuses)
