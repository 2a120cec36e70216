"""/exports/runs/NAME/stackviz.tar.gz: the dataset stackviz-export writes (config.json, raw /
details / tree JSON per dataset, dstat_log.csv), built from a real subunit upload, with the
field list of the spec checked; ?gzip=1; gzip-stored dstat; empty and unknown runs."""
from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from paddles.services.exports import STACKVIZ_STATUS, stackviz_name
from tests.factories import post_run, run_name

from .conftest import AWKWARD_ID, DATA_DSTAT, iso, upload_results

RAW_FIELDS = {"status", "name", "tags", "details", "duration", "timestamps"}


def _untar(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        members = tar.getmembers()
        assert all(m.isfile() and "/" not in m.name for m in members)
        return {m.name: tar.extractfile(m).read() for m in members}


@pytest.fixture
def run(app):
    name = run_name()
    upload_results(app, name)
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat.csv", DATA_DSTAT, status=201)
    return name


def test_dataset_from_a_subunit_upload(app, run):
    resp = app.get(f"/exports/runs/{run}/stackviz.tar.gz")
    assert resp.headers["Content-Type"] == "application/gzip"
    assert 'filename="' + run.replace(":", "_") + '-stackviz.tar.gz"' in \
        resp.headers["Content-Disposition"]
    files = _untar(resp.body)
    config = json.loads(files["config.json"])
    assert list(config) == ["tempest"]
    # one dataset per job with test cases (the run's own first), ids in order
    assert [(d["id"], d["name"]) for d in config["tempest"]] == [
        (0, f"{run} (run)"), (1, f"{run} job 1"), (2, f"{run} job 2")]
    job1 = config["tempest"][1]
    assert job1 == {"id": 1, "name": f"{run} job 1", "raw": "tempest_1_1_raw.json",
                    "tree": "tempest_1_1_tree.json", "details": "tempest_1_1_details.json",
                    "dstat": "dstat_log.csv"}
    assert "dstat" not in config["tempest"][0] and "dstat" not in config["tempest"][2]
    named = {name for d in config["tempest"] for key, name in d.items()
             if key in ("raw", "tree", "details", "dstat")}
    assert set(files) == named | {"config.json"}
    assert files["dstat_log.csv"] == DATA_DSTAT  # the uploaded dstat file, byte for byte

    api = {t["test_id"]: t for t in
           app.get(f"/runs/{run}/tests/?details=true").json["tests"] if t["job_id"] == "1"}
    raw = json.loads(files[job1["raw"]])
    assert len(raw) == len(api) == 6
    for entry in raw:
        assert set(entry) == RAW_FIELDS
        assert entry["status"] in ("pass", "fail", "skip")
        assert entry["details"] == {}
        assert all(isinstance(tag, str) for tag in entry["tags"])
        assert isinstance(entry["duration"], float)
    by_name = {e["name"]: e for e in raw}
    for test_id, test in api.items():
        entry = by_name[stackviz_name(test_id)]
        assert entry["status"] == STACKVIZ_STATUS[test["status"]]
        assert entry["tags"] == test["tags"]
        assert entry["duration"] == (test["duration"] or 0.0)
        assert entry["timestamps"] == [iso(test["start"]), iso(test["stop"] or test["start"])]
    # names as stackviz shows them: [parameters] dropped, "name (scenario)" reordered
    created = by_name["tempest.api.compute.test_servers.ServersTest.test_create"]
    assert (created["status"], created["tags"], created["duration"], created["timestamps"]) \
        == ("pass", ["worker-0"], 1.5, ["2024-01-15T20:00:00Z", "2024-01-15T20:00:01.500000Z"])
    assert stackviz_name(AWKWARD_ID) == \
        'tempest.api.compute.test_ünïcode.ServersTest.test_a,b["quoted"]'
    assert by_name["tempest.scenario.TestScenario.tempest.scenario.test_hang"]["status"] \
        == "fail"
    assert {e["name"].rsplit(".", 1)[-1]: e["status"] for e in raw} == {
        "test_create": "pass", 'test_a,b["quoted"]': "fail", "test_attach": "skip",
        "test_known_bug": "pass", "test_fixed_bug": "fail", "test_hang": "fail"}

    details = json.loads(files[job1["details"]])
    assert set(details) == set(by_name)
    failing = details[stackviz_name(AWKWARD_ID)]
    assert failing["status"] == "fail"
    assert failing["timestamps"] == by_name[stackviz_name(AWKWARD_ID)]["timestamps"]
    assert failing["traceback"].endswith('AssertionError: 404 != 204, "détail"\n')
    assert details["tempest.api.volume.test_volumes.VolumesTest.test_attach"]["reason"] == \
        "Cinder multiattach is not enabled"

    tree = json.loads(files[job1["tree"]])
    assert tree["name"] == "tempest"
    node = tree
    for part in "api.compute.test_servers.ServersTest.test_create".split("."):
        node = next(c for c in node["children"] if c["name"] == part)
    assert node["name_full"] == created["name"] and node["status"] == "pass"
    assert node["timestamps"] == created["timestamps"]
    leaves = []

    def walk(n):
        if "children" in n:
            for c in n["children"]:
                walk(c)
        if "name_full" in n:
            leaves.append(n["name_full"])
    walk(tree)
    assert sorted(leaves) == sorted(by_name)

    # the JUnit job and the run's own test cases are datasets too
    junit_raw = json.loads(files[config["tempest"][2]["raw"]])
    assert {e["name"]: e["status"] for e in junit_raw} == {
        "tests.test_rgw.TestBucket.test_create": "pass",
        "tests.test_rgw.TestBucket.test_acl": "fail",
        "tests.test_rgw.TestBucket.test_setup": "fail", "tests.test_rgw.test_later": "skip"}
    assert json.loads(files[config["tempest"][0]["raw"]])[0]["name"] == \
        "teuthology.nuke.test_nuke"


def test_gzip_option_gzips_the_data_files(app, run):
    plain = _untar(app.get(f"/exports/runs/{run}/stackviz.tar.gz").body)
    zipped = _untar(app.get(f"/exports/runs/{run}/stackviz.tar.gz?gzip=1").body)
    config = json.loads(zipped["config.json"])  # config.json itself stays plain
    assert config["tempest"][1]["raw"] == "tempest_1_1_raw.json.gz"
    assert config["tempest"][1]["dstat"] == "dstat_log.csv.gz"
    assert set(zipped) == {"config.json"} | {name + ".gz" for name in plain
                                             if name != "config.json"}
    for name, data in plain.items():
        if name != "config.json":
            assert gzip.decompress(zipped[name + ".gz"]) == data
    assert app.get(f"/exports/runs/{run}/stackviz.tar.gz?gzip=maybe", status=400) \
        .json["message"] == "gzip must be a boolean"
    assert app.get(f"/exports/runs/{run}/stackviz.tar.gz?status=pass", status=400) \
        .json["message"] == "unknown parameter 'status'; this export takes: gzip"


def test_gzip_stored_dstat_goes_in_decompressed(app):
    name = run_name()
    upload_results(app, name)
    app.put(f"/runs/{name}/jobs/2/artifacts/dstat.csv.gz", gzip.compress(DATA_DSTAT),
            headers={"Content-Encoding": "gzip"}, status=201)
    files = _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz").body)
    config = json.loads(files["config.json"])
    assert [d.get("dstat") for d in config["tempest"]] == [None, None, "dstat_log.csv"]
    assert files["dstat_log.csv"] == DATA_DSTAT
    # with dstat logs on two jobs, each dataset names its own
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat.csv", DATA_DSTAT, status=201)
    config = json.loads(_untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz")
                               .body)["config.json"])
    assert [d.get("dstat") for d in config["tempest"]] == [
        None, "dstat_log_1_1.csv", "dstat_log_2_2.csv"]


def test_empty_and_unknown_runs(app):
    name = run_name()
    post_run(app, name)
    assert _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz").body) == \
        {"config.json": b'{"tempest":[]}'}
    assert app.get("/exports/runs/nope/stackviz.tar.gz", status=404).json == \
        {"message": "run not found"}
