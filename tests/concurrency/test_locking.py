"""Spec 5.1 / 12.9 / 12.21: lock_many and unlock_many under real concurrency.

Threads drive the real WSGI app (one app per thread over the shared engine, as gunicorn
workers would) against committed data. The audit is built from the responses only: a node
is certainly held by its owner from the moment the lock_many response arrives until the
unlock_many request is sent, so two owners' certain intervals on one node must never
overlap. A double allocation would also surface as an unlock refused with 403.
"""
from __future__ import annotations

import collections
import json
import random
import time

from sqlalchemy import select

from paddles.models import Node
from tests.concurrency.threads import run_together

POOL = 50
DURATION = 3.0
THREADS = 16  # the figure: 16 lockers on a pool of 50
MAX_COUNT = 2  # 16 owners x 2 nodes leave spare nodes, so every lock_many can succeed


def make_pool(session, n, machine_type="smithi"):
    names = [f"{machine_type}{i:03d}.front.sepia.ceph.com" for i in range(1, n + 1)]
    session.add_all(Node(name=name, machine_type=machine_type, up=True, locked=False,
                         is_vm=False) for name in names)
    session.commit()
    return names


def post(app, path, body):
    """POST without a Content-Type, as teuthology does; (status, json, sent, received)."""
    sent = time.monotonic()
    resp = app.post(path, json.dumps(body).encode(), expect_errors=True)
    return resp.status_int, resp.json, sent, time.monotonic()


def lock_many(app, owner, count):
    return post(app, "/nodes/lock_many/", {"count": count, "locked_by": owner,
                                           "machine_type": "smithi",
                                           "description": f"run of {owner}"})


def test_lock_many_and_unlock_many_never_share_a_node(settings, session_factory, session):
    names = make_pool(session, POOL)

    def work(app, i):
        owner, rng = f"owner{i:02d}@teuthology", random.Random(i)
        holds, failures = [], []
        deadline = time.monotonic() + DURATION
        while time.monotonic() < deadline:
            status, body, _, locked_at = lock_many(app, owner, rng.randint(1, MAX_COUNT))
            if status != 200:
                failures.append(("lock_many", status, body))
                continue
            got = [node["name"] for node in body]
            if any(node["locked_by"] != owner or not node["locked"] for node in body):
                failures.append(("lock_many", status, body))
            time.sleep(rng.random() * 0.002)
            status, body, unlock_sent, _ = post(app, "/nodes/unlock_many/",
                                                {"names": got, "locked_by": owner})
            if status != 200 or [r["name"] for r in body] != got:
                failures.append(("unlock_many", status, body))
            holds.append((owner, got, locked_at, unlock_sent))
        return holds, failures

    results = run_together(settings, session_factory, work, THREADS)
    holds = [h for thread_holds, _ in results for h in thread_holds]
    failures = [f for _, thread_failures in results for f in thread_failures]

    assert failures == []  # every call answered 200: no 5xx, no 503, no refused unlock
    assert len(holds) >= THREADS  # every thread got through at least one cycle
    intervals = collections.defaultdict(list)
    for owner, got, start, end in holds:
        assert len(set(got)) == len(got)
        for name in got:
            intervals[name].append((start, end, owner))
    for name, spans in intervals.items():
        spans.sort()
        for (_, end, owner), (start, _, other) in zip(spans, spans[1:]):
            assert start >= end, f"{name} held by {owner} and {other} at once"
    # every node handed out was given back, and the pool ends where it started
    assert sum(len(spans) for spans in intervals.values()) == sum(len(g) for _, g, _, _ in holds)
    session.expire_all()
    rows = session.execute(select(Node.name, Node.locked, Node.locked_by)
                           .order_by(Node.name)).all()
    assert [tuple(r) for r in rows] == [(name, False, None) for name in names]


def test_racing_for_too_few_nodes_is_all_or_nothing(settings, session_factory, session):
    names = make_pool(session, 10)

    def work(app, i):
        status, body, _, _ = lock_many(app, f"owner{i:02d}@teuthology", 3)
        return i, status, body

    results = run_together(settings, session_factory, work, THREADS)
    winners = {f"owner{i:02d}@teuthology": [n["name"] for n in body]
               for i, status, body in results if status == 200}
    losers = [body for _, status, body in results if status != 200]
    assert 1 <= len(winners) <= 3
    assert all(len(got) == 3 for got in winners.values())
    for body in losers:  # a short caller locks nothing and is told how many it saw
        assert body["message"] in {f"only {n} nodes available" for n in range(3)}
    assert {status for _, status, _ in results} <= {200, 503}

    session.expire_all()
    held = dict(session.execute(select(Node.name, Node.locked_by)
                                .where(Node.locked.is_(True))).all())
    assert held == {name: owner for owner, got in winners.items() for name in got}
    assert set(held) <= set(names)
