"""Node bodies and queries (spec 5, 6.3, 9): inventory, lock and unlock."""
from __future__ import annotations

import math
from typing import Any
from collections.abc import Mapping

from ..errors import InvalidRequest
from ..models import Node
from .common import (ANY_STRING, BOOL, INT_DIGITS, TEXT, Field, check_name, check_string,
                     convert, known_fields, parse_bool, parse_object, require_key, stored)


# Updatable node keys (POST/PUT/lock bodies); vm_host is given as a node name.
NODE_FIELDS: dict[str, Field] = {
    "arch": stored(Node.arch), "description": TEXT, "os_type": stored(Node.os_type),
    "os_version": stored(Node.os_version), "is_vm": BOOL, "locked": BOOL,
    "locked_by": stored(Node.locked_by), "locked_since": Field("time"),
    "mac_address": stored(Node.mac_address), "machine_type": stored(Node.machine_type),
    "ssh_pub_key": TEXT, "up": BOOL, "vm_host": stored(Node.name),
}
# `locked: null` is treated as absent (upstream crashes); is_vm has no null either.
_NODE_NULL_IS_ABSENT = ("locked", "is_vm")
LOCK_MANY_KEYS = ("count", "locked_by", "machine_type", "description")
UNLOCK_MANY_KEYS = ("names", "locked_by")
MAX_LIMIT = 2**31 - 1
MAX_SINCE_DAYS = 100 * 366


def parse_node_body(raw: bytes) -> dict[str, Any]:
    """PUT /nodes/NODE/ and /nodes/NODE/lock/: updatable keys; `name` is ignored."""
    return known_fields(parse_object(raw), NODE_FIELDS, _NODE_NULL_IS_ABSENT)


def parse_new_node_body(raw: bytes) -> tuple[str, dict[str, Any]]:
    """POST /nodes/: the required name, then the updatable keys."""
    body = parse_object(raw)
    name = check_name("name", require_key(body, "name"), 256)
    return name, known_fields(body, NODE_FIELDS, _NODE_NULL_IS_ABSENT)


def split_machine_types(value: str) -> list[str]:
    """`a|b` names several machine types."""
    return [part for part in value.split("|") if part]


def parse_lock_many_body(raw: bytes) -> dict[str, Any]:
    """POST /nodes/lock_many/: keyword arguments for services.nodes.lock_many."""
    body = parse_object(raw)
    if any(key not in body for key in LOCK_MANY_KEYS):
        raise InvalidRequest("must pass these fields: " + ", ".join(LOCK_MANY_KEYS))
    count = body["count"]
    if isinstance(count, float) and math.isfinite(count) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidRequest("count must be an integer")
    if count < 1:
        raise InvalidRequest("cannot lock less than 1 node")
    if not body["machine_type"]:
        raise InvalidRequest("must specify machine_type")
    machine_type = check_string("machine_type", body["machine_type"], None)
    if not body["locked_by"]:
        raise InvalidRequest("Cannot lock without specifying locked_by")
    out = {
        "count": count,
        "machine_types": split_machine_types(machine_type),
        "locked_by": convert("locked_by", NODE_FIELDS["locked_by"], body["locked_by"]),
        "description": convert("description", TEXT, body["description"]),
    }
    for key in ("os_type", "os_version", "arch"):  # filters: empty means "any"
        out[key] = convert(key, ANY_STRING, body.get(key)) or None
    return out


def parse_unlock_many_body(raw: bytes) -> tuple[list[str], str | None]:
    """POST /nodes/unlock_many/: exactly `names` and `locked_by`."""
    body = parse_object(raw)
    if set(body) != set(UNLOCK_MANY_KEYS):
        raise InvalidRequest("must pass these fields: " + ", ".join(UNLOCK_MANY_KEYS))
    names = body["names"]
    if not isinstance(names, list):
        raise InvalidRequest("'names' must be a list")
    if not all(isinstance(name, str) for name in names):
        raise InvalidRequest("'names' must be a list of strings")
    for name in names:  # a NUL reached PostgreSQL's IN (...) and was a 500
        check_string("names", name, None)
    return names, convert("locked_by", NODE_FIELDS["locked_by"], body["locked_by"])


def parse_node_query(params: Mapping[str, str]) -> dict[str, Any]:
    """GET /nodes/ filters: keyword arguments for services.nodes.list_nodes."""
    out: dict[str, Any] = {}
    for key in ("up", "locked"):
        if params.get(key):
            out[key] = parse_bool(key, params[key])
    if params.get("machine_type"):
        out["machine_types"] = split_machine_types(params["machine_type"])
    for key in ("locked_by", "os_type", "os_version", "arch"):
        if params.get(key):
            out[key] = params[key]
    count = params.get("count")
    if count:
        if not INT_DIGITS.fullmatch(count):
            raise InvalidRequest("count must be an integer")
        out["limit"] = min(int(count), MAX_LIMIT)
    return out


def parse_since_days(text: str | None, default: int = 14) -> int:
    if text is None or text == "":
        return default
    if not INT_DIGITS.fullmatch(text.strip()) or int(text) < 1:
        raise InvalidRequest("since_days must be a positive integer")
    return min(int(text), MAX_SINCE_DAYS)
