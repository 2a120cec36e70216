"""A token with an owner locks and unlocks nodes only as that owner (admin excepted)."""
from __future__ import annotations

import json

import pytest

from tests.auth.conftest import bearer

OWNER = "scheduled_teuthology@teuthology"
NODES = [f"smithi00{i}.front.sepia.ceph.com" for i in range(1, 5)]


@pytest.fixture
def lab(auth_app, make_token):
    admin = bearer(make_token("admin", "admin"))
    for name in NODES:
        auth_app.post("/nodes/", json.dumps({"name": name, "machine_type": "smithi",
                                             "up": True}), headers=admin)
    return {"admin": admin, "sched": bearer(make_token("sched", "read", "lock", owner=OWNER)),
            "anyone": bearer(make_token("lab-ops", "read", "lock")),
            "root": bearer(make_token("root", "admin", owner="root@lab"))}


def _lock(app, node, headers, locked_by, locked=True, status=200, **extra):
    body = {"locked": locked, "locked_by": locked_by, "description": "/archive/run/1", **extra}
    return app.put(f"/nodes/{node}/lock/", json.dumps(body), headers=headers, status=status)


def test_lock_one_only_as_the_owner(auth_app, lab):
    resp = _lock(auth_app, NODES[0], lab["sched"], "alice@lab", status=403)
    assert resp.json == {"message": f"Cannot lock - this token may only lock nodes as {OWNER}"}
    assert auth_app.get(f"/nodes/{NODES[0]}/", headers=lab["admin"]).json["locked"] is False
    assert _lock(auth_app, NODES[0], lab["sched"], OWNER).json["locked_by"] == OWNER
    # the spec's own checks still come after: 400 for a missing owner
    _lock(auth_app, NODES[1], lab["sched"], None, status=400)


def test_unlock_only_own_locks(auth_app, lab):
    _lock(auth_app, NODES[0], lab["anyone"], "alice@lab")  # no owner on this token
    # impersonating alice: refused by the token rule; as itself: the spec's owner check
    resp = _lock(auth_app, NODES[0], lab["sched"], "alice@lab", locked=False, status=403)
    assert resp.json["message"] == f"Cannot unlock - this token may only unlock nodes as {OWNER}"
    resp = _lock(auth_app, NODES[0], lab["sched"], OWNER, locked=False, status=403)
    assert resp.json["message"] == "Cannot unlock - locked_by values must match"
    _lock(auth_app, NODES[1], lab["sched"], OWNER)
    _lock(auth_app, NODES[1], lab["sched"], OWNER, locked=False)


def test_lock_many_and_unlock_many(auth_app, lab):
    body = {"count": 2, "machine_type": "smithi", "description": "/archive/run/2"}
    resp = auth_app.post("/nodes/lock_many/", json.dumps({**body, "locked_by": "bob@lab"}),
                         headers=lab["sched"], status=403)
    assert resp.json["message"] == f"Cannot lock - this token may only lock nodes as {OWNER}"
    locked = auth_app.post("/nodes/lock_many/", json.dumps({**body, "locked_by": OWNER}),
                           headers=lab["sched"]).json
    names = [n["name"] for n in locked]
    auth_app.post("/nodes/unlock_many/", json.dumps({"names": names, "locked_by": "bob@lab"}),
                  headers=lab["sched"], status=403)
    unlocked = auth_app.post("/nodes/unlock_many/", json.dumps(
        {"names": names, "locked_by": OWNER}), headers=lab["sched"]).json
    assert [n["locked"] for n in unlocked] == [False, False]


def test_node_put_with_locked_follows_the_rule_and_inventory_does_not(auth_app, lab):
    auth_app.put(f"/nodes/{NODES[2]}/", json.dumps({"locked": True, "locked_by": "eve@lab"}),
                 headers=lab["sched"], status=403)
    auth_app.put(f"/nodes/{NODES[2]}/", json.dumps({"description": "reimaged", "up": True}),
                 headers=lab["sched"], status=200)  # no lock change: no owner check


@pytest.mark.parametrize("who", ["anyone", "root", "admin"])
def test_tokens_without_owner_and_admins_act_as_anyone(auth_app, lab, who):
    _lock(auth_app, NODES[3], lab[who], "alice@lab")
    _lock(auth_app, NODES[3], lab[who], "alice@lab", locked=False)


def test_locked_by_without_locked_cannot_take_a_lock_over(auth_app, lab):
    """PUT /nodes/NODE/ stores locked_by even without `locked` (spec 6.3): not a way round."""
    _lock(auth_app, NODES[0], lab["anyone"], "alice@lab")
    resp = auth_app.put(f"/nodes/{NODES[0]}/", json.dumps({"locked_by": OWNER}),
                        headers=lab["sched"], status=403)
    assert resp.json["message"] == "Cannot change locked_by - the node is locked by alice@lab"
    auth_app.put(f"/nodes/{NODES[0]}/lock/", json.dumps({"locked_by": None}),
                 headers=lab["sched"], status=403)
    auth_app.put(f"/nodes/{NODES[1]}/", json.dumps({"locked_by": "alice@lab"}),
                 headers=lab["sched"], status=403)
    node = auth_app.get(f"/nodes/{NODES[0]}/", headers=lab["admin"]).json
    assert (node["locked"], node["locked_by"]) == (True, "alice@lab")
    # its own lock it may edit
    _lock(auth_app, NODES[2], lab["sched"], OWNER)
    auth_app.put(f"/nodes/{NODES[2]}/", json.dumps({"locked_by": OWNER, "up": False}),
                 headers=lab["sched"], status=200)


def test_create_node_locked_only_as_the_owner(auth_app, lab):
    body = {"name": "mira001.front.sepia.ceph.com", "locked": True, "locked_by": "alice@lab"}
    auth_app.post("/nodes/", json.dumps(body), headers=lab["sched"], status=403)
    auth_app.post("/nodes/", json.dumps({**body, "locked_by": OWNER}), headers=lab["sched"],
                  status=200)
