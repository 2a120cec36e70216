"""Spec sections 5 and 9: /nodes/ inventory, locking and per-node job views."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select, update

import paddles.controllers.nodes  # noqa: F401  (registers the /nodes/ OpenAPI paths)
from paddles import openapi
from paddles.models import Job, Node, job_nodes
from tests.factories import post_job, run_name

FQDN = "smithi001.front.sepia.ceph.com"
NODE_KEYS = ["name", "description", "up", "machine_type", "is_vm", "vm_host", "os_type",
             "os_version", "arch", "locked", "locked_since", "locked_by", "mac_address",
             "ssh_pub_key"]
LOCK_RECORD_KEYS = ["name", "locked", "locked_by", "machine_type", "is_vm"]
LOCK_MANY_FIELDS_MSG = "must pass these fields: count, locked_by, machine_type, description"


def call(app, method, path, body=None, *, raw=None, content_type=None):
    """Any method, any status; JSON bodies sent without a Content-Type, as teuthology does."""
    data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    headers = {"Content-Type": content_type} if content_type else {}
    return app.request(path, method=method, body=data, headers=headers, expect_errors=True)


def ok(resp):
    assert resp.status_int == 200, resp.body
    assert resp.content_type == "application/json"
    return resp.json


def error(resp, status, message):
    assert (resp.status_int, resp.json) == (status, {"message": message})


def make_node(app, name, **fields):
    return ok(call(app, "POST", "/nodes/", {"name": name, **fields}))


def get_node(app, name):
    return ok(call(app, "GET", f"/nodes/{name}/"))


def lock(app, name, locked, locked_by="alice@host", description=None, method="PUT",
         **extra):
    body = {"name": name, "locked": locked, "locked_by": locked_by, **extra}
    if description is not None:
        body["description"] = description
    return call(app, method, f"/nodes/{name}/lock/", body)


def pool(app, count, machine_type="smithi", prefix=None, **fields):
    prefix = prefix or machine_type
    names = [f"{prefix}{i:03d}.front.sepia.ceph.com" for i in range(1, count + 1)]
    for name in names:
        make_node(app, name, machine_type=machine_type, up=True, **fields)
    return names


def lock_many(app, count=1, locked_by="alice@host", machine_type="smithi",
              description="run-1", **extra):
    body = {"count": count, "locked_by": locked_by, "machine_type": machine_type,
            "description": description, **extra}
    return call(app, "POST", "/nodes/lock_many/", body)


def unlock_many(app, names, locked_by="alice@host"):
    return call(app, "POST", "/nodes/unlock_many/", {"names": names, "locked_by": locked_by})


def locked_by(app, names):
    return [get_node(app, n)["locked_by"] for n in names]


# ---- POST /nodes/ and GET /nodes/NODE/ ----------------------------------------------------------

def test_create_then_get_full_node_in_key_order(app):
    assert make_node(app, FQDN, machine_type="smithi", up=True, arch="x86_64",
                     os_type="ubuntu", os_version="22.04", mac_address="aa:bb:cc:dd:ee:ff",
                     ssh_pub_key="ssh-ed25519 AAAA", description="spare") == {}
    node = get_node(app, FQDN)
    assert list(node) == NODE_KEYS
    assert node == {"name": FQDN, "description": "spare", "up": True, "machine_type": "smithi",
                    "is_vm": False, "vm_host": None, "os_type": "ubuntu",
                    "os_version": "22.04", "arch": "x86_64", "locked": False,
                    "locked_since": None, "locked_by": None,
                    "mac_address": "aa:bb:cc:dd:ee:ff", "ssh_pub_key": "ssh-ed25519 AAAA"}


def test_get_node_with_and_without_trailing_slash(app):
    make_node(app, FQDN)
    assert ok(call(app, "GET", f"/nodes/{FQDN}")) == ok(call(app, "GET", f"/nodes/{FQDN}/"))


def test_get_unknown_node_is_404(app):
    error(call(app, "GET", "/nodes/nope.example.com/"), 404, "node not found")


def test_create_ignores_unknown_keys_and_coerces_os_version(app):
    make_node(app, FQDN, os_version=22.04, colour="blue", id=7, vm_host=None)
    node = get_node(app, FQDN)
    assert node["os_version"] == "22.04" and "colour" not in node


def test_create_locked_with_owner_sets_locked_since(app):
    make_node(app, FQDN, locked=True, locked_by="alice@host", description="held")
    node = get_node(app, FQDN)
    assert node["locked"] is True and node["locked_by"] == "alice@host"
    assert node["locked_since"] is not None


def test_create_with_locked_null_is_unlocked(app):
    make_node(app, FQDN, locked=None)
    assert get_node(app, FQDN)["locked"] is False


@pytest.mark.parametrize("raw,message", [
    (b"{not json", "could not decode JSON body"),
    (b"", "could not decode JSON body"),
    (b"[1, 2]", "could not decode JSON body"),
    (b"{}", "could not find required key: 'name'"),
    (b'{"name": ""}', "could not find required key: 'name'"),
    (b'{"name": null}', "could not find required key: 'name'"),
    (b'{"name": "n1", "vm_host": "nope"}', "vm_host not found"),
    (b'{"name": "n1", "locked": true}', "Cannot lock without specifying locked_by"),
    (b'{"name": "n1", "locked": true, "locked_by": ""}',
     "Cannot lock without specifying locked_by"),
    (b'{"name": "n1", "locked": "yes", "locked_by": "a"}', "locked must be a boolean"),
    (b'{"name": "n1", "up": "yes"}', "up must be a boolean"),
    (b'{"name": "n1", "machine_type": "' + b"x" * 33 + b'"}',
     "machine_type is longer than 32 characters"),
    (b'{"name": "' + b"n" * 257 + b'"}', "name is longer than 256 characters"),
    (b'{"name": "n1", "locked_since": "last tuesday"}',
     "locked_since must be formatted as %Y-%m-%d %H:%M:%S"),
])
def test_create_errors(app, session, raw, message):
    error(call(app, "POST", "/nodes/", raw=raw), 400, message)
    session.rollback()
    assert session.scalar(select(Node.id)) is None


def test_create_duplicate_is_400(app):
    make_node(app, FQDN)
    error(call(app, "POST", "/nodes/", {"name": FQDN}), 400,
          f"Node with name {FQDN} already exists")


def test_create_takes_a_form_content_type_with_a_json_body(app):
    resp = call(app, "POST", "/nodes", {"name": FQDN},
                content_type="application/x-www-form-urlencoded")
    assert ok(resp) == {}
    assert get_node(app, FQDN)["name"] == FQDN


def test_vm_host_is_the_nested_full_host_node(app):
    make_node(app, "host1.example.com", machine_type="smithi", up=True,
              ssh_pub_key="host-key")
    make_node(app, "vm1.example.com", machine_type="vps", is_vm=True,
              vm_host="host1.example.com")
    node = get_node(app, "vm1.example.com")
    assert node["is_vm"] is True
    assert node["vm_host"] == get_node(app, "host1.example.com")
    assert list(node["vm_host"]) == NODE_KEYS
    ok(call(app, "PUT", "/nodes/vm1.example.com/", {"vm_host": None}))
    assert get_node(app, "vm1.example.com")["vm_host"] is None


def test_vm_host_cycle_renders_without_recursing_forever(app):
    make_node(app, "a.example.com")
    make_node(app, "b.example.com", vm_host="a.example.com")
    ok(call(app, "PUT", "/nodes/a.example.com/", {"vm_host": "b.example.com"}))
    node = get_node(app, "a.example.com")
    assert node["vm_host"]["name"] == "b.example.com"
    assert node["vm_host"]["vm_host"] is None


def test_the_node_list_renders_each_node_as_its_own_route_does(app):
    """GET /nodes/ reads its nodes without the ORM (then their hosts, level by level): each
    node, its host, its host's host and a cycle come out as GET /nodes/NAME/ gives them,
    filtered or not."""
    make_node(app, "rack.example.com", machine_type="smithi", up=True)
    make_node(app, "host.example.com", machine_type="smithi", is_vm=True,
              vm_host="rack.example.com", ssh_pub_key="host-key")
    make_node(app, "vm.example.com", machine_type="vps", is_vm=True,
              vm_host="host.example.com", up=True)
    make_node(app, "a.example.com", machine_type="vps")
    make_node(app, "b.example.com", machine_type="vps", vm_host="a.example.com")
    ok(call(app, "PUT", "/nodes/a.example.com/", {"vm_host": "b.example.com"}))
    listed = ok(call(app, "GET", "/nodes/"))
    assert [n["name"] for n in listed] == sorted(n["name"] for n in listed)
    assert listed == [get_node(app, n["name"]) for n in listed]
    vm = ok(call(app, "GET", "/nodes/?machine_type=vps&up=1"))
    assert vm == [get_node(app, "vm.example.com")]
    assert vm[0]["vm_host"]["vm_host"]["name"] == "rack.example.com"


# ---- GET /nodes/ --------------------------------------------------------------------------------

@pytest.fixture
def inventory(app):
    make_node(app, "smithi002.x", machine_type="smithi", up=True, os_type="ubuntu",
              os_version="22.04", arch="x86_64")
    make_node(app, "smithi001.x", machine_type="smithi", up=True, os_type="centos",
              os_version="9", arch="x86_64", locked=True, locked_by="bob@host")
    make_node(app, "mira001.x", machine_type="mira", up=False, os_type="ubuntu",
              os_version="20.04", arch="aarch64")
    make_node(app, "vpm001.x", machine_type="vps", up=True, locked=True,
              locked_by="alice@host")
    make_node(app, "bare.x")


def names(resp):
    return [n["name"] for n in ok(resp)]


@pytest.mark.parametrize("query,expected", [
    ("", ["bare.x", "mira001.x", "smithi001.x", "smithi002.x", "vpm001.x"]),
    ("machine_type=smithi", ["smithi001.x", "smithi002.x"]),
    ("machine_type=smithi|vps", ["smithi001.x", "smithi002.x", "vpm001.x"]),
    ("machine_type=smith", []),
    ("up=1", ["smithi001.x", "smithi002.x", "vpm001.x"]),
    ("up=True", ["smithi001.x", "smithi002.x", "vpm001.x"]),
    ("up=0", ["mira001.x"]),
    ("locked=0", ["bare.x", "mira001.x", "smithi002.x"]),
    ("locked=true", ["smithi001.x", "vpm001.x"]),
    ("locked_by=alice@host", ["vpm001.x"]),
    ("os_type=ubuntu", ["mira001.x", "smithi002.x"]),
    ("os_type=ubuntu&os_version=22.04", ["smithi002.x"]),
    ("arch=aarch64", ["mira001.x"]),
    ("machine_type=smithi|mira&up=1&locked=0&count=5", ["smithi002.x"]),
    ("count=2", ["bare.x", "mira001.x"]),
    ("count=0", []),
    ("up=&count=", ["bare.x", "mira001.x", "smithi001.x", "smithi002.x", "vpm001.x"]),
    ("colour=blue", ["bare.x", "mira001.x", "smithi001.x", "smithi002.x", "vpm001.x"]),
])
def test_list_filters_ordered_by_name(app, inventory, query, expected):
    assert names(call(app, "GET", f"/nodes/?{query}")) == expected


def test_list_returns_full_nodes(app, inventory):
    nodes = ok(call(app, "GET", "/nodes/?locked_by=bob@host"))
    assert nodes == [get_node(app, "smithi001.x")]


@pytest.mark.parametrize("text", ["t", "T", "true", "TRUE", "y", "Yes", "on", "ON", "1"])
def test_true_spellings(app, inventory, text):
    assert names(call(app, "GET", f"/nodes/?locked={text}")) == ["smithi001.x", "vpm001.x"]


@pytest.mark.parametrize("text", ["f", "F", "false", "False", "n", "NO", "off", "0"])
def test_false_spellings(app, inventory, text):
    assert names(call(app, "GET", f"/nodes/?up={text}")) == ["mira001.x"]


@pytest.mark.parametrize("param", ["up", "locked"])
@pytest.mark.parametrize("text", ["maybe", "2", "yess", "-1"])
def test_other_boolean_spellings_are_400(app, param, text):
    error(call(app, "GET", f"/nodes/?{param}={text}"), 400, f"{param} must be a boolean")


@pytest.mark.parametrize("count", ["abc", "-1", "1.5", "1e3", " 1"])
def test_count_must_be_digits(app, count):
    error(app.get("/nodes/", {"count": count}, expect_errors=True), 400,
          "count must be an integer")


def _hosts_with_vms(app, start, stop):
    for i in range(start, stop):
        make_node(app, f"host{i:03d}.x", machine_type="smithi", up=True)
        make_node(app, f"vm{i:03d}.x", machine_type="vps", is_vm=True,
                  vm_host=f"host{i:03d}.x")


def _queries_for_list(app, queries):
    queries.reset()
    nodes = ok(call(app, "GET", "/nodes/?machine_type=smithi|vps"))
    assert all(n["vm_host"]["name"] == "host" + n["name"][2:] for n in nodes if n["is_vm"])
    return len(nodes), queries.count


def test_list_query_count_does_not_grow_with_nodes(app, queries):
    _hosts_with_vms(app, 0, 2)
    few = _queries_for_list(app, queries)
    _hosts_with_vms(app, 2, 25)
    many = _queries_for_list(app, queries)
    assert (few, many) == ((4, 1), (50, 1))


# ---- /nodes/machine_types/ and reserved names ---------------------------------------------------

def test_machine_types_sorted_distinct_non_empty(app, inventory):
    make_node(app, "empty-type.x", machine_type="")
    make_node(app, "smithi003.x", machine_type="smithi")
    assert ok(call(app, "GET", "/nodes/machine_types/")) == ["mira", "smithi", "vps"]
    assert ok(call(app, "GET", "/nodes/machine_types")) == ["mira", "smithi", "vps"]


@pytest.mark.parametrize("reserved", ["machine_types", "job_stats"])
def test_reserved_segments_shadow_nodes_of_that_name(app, reserved):
    make_node(app, reserved, machine_type="smithi")
    body = ok(call(app, "GET", f"/nodes/{reserved}/"))
    assert not (isinstance(body, dict) and body.get("name") == reserved)
    assert names(call(app, "GET", "/nodes/")) == [reserved]


# ---- PUT and DELETE /nodes/NODE/ ----------------------------------------------------------------

def test_put_updates_inventory_keys_and_ignores_name(app):
    make_node(app, FQDN, machine_type="smithi")
    body = {"name": "renamed", "user": "ubuntu", "arch": "x86_64", "os_type": "ubuntu",
            "os_version": "24.04", "ssh_pub_key": "ssh-rsa BBBB", "up": True,
            "description": "teuthology inventory"}
    assert ok(call(app, "PUT", f"/nodes/{FQDN}/", body)) == {}
    node = get_node(app, FQDN)
    assert (node["name"], node["os_version"], node["ssh_pub_key"], node["up"]) == (
        FQDN, "24.04", "ssh-rsa BBBB", True)
    error(call(app, "GET", "/nodes/renamed/"), 404, "node not found")


def test_put_unknown_node_is_404_then_post_creates_it(app):
    body = {"name": FQDN, "machine_type": "smithi", "up": True}
    error(call(app, "PUT", f"/nodes/{FQDN}/", body), 404,
          "attempted to update a non-existent node")
    assert make_node(app, **body) == {}


@pytest.mark.parametrize("raw,status,message", [
    (b"not json", 400, "could not decode JSON body"),
    (b"", 400, "could not decode JSON body"),
    (b'"a string"', 400, "could not decode JSON body"),
    (b'{"vm_host": "nope"}', 400, "vm_host not found"),
    (b'{"locked": "yes"}', 400, "locked must be a boolean"),
    (b'{"locked": false, "locked_by": "alice@host"}', 403,
     "Cannot unlock an already-unlocked node"),
    (b'{"locked": true}', 400, "Cannot lock without specifying locked_by"),
])
def test_put_errors(app, raw, status, message):
    make_node(app, FQDN, description="keep")
    error(call(app, "PUT", f"/nodes/{FQDN}/", raw=raw), status, message)
    assert get_node(app, FQDN)["description"] == "keep"


def test_put_with_locked_runs_the_lock_checks(app):
    make_node(app, FQDN)
    ok(call(app, "PUT", f"/nodes/{FQDN}/", {"locked": True, "locked_by": "alice@host"}))
    error(call(app, "PUT", f"/nodes/{FQDN}/", {"locked": False, "locked_by": "bob@host"}),
          403, "Cannot unlock - locked_by values must match")
    ok(call(app, "PUT", f"/nodes/{FQDN}/", {"locked": None, "description": "x"}))
    assert get_node(app, FQDN)["locked_by"] == "alice@host"


def test_delete_node_keeps_its_jobs_and_unhosts_vms(app, session):
    run = run_name()
    make_node(app, "host1.x")
    make_node(app, "vm1.x", vm_host="host1.x")
    post_job(app, run, job_id=1, targets={"ubuntu@host1.x": "key"})
    assert ok(call(app, "DELETE", "/nodes/host1.x")) == {}
    error(call(app, "GET", "/nodes/host1.x/"), 404, "node not found")
    assert get_node(app, "vm1.x")["vm_host"] is None
    assert ok(call(app, "GET", f"/runs/{run}/jobs/1/"))["job_id"] == "1"
    session.rollback()
    assert session.scalar(select(job_nodes.c.job_id)) is None


def test_delete_unknown_node_is_404(app):
    error(call(app, "DELETE", "/nodes/nope.x/"), 404, "node not found")


@pytest.mark.parametrize("method,path", [("POST", f"/nodes/{FQDN}/"), ("PATCH", f"/nodes/{FQDN}"),
                                         ("DELETE", "/nodes/"), ("PUT", "/nodes/"),
                                         ("POST", "/nodes/machine_types/"),
                                         ("DELETE", "/nodes/job_stats"),
                                         ("POST", f"/nodes/{FQDN}/jobs/"),
                                         ("PUT", f"/nodes/{FQDN}/job_stats/")])
def test_other_methods_are_405(app, method, path):
    make_node(app, FQDN)
    resp = call(app, method, path, {})
    error(resp, 405, "method not allowed")
    assert resp.headers["Allow"]


# ---- PUT|POST /nodes/NODE/lock/ (spec 9) --------------------------------------------------------

@pytest.fixture
def free(app):
    make_node(app, FQDN, machine_type="smithi", up=True, description="old")
    return FQDN


@pytest.fixture
def held(app, free):
    ok(lock(app, free, True, "alice@host", "alice-run"))
    return free


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_lock_returns_the_short_record(app, free, method):
    record = ok(lock(app, free, True, "alice@host", "alice-run", method=method))
    assert list(record) == LOCK_RECORD_KEYS
    assert record == {"name": free, "locked": True, "locked_by": "alice@host",
                      "machine_type": "smithi", "is_vm": False}
    node = get_node(app, free)
    assert node["description"] == "alice-run" and node["locked_since"] is not None


def test_lock_route_works_without_trailing_slash(app, free):
    resp = call(app, "PUT", f"/nodes/{free}/lock", {"locked": True, "locked_by": "a@b"})
    assert ok(resp)["locked"] is True


def test_unlock_clears_owner_and_since_but_keeps_description(app, held):
    record = ok(lock(app, held, False, "alice@host", "alice-run"))
    assert record["locked"] is False and record["locked_by"] is None
    node = get_node(app, held)
    assert (node["locked"], node["locked_by"], node["locked_since"], node["description"]) == (
        False, None, None, "alice-run")


def test_check_1_relock_by_another_owner_is_403(app, held):
    error(lock(app, held, True, "bob@host", "alice-run"), 403,
          "Cannot lock an already-locked node")


def test_check_1_relock_with_another_description_is_403(app, held):
    error(lock(app, held, True, "alice@host", "other"), 403,
          "Cannot lock an already-locked node")


def test_check_1_relock_without_description_is_403(app, held):
    error(lock(app, held, True, "alice@host"), 403, "Cannot lock an already-locked node")


def test_check_1_unlock_of_unlocked_node_is_403(app, free):
    error(lock(app, free, False, "alice@host", "old"), 403,
          "Cannot unlock an already-unlocked node")


def test_check_1_comes_before_check_2(app, free):
    error(lock(app, free, False, None), 403, "Cannot unlock an already-unlocked node")


def test_check_1_prime_identical_relock_by_owner_is_allowed(app, held):
    since = get_node(app, held)["locked_since"]
    record = ok(lock(app, held, True, "alice@host", "alice-run"))
    assert record["locked_by"] == "alice@host"
    assert get_node(app, held)["locked_since"] == since  # no change: not re-stamped


@pytest.mark.parametrize("owner", [None, ""])
def test_check_2_lock_without_owner_is_400(app, free, owner):
    error(lock(app, free, True, owner, "d"), 400, "Cannot lock without specifying locked_by")


@pytest.mark.parametrize("owner", [None, ""])
def test_check_2_unlock_without_owner_is_400(app, held, owner):
    error(lock(app, held, False, owner), 400, "Cannot unlock without specifying locked_by")


def test_check_3_unlock_by_another_owner_is_403(app, held):
    error(lock(app, held, False, "bob@host", "alice-run"), 403,
          "Cannot unlock - locked_by values must match")
    assert get_node(app, held)["locked_by"] == "alice@host"


def test_check_4_unlock_with_another_description_is_403(app, held):
    error(lock(app, held, False, "alice@host", "not-alice-run"), 403,
          "Cannot unlock - description values must match")


@pytest.mark.parametrize("description", [None, ""])
def test_check_4_unlock_without_description_is_allowed(app, held, description):
    resp = lock(app, held, False, "alice@host", **({} if description is None
                                                    else {"description": description}))
    assert ok(resp)["locked"] is False


def test_lock_body_also_stores_other_updatable_keys(app, held):
    ok(lock(app, held, False, "alice@host", "alice-run", up=False, ssh_pub_key="new"))
    node = get_node(app, held)
    assert (node["locked"], node["up"], node["ssh_pub_key"]) == (False, False, "new")


def test_locked_null_is_treated_as_absent(app, held):
    resp = call(app, "PUT", f"/nodes/{held}/lock/",
                {"locked": None, "locked_by": "bob@host", "up": False})
    record = ok(resp)
    assert record["locked"] is True
    node = get_node(app, held)
    assert node["up"] is False and node["locked"] is True


@pytest.mark.parametrize("value", ["yes", "true", 1, 0, [], {}])
def test_non_boolean_locked_is_400(app, free, value):
    error(call(app, "PUT", f"/nodes/{free}/lock/", {"locked": value, "locked_by": "a@b"}),
          400, "locked must be a boolean")


@pytest.mark.parametrize("raw", [b"", b"nope", b"[]", b"null"])
def test_lock_bad_body_is_400(app, free, raw):
    error(call(app, "PUT", f"/nodes/{free}/lock/", raw=raw), 400, "could not decode JSON body")


def test_lock_unknown_node_is_404(app):
    error(lock(app, "nope.x", True), 404, "node not found")


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
def test_lock_other_methods_are_400_with_the_method_named(app, free, method):
    error(call(app, method, f"/nodes/{free}/lock/", {}), 400,
          f"this URI only supports PUT and POST requests but {method} was attempted")


def test_lock_head_is_400_without_body(app, free):
    resp = call(app, "HEAD", f"/nodes/{free}/lock/")
    assert resp.status_int == 400 and resp.body == b""


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
def test_lock_unknown_node_is_404_before_the_method_check(app, method):
    error(call(app, method, "/nodes/nope.x/lock/"), 404, "node not found")


def test_teuthology_lock_one_then_unlock_one(app, free):
    """lock_one / unlock_one: no Content-Type; unlock sends the current description."""
    assert ok(lock(app, free, True, "scheduled_teuthology@teuthology", "/archive/run/1"))
    description = get_node(app, free)["description"]
    assert ok(lock(app, free, False, "scheduled_teuthology@teuthology", description))
    assert get_node(app, free)["locked"] is False


# ---- POST /nodes/lock_many/ ---------------------------------------------------------------------

def test_lock_many_locks_the_first_free_nodes_by_name(app):
    smithi = pool(app, 5)
    make_node(app, "smithi000.down", machine_type="smithi", up=False)
    make_node(app, "smithi000.nul", machine_type="smithi")
    ok(lock(app, smithi[0], True, "bob@host", "bob-run"))
    nodes = ok(lock_many(app, count=2, description="alice-run"))
    assert [n["name"] for n in nodes] == smithi[1:3]
    assert [list(n) for n in nodes] == [NODE_KEYS, NODE_KEYS]
    for node in nodes:
        assert node["locked"] is True and node["locked_by"] == "alice@host"
        assert node["description"] == "alice-run" and node["locked_since"] is not None
        assert node == get_node(app, node["name"])
    assert locked_by(app, smithi) == ["bob@host", "alice@host", "alice@host", None, None]


def test_lock_many_with_several_machine_types(app):
    pool(app, 1, "smithi")
    pool(app, 1, "mira")
    pool(app, 1, "vps")
    nodes = ok(lock_many(app, count=2, machine_type="smithi|mira"))
    assert sorted(n["machine_type"] for n in nodes) == ["mira", "smithi"]


def test_lock_many_os_and_arch_filters(app):
    make_node(app, "a.x", machine_type="smithi", up=True, os_type="ubuntu", os_version="22.04",
              arch="x86_64")
    make_node(app, "b.x", machine_type="smithi", up=True, os_type="centos", os_version="9",
              arch="x86_64")
    make_node(app, "c.x", machine_type="smithi", up=True, os_type="centos", os_version="9",
              arch="aarch64")
    got = ok(lock_many(app, count=1, os_type="centos", os_version=9, arch="aarch64"))
    assert [n["name"] for n in got] == ["c.x"]
    got = ok(lock_many(app, count=1, os_type="", os_version=None, arch=""))
    assert [n["name"] for n in got] == ["a.x"]
    error(lock_many(app, count=1, os_type="ubuntu"), 503, "only 0 nodes available")


@pytest.mark.parametrize("count", [2.0, 2])
def test_lock_many_takes_integral_numbers(app, count):
    pool(app, 3)
    assert len(ok(lock_many(app, count=count))) == 2


def test_lock_many_short_of_nodes_is_503_and_locks_nothing(app):
    smithi = pool(app, 3)
    error(lock_many(app, count=4), 503, "only 3 nodes available")
    assert locked_by(app, smithi) == [None, None, None]


@pytest.mark.parametrize("missing", ["count", "locked_by", "machine_type", "description"])
def test_lock_many_needs_every_field(app, missing):
    body = {"count": 1, "locked_by": "a@b", "machine_type": "smithi", "description": None}
    del body[missing]
    error(call(app, "POST", "/nodes/lock_many/", body), 400, LOCK_MANY_FIELDS_MSG)


@pytest.mark.parametrize("fields,message", [
    ({"count": 0}, "cannot lock less than 1 node"),
    ({"count": -3}, "cannot lock less than 1 node"),
    ({"count": "3"}, "count must be an integer"),
    ({"count": 1.5}, "count must be an integer"),
    ({"count": True}, "count must be an integer"),
    ({"count": None}, "count must be an integer"),
    ({"machine_type": ""}, "must specify machine_type"),
    ({"machine_type": None}, "must specify machine_type"),
    ({"locked_by": ""}, "Cannot lock without specifying locked_by"),
    ({"locked_by": None}, "Cannot lock without specifying locked_by"),
])
def test_lock_many_body_errors(app, fields, message):
    pool(app, 2)
    error(lock_many(app, **fields), 400, message)


@pytest.mark.parametrize("raw", [b"", b"{oops", b"[1]"])
def test_lock_many_bad_json_is_400(app, raw):
    error(call(app, "POST", "/nodes/lock_many/", raw=raw), 400, "could not decode JSON body")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("action", ["lock_many", "unlock_many"])
def test_lock_many_and_unlock_many_only_take_post(app, method, action):
    for path in (f"/nodes/{action}/", f"/nodes/{action}"):
        error(call(app, method, path, {}), 400, "this URI only supports POST requests")


def test_lock_many_with_a_form_content_type(app):
    pool(app, 1)
    body = {"count": 1, "locked_by": "a@b", "machine_type": "smithi", "description": None}
    resp = call(app, "POST", "/nodes/lock_many", body,
                content_type="application/x-www-form-urlencoded")
    assert len(ok(resp)) == 1


# ---- POST /nodes/unlock_many/ -------------------------------------------------------------------

def test_unlock_many_returns_records_in_request_order(app):
    smithi = pool(app, 3)
    ok(lock_many(app, count=3, description="alice-run"))
    records = ok(unlock_many(app, [smithi[2], smithi[0], smithi[1]]))
    assert [r["name"] for r in records] == [smithi[2], smithi[0], smithi[1]]
    assert all(list(r) == LOCK_RECORD_KEYS and r["locked"] is False and r["locked_by"] is None
               for r in records)
    node = get_node(app, smithi[0])
    assert (node["locked"], node["locked_since"], node["description"]) == (
        False, None, "alice-run")


def test_unlock_many_empty_list(app):
    assert ok(unlock_many(app, [])) == []


@pytest.mark.parametrize("body", [
    {"names": []}, {"locked_by": "a@b"}, {},
    {"names": [], "locked_by": "a@b", "description": "x"},
])
def test_unlock_many_needs_exactly_names_and_locked_by(app, body):
    error(call(app, "POST", "/nodes/unlock_many/", body), 400,
          "must pass these fields: names, locked_by")


@pytest.mark.parametrize("names", ["smithi001", {"a": 1}, None])
def test_unlock_many_names_must_be_a_list(app, names):
    error(unlock_many(app, names), 400, "'names' must be a list")


@pytest.mark.parametrize("raw", [b"", b"{oops", b"[]"])
def test_unlock_many_bad_json_is_400(app, raw):
    error(call(app, "POST", "/nodes/unlock_many/", raw=raw), 400, "could not decode JSON body")


def test_unlock_many_unknown_or_repeated_name_is_400(app):
    smithi = pool(app, 2)
    ok(lock_many(app, count=2))
    error(unlock_many(app, [smithi[0], "nope.x"]), 400, "Could not find all nodes!")
    error(unlock_many(app, [smithi[0], smithi[0]]), 400, "Could not find all nodes!")
    assert locked_by(app, smithi) == ["alice@host", "alice@host"]


def test_unlock_many_error_half_way_leaves_every_node_locked(app):
    smithi = pool(app, 4)
    ok(lock_many(app, count=2, locked_by="alice@host"))
    ok(lock_many(app, count=1, locked_by="bob@host"))
    # alice's two nodes come first, then bob's: upstream unlocked alice's before failing
    error(unlock_many(app, [smithi[0], smithi[1], smithi[2]], "alice@host"), 403,
          "Cannot unlock - locked_by values must match")
    assert locked_by(app, smithi) == ["alice@host", "alice@host", "bob@host", None]
    error(unlock_many(app, [smithi[0], smithi[3]], "alice@host"), 403,
          "Cannot unlock an already-unlocked node")
    assert locked_by(app, smithi[:2]) == ["alice@host", "alice@host"]


def test_unlock_many_first_offending_node_in_request_order_decides(app):
    smithi = pool(app, 3)
    ok(lock(app, smithi[0], True, "bob@host", "b"))
    # smithi[1] is free; smithi[0] is bob's
    error(unlock_many(app, [smithi[1], smithi[0]]), 403, "Cannot unlock an already-unlocked node")
    error(unlock_many(app, [smithi[0], smithi[1]]), 403,
          "Cannot unlock - locked_by values must match")


@pytest.mark.parametrize("owner", ["", None])
def test_unlock_many_without_owner_is_400(app, owner):
    smithi = pool(app, 1)
    ok(lock_many(app, count=1))
    error(unlock_many(app, smithi, owner), 400, "Cannot unlock without specifying locked_by")


# ---- jobs per node ------------------------------------------------------------------------------

@pytest.fixture
def node_history(app, session):
    """Four jobs over two runs on smithi001, one on smithi002; posted a minute apart."""
    run_a, run_b = run_name(), run_name()
    target = {"ubuntu@smithi001.x": "key"}
    post_job(app, run_a, job_id=1, targets=target, status="pass")
    post_job(app, run_a, job_id=2, targets={**target, "ubuntu@smithi002.x": "k"},
             status="fail", failure_reason="reimage failed")
    post_job(app, run_b, job_id=1, targets=target, status="running", name="other-name")
    post_job(app, run_b, job_id=2, targets=target, status="dead")
    post_job(app, run_b, job_id=3, status="queued")  # not on any node
    start = dt.datetime(2024, 1, 15, 20, 0, tzinfo=dt.timezone.utc)
    session.rollback()
    for i, job in enumerate(session.scalars(select(Job).order_by(Job.id))):
        job.posted = start + dt.timedelta(minutes=i)
    session.commit()
    return run_a, run_b


def job_keys(jobs):
    return [(j["name"], j["job_id"]) for j in jobs]


def test_node_jobs_newest_first_with_failure_reason(app, node_history):
    run_a, run_b = node_history
    jobs = ok(call(app, "GET", "/nodes/smithi001.x/jobs/"))
    assert [j["job_id"] for j in jobs] == ["2", "1", "2", "1"]
    assert jobs[2]["failure_reason"] == "reimage failed"
    assert jobs[0]["log_href"].endswith(f"/{run_b}/2/teuthology.log")
    assert ok(call(app, "GET", "/nodes/smithi002.x/jobs"))[0]["status"] == "fail"


@pytest.mark.parametrize("query,expected", [
    ("count=0", ["2", "1", "2", "1"]),
    ("count=10", ["2", "1", "2", "1"]),
    ("count=3", ["2", "1", "2"]),
    ("count=3&page=2", ["1"]),
    ("count=2&page=2", ["2", "1"]),
    ("count=2&page=3", []),
    ("count=0&page=2", ["2", "1", "2", "1"]),
    ("status=fail", ["2"]),
    ("status=bogus", []),
    ("name=other-name", ["1"]),
])
def test_node_jobs_params(app, node_history, query, expected):
    jobs = ok(call(app, "GET", f"/nodes/smithi001.x/jobs/?{query}"))
    assert [j["job_id"] for j in jobs] == expected


def test_node_jobs_count_validation_and_unknown_node(app, node_history):
    error(call(app, "GET", "/nodes/smithi001.x/jobs/?count=x"), 400,
          "count and page must be integers")
    error(call(app, "GET", "/nodes/smithi001.x/jobs/?count=-1"), 400,
          "count and page must be integers")
    error(call(app, "GET", "/nodes/nope.x/jobs/"), 404, "node not found")


def test_node_job_stats_has_every_status(app, node_history):
    stats = ok(call(app, "GET", "/nodes/smithi001.x/job_stats/"))
    assert stats == {"pass": 1, "fail": 1, "queued": 0, "running": 1, "dead": 1,
                     "unknown": 0, "waiting": 0}
    assert list(stats) == ["pass", "fail", "queued", "running", "dead", "unknown", "waiting"]
    make_node(app, "idle.x")
    assert set(ok(call(app, "GET", "/nodes/idle.x/job_stats")).values()) == {0}
    error(call(app, "GET", "/nodes/nope.x/job_stats/"), 404, "node not found")


# ---- /nodes/job_stats/ --------------------------------------------------------------------------

@pytest.fixture
def recent_history(app, session):
    run = run_name()
    one = {"ubuntu@smithi001.x": "k"}
    both = {**one, "ubuntu@smithi002.x": "k"}
    post_job(app, run, job_id=1, targets=both, status="pass", machine_type="smithi")
    post_job(app, run, job_id=2, targets=one, status="fail", machine_type="smithi")
    post_job(app, run, job_id=3, targets=one, status="pass", machine_type="multi")
    post_job(app, run, job_id=4, targets={"ubuntu@mira001.x": "k"}, status="dead",
             machine_type="mira")
    post_job(app, run, job_id=5, targets=one, status="pass", machine_type="smithi")
    session.rollback()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=20)
    session.execute(update(Job).where(Job.job_id == "5").values(posted=old))
    session.execute(update(Node).where(Node.name.like("smithi%")).values(machine_type="smithi"))
    session.execute(update(Node).where(Node.name.like("mira%")).values(machine_type="mira"))
    session.commit()


def test_job_stats_counts_recent_jobs_per_node_smallest_first(app, recent_history):
    stats = ok(call(app, "GET", "/nodes/job_stats/"))
    assert stats == {"mira001.x": {"dead": 1}, "smithi002.x": {"pass": 1},
                     "smithi001.x": {"pass": 2, "fail": 1}}
    assert list(stats) == ["mira001.x", "smithi002.x", "smithi001.x"]
    older = ok(call(app, "GET", "/nodes/job_stats?since_days=30"))
    assert older["smithi001.x"] == {"pass": 3, "fail": 1}


def test_job_stats_by_machine_type_includes_multi_jobs(app, recent_history):
    stats = ok(call(app, "GET", "/nodes/job_stats/?machine_type=smithi&since_days=14"))
    assert stats == {"smithi002.x": {"pass": 1}, "smithi001.x": {"pass": 2, "fail": 1}}
    assert ok(call(app, "GET", "/nodes/job_stats/?machine_type=vps")) == {}


def test_job_stats_is_one_query(app, recent_history, queries):
    queries.reset()
    ok(call(app, "GET", "/nodes/job_stats/"))
    assert queries.count == 1


@pytest.mark.parametrize("days", ["0", "-1", "abc", "1.5", "1e2"])
def test_job_stats_since_days_must_be_positive_integer(app, days):
    error(app.get("/nodes/job_stats/", {"since_days": days}, expect_errors=True), 400,
          "since_days must be a positive integer")


# ---- every documented /nodes/ route is routed --------------------------------------------------

def _documented():
    for path, ops in openapi.document()["paths"].items():
        if path.startswith("/nodes/"):
            for method in ops:
                yield method.upper(), path


def test_nodes_paths_are_documented():
    documented = set(_documented())
    assert ("POST", "/nodes/lock_many/") in documented
    assert ("PUT", "/nodes/{node}/lock/") in documented
    assert len(documented) == 13


@pytest.mark.parametrize("method,path", sorted(_documented()))
def test_every_documented_nodes_route_is_routed(app, method, path):
    make_node(app, FQDN)
    resp = call(app, method, path.replace("{node}", FQDN), {})
    assert resp.status_int not in (404, 405, 500), resp.body
