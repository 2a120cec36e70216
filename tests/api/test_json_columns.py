"""JSON columns keep any JSON value, numbers included, and every read path serves it back.

On SQLite a column declared JSON has NUMERIC affinity: the JSON text `7` was stored as the
integer 7 and every reader that decodes the column (the ORM, exports, set-targets) failed on
it, so one `PUT {"kernel": 7}` made the job unreadable for good. The columns are declared
TEXT there now (migration 0008); PostgreSQL keeps JSONB.

Numbers go through the body parser first (Python int and float) and are written back by
orjson: `1e5` is `100000.0` on both backends, `1.0` stays `1.0`, integers are exact at any
size. On SQLite the served text is the stored text; JSONB prints numbers in plain decimal
(`1.5e-7` as `0.00000015`) and reorders object keys, so the tests compare JSON values, and
bytes where the backend keeps them.
"""
from __future__ import annotations

import csv
import io
import json
import logging

import orjson
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, cast, inspect, insert, select, text
from sqlalchemy import Text as SAText

from paddles.commands import main
from paddles.models import Base
from paddles.models.base import JSONType

RUN = "teuthology-2026-12-05_09:00:00-rados-main-distro-default-smithi"

VALUES = [7, -3, 0, 1.0, 1e5, 0.30000000000000004, 1.5e-7, 2**63 - 1,
          123456789012345678901234567890, "7", "", "1.0", True, False, None, [], [1, "a", 2.5],
          {}, {"a": {"b": [1.5, None]}, "n": 1e5}]
FREE_KEYS = ("kernel", "roles", "overrides", "tasks")  # JSON of any kind (spec 6.2)
TARGETS = [None, {}, {"ubuntu@smithi001.front.sepia.ceph.com": "ssh-ed25519 AAAA"},
           {"ubuntu@smithi002": None, "smithi003": "ssh-rsa B"}]


def _wire(value) -> str:
    """The text a JSON value is stored as (orjson; the stdlib beyond 64-bit integers)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value)


def _job(app, job_id="1"):
    app.post_json(f"/runs/{RUN}/jobs/", {"job_id": job_id, "status": "queued"})


def _reads(app, job_id="1") -> dict[str, dict]:
    """The job as every JSON route serves it (each must answer 200)."""
    out = {"job": app.get(f"/runs/{RUN}/jobs/{job_id}/").json,
           "job_no_slash": app.get(f"/runs/{RUN}/jobs/{job_id}").json}
    for label in ("run", "run_cached"):  # the second GET is the response cache's copy
        jobs = app.get(f"/runs/{RUN}/").json["jobs"]
        out[label] = next(j for j in jobs if j["job_id"] == job_id)
    gz = app.get(f"/runs/{RUN}/", headers={"Accept-Encoding": "gzip"})
    out["run_gzip"] = next(j for j in gz.json["jobs"] if j["job_id"] == job_id)
    for label in ("list", "list_cached"):
        out[label] = next(j for j in app.get(f"/runs/{RUN}/jobs/").json
                          if j["job_id"] == job_id)
    out["list_fields"] = next(j for j in app.get(
        f"/runs/{RUN}/jobs/?fields=job_id,{','.join(FREE_KEYS)},targets").json
        if j["job_id"] == job_id)
    return out


def _other_reads(app, job_id="1") -> None:
    """Routes that load the job as an ORM object, where the bug first showed."""
    app.get(f"/runs/{RUN}/jobs/{job_id}/artifacts/")
    app.get(f"/runs/{RUN}/jobs/{job_id}/tests/")
    app.get(f"/runs/{RUN}/jobs/{job_id}/timeline/", status=404)
    assert app.get(f"/events/?since=0&run={RUN}").json["events"]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_each_json_kind_reads_back_through_every_route(app, backend, value):
    _job(app)
    app.put_json(f"/runs/{RUN}/jobs/1", {key: value for key in FREE_KEYS})
    for route, job in _reads(app).items():
        for key in FREE_KEYS:
            assert job[key] == value and type(job[key]) is type(value), (route, key)
    _other_reads(app)
    body = app.get(f"/runs/{RUN}/jobs/1/").body.decode()
    if backend == "sqlite" or not isinstance(value, (dict, list, float)):
        # the stored text itself (JSONB reorders keys and prints numbers its own way)
        assert f'"kernel":{_wire(value)},' in body
    # a later write to the same job works (it reads the job first) and so does delete
    app.put_json(f"/runs/{RUN}/jobs/1", {"kernel": {"branch": "main"}, "status": "pass"})
    assert app.get(f"/runs/{RUN}/jobs/1/").json["kernel"] == {"branch": "main"}
    app.delete(f"/runs/{RUN}/jobs/1/")


@pytest.mark.parametrize("value", [7, 1.0, "x", [1], 123456789012345678901234567890],
                         ids=repr)
def test_each_json_kind_in_exports(app, value):
    _job(app)
    app.put_json(f"/runs/{RUN}/jobs/1", {"kernel": value, "roles": [[value]],
                                         "targets": {"u@h": value}})
    records = app.get(f"/exports/runs/{RUN}/jobs.json").json
    assert records[0]["targets"] == {"u@h": value}
    lines = app.get(f"/exports/runs/{RUN}/jobs.jsonl").text.splitlines()
    assert json.loads(lines[0])["targets"] == {"u@h": value}
    rows = list(csv.DictReader(io.StringIO(app.get(f"/exports/runs/{RUN}/jobs.csv").text)))
    assert json.loads(rows[0]["targets"]) == {"u@h": value}


@pytest.mark.parametrize("targets", TARGETS, ids=repr)
def test_targets_objects_and_null_read_back(app, targets):
    _job(app)
    app.put_json(f"/runs/{RUN}/jobs/1", {"targets": targets})
    for route, job in _reads(app).items():
        assert job["targets"] == targets, route
    _other_reads(app)


@pytest.mark.parametrize("value", [[], ["ubuntu@smithi001"], "ubuntu@smithi001", "", 7, 1.5,
                                   True, False], ids=repr)
@pytest.mark.parametrize("method", ["post", "put"])
def test_targets_that_are_not_an_object_are_400(app, value, method):
    """Spec 6.2: targets is an object `{"user@host": "<ssh key>"}` (or null)."""
    if method == "post":
        res = app.post_json(f"/runs/{RUN}/jobs/", {"job_id": "1", "targets": value},
                            status=400)
    else:
        _job(app)
        app.put_json(f"/runs/{RUN}/jobs/1", {"targets": {"u@smithi009": "k"}})
        res = app.put_json(f"/runs/{RUN}/jobs/1", {"targets": value, "kernel": 1}, status=400)
        job = app.get(f"/runs/{RUN}/jobs/1/").json  # nothing of the refused write stored
        assert job["targets"] == {"u@smithi009": "k"} and job["kernel"] is None
    assert res.json == {"message": "targets must be an object or null"}


def run_cli(database_url, monkeypatch, capsys, *argv) -> tuple[str, str]:
    """`paddles ARGV` in-process on the database; asserts exit 0; (stdout, stderr)."""
    monkeypatch.setenv("PADDLES_DATABASE_URL", database_url)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        capsys.readouterr()
        code = main(list(argv))
    finally:
        root.handlers[:], root.level = handlers, level
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_set_targets_reads_every_json_kind(app, db_engine, database_url, monkeypatch, capsys):
    """`paddles set-targets` loads the jobs it links whole: no JSON value may stop it."""
    for i, value in enumerate(VALUES):
        _job(app, str(i))
        app.put_json(f"/runs/{RUN}/jobs/{i}", {**{key: value for key in FREE_KEYS},
                                               "targets": {f"ubuntu@smithi{i:03}": "k"}})
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM job_nodes"))  # as if written before targets linked
    out, err = run_cli(database_url, monkeypatch, capsys, "set-targets", "--dry-run")
    assert sorted(out.splitlines()) == sorted(
        f"{RUN}/{i}/: smithi{i:03}" for i in range(len(VALUES)))
    assert f"would link {len(VALUES)} job(s)" in err


# ---- the column type itself, for every JSON column -----------------------------------------

JSON_COLUMNS = sorted((table.name, column.name) for table in Base.metadata.sorted_tables
                      for column in table.columns if column.type is JSONType)


def test_every_json_column_uses_the_shared_type():
    """So the round trip below covers them all (and the migration's list names them all)."""
    names = {(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns
             if "JSON" in repr(c.type)}
    assert names == set(JSON_COLUMNS) and len(JSON_COLUMNS) == 14


def test_migrated_json_columns_are_text_on_sqlite_and_jsonb_on_postgresql(db_engine, backend):
    inspector = inspect(db_engine)
    for table, column in JSON_COLUMNS:
        declared = {c["name"]: c["type"] for c in inspector.get_columns(table)}[column]
        expected = "TEXT" if backend == "sqlite" else "JSONB"
        assert declared.compile(db_engine.dialect) == expected, (table, column)


def test_the_json_type_round_trips_every_kind(db_engine):
    """Stored through the shared type, read back decoded and as raw text (the two paths)."""
    scratch = Table("json_scratch", MetaData(), Column("id", Integer, primary_key=True),
                    Column("value", JSONType))
    scratch.create(db_engine)
    try:
        with db_engine.begin() as conn:
            conn.execute(insert(scratch), [{"id": i, "value": v}
                                           for i, v in enumerate(VALUES)])
        with db_engine.connect() as conn:
            decoded = dict(conn.execute(select(scratch.c.id, scratch.c.value)).all())
            raw = dict(conn.execute(select(scratch.c.id, cast(scratch.c.value, SAText))).all())
            if db_engine.dialect.name == "sqlite":
                kinds = set(conn.execute(text("SELECT typeof(value) FROM json_scratch "
                                              "WHERE value IS NOT NULL")).scalars())
                assert kinds == {"text"}
        for i, value in enumerate(VALUES):
            assert decoded[i] == value and type(decoded[i]) is type(value), value
            if value is None:
                continue
            assert json.loads(raw[i]) == value, value
            if db_engine.dialect.name == "sqlite":
                assert raw[i] == _wire(value)
    finally:
        scratch.drop(db_engine)
