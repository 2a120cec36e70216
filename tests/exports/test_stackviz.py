"""/exports/runs/NAME/stackviz.tar.gz: the dataset today's stackviz front end loads.

- Against the reference: tests/exports/data/stackviz/ holds a subunit stream (four workers;
  passes, failures with tracebacks, skips with reasons, xfail, uxsuccess, pythonlogging), a
  real-format dstat CSV, and what stackviz-export (openstack/stackviz, newest commit) wrote
  for them (see the README there). Our export of a job with those two uploads must equal
  it, up to the differences listed in REFERENCE_DIFFERENCES, none of which the front end
  reads (or, for dstat, the one it needs).
- Against the front end: every field its dataset service (app/js/services/dataset.js),
  summary / failures / timeline / details views and dstat parser (app/js/util/
  dstat-parse.js) read, on a run with several jobs (subunit, JUnit, run-level tests).
- ?gzip=1, several dstat logs, ?layout=legacy (the pre-2016 layout), bad parameters,
  empty and unknown runs.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from paddles.services.stackviz import LEGACY_STATUS, STATUS, stackviz_name
from tests.factories import job_body, post_run, run_name

from .conftest import AWKWARD_ID, DATA_DSTAT, iso, upload_results

DATA = Path(__file__).parent / "data" / "stackviz"
REFERENCE = DATA / "reference"

# Where our dataset differs from stackviz-export's on the same input, and why the front end
# does not mind (docs/exports.md says the same):
REFERENCE_DIFFERENCES = {
    "source name": "our artifact_name is the job (`job-1`), theirs the stream's file name "
                   "(`results.subunit`); file names follow (`job-1-0-raw.json`). The front "
                   "end only matches artifacts by artifact_name and fetches `path`.",
    "descriptive keys": "name, status, ci_username, revision and change_subject of a "
                        "dataset come from the run and job (null in theirs without --env); "
                        "the front end reads only `artifacts`.",
    "dstat blank line": "our dstat.csv leaves out the blank line after dstat's preamble, "
                        "which theirs copies; without that the front end's dstat parser "
                        "reads the column names from the wrong rows and draws no chart.",
    "test order": "ours lists a job's tests by start time, theirs by completion; the same "
                  "order within each worker, and the timeline groups by worker.",
    "tag order": "theirs lists a set (arbitrary order), ours sorted.",
    "total_duration": "summed in another order: equal up to float rounding.",
}


def _untar(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        members = tar.getmembers()
        assert all(m.isfile() and "/" not in m.name for m in members)
        return {m.name: tar.extractfile(m).read() for m in members}


def _reference(name: str):
    return json.loads((REFERENCE / name).read_bytes())


def _without_blank_lines(data: bytes) -> bytes:
    return b"".join(line for line in data.splitlines(keepends=True) if line.strip())


def _dstat_parse(text: str) -> tuple[list[str], list[dict]]:
    """What app/js/util/dstat-parse.js makes of a file: row 0 must be the `Dstat ... CSV
    output` title, rows 1-3 are skipped, rows 4 and 5 name the columns (every line counts
    as a row, blank ones too: d3-dsv's csvParseRows), the rest are samples."""
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows[0]) == 1 and rows[0][0].startswith("Dstat") \
        and rows[0][0].endswith("CSV output")
    primary = list(rows[4])
    for i in range(len(primary) - 1):  # fillArrayRight
        if not primary[i + 1]:
            primary[i + 1] = primary[i]
    names = [(p + "_" + s).replace(" ", "_").replace("/", "_")
             for p, s in zip(primary, rows[5])]
    samples = [{names[i]: value for i, value in enumerate(row) if i < len(names) and value}
               for row in rows[6:]]
    return names, samples


@pytest.fixture
def reference_run(app):
    """One job with the reference stream and dstat log uploaded."""
    name = run_name()
    app.post(f"/runs/{name}/jobs/", json.dumps(job_body("1", status="running")))
    app.put(f"/runs/{name}/jobs/1/artifacts/results.subunit",
            (DATA / "results.subunit").read_bytes(), status=201)
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat-csv.log",
            (DATA / "dstat-csv.log").read_bytes(), status=201)
    return name


def test_export_equals_the_reference_exporter(app, reference_run):
    files = _untar(app.get(f"/exports/runs/{reference_run}/stackviz.tar.gz").body)
    ours, theirs = json.loads(files["config.json"]), _reference("config.json")

    assert list(ours) == list(theirs) == ["deployer", "datasets"]
    assert ours["deployer"] is theirs["deployer"] is False
    assert len(ours["datasets"]) == len(theirs["datasets"]) == 1
    dataset, expected = ours["datasets"][0], theirs["datasets"][0]
    assert list(dataset) == list(expected)
    # "descriptive keys": filled from the run and job, null in theirs
    assert {k: v for k, v in expected.items() if k != "artifacts"} == dict.fromkeys(
        ("name", "url", "status", "ci_username", "pipeline", "change_id", "revision",
         "change_project", "change_subject"))
    assert dataset["name"] == f"{reference_run} job 1" and dataset["status"] == "running"
    assert dataset["revision"] == job_body("1")["sha1"]
    assert dataset["change_subject"] == job_body("1")["description"]
    assert dataset["ci_username"] == "teuthology"
    assert (dataset["url"], dataset["pipeline"], dataset["change_id"],
            dataset["change_project"]) == (None, None, None, None)

    # "source name": the same artifacts, in the same order, but named after the job
    def renamed(artifact):
        return {**artifact,
                "path": artifact["path"].replace("results.subunit-", "job-1-"),
                "artifact_name": artifact["artifact_name"].replace("results.subunit",
                                                                   "job-1")}
    assert dataset["artifacts"] == [renamed(a) for a in expected["artifacts"]]
    assert set(files) == {"config.json"} | {a["path"] for a in dataset["artifacts"]}
    paths = {a["artifact_type"]: a["path"] for a in expected["artifacts"]}
    ours_paths = {a["artifact_type"]: a["path"] for a in dataset["artifacts"]}

    # raw: every entry equal, key order too; "test order" and "tag order" aside
    raw, ref_raw = json.loads(files[ours_paths["subunit"]]), _reference(paths["subunit"])
    assert [list(e) for e in raw] == [list(e) for e in ref_raw]
    assert len(raw) == len(ref_raw) == 29
    by_name = {e["name"]: e for e in raw}
    assert len(by_name) == len(raw)
    for entry in ref_raw:
        ours_entry = by_name[entry["name"]]
        assert {**ours_entry, "tags": sorted(ours_entry["tags"])} == \
            {**entry, "tags": sorted(entry["tags"])}, entry["name"]

    def per_worker(entries):
        out: dict[str, list[str]] = {}
        for e in entries:
            worker = next(t for t in e["tags"] if t.startswith("worker-"))
            out.setdefault(worker, []).append(e["name"])
        return out
    assert per_worker(raw) == per_worker(ref_raw)
    assert sorted(per_worker(raw)) == ["worker-0", "worker-1", "worker-2", "worker-3"]
    assert {e["status"] for e in raw} == {"success", "fail", "skip", "xfail", "uxsuccess"}

    # details: exactly theirs (attachments only, `{}` for none)
    details = json.loads(files[ours_paths["subunit-details"]])
    assert details == _reference(paths["subunit-details"])
    assert list(details) == [e["name"] for e in raw]

    # stats: exactly theirs, "total_duration" up to rounding
    stats, ref_stats = (json.loads(files[ours_paths["subunit-stats"]]),
                        _reference(paths["subunit-stats"]))
    assert list(stats) == list(ref_stats)
    assert stats["total_duration"] == pytest.approx(ref_stats["total_duration"], abs=1e-9)
    for key in ("count", "start", "end"):
        assert stats[key] == ref_stats[key]
    for key in ("failures", "skips"):
        assert sorted(stats[key], key=lambda f: f["name"]) == \
            sorted(ref_stats[key], key=lambda f: f["name"])

    # dstat: stackviz-export copies the file as is; "dstat blank line"
    uploaded = (DATA / "dstat-csv.log").read_bytes()
    assert files["dstat.csv"] == _without_blank_lines(uploaded) != uploaded
    assert len(uploaded.splitlines()) - len(files["dstat.csv"].splitlines()) == 1


def test_the_front_end_reads_every_field_it_needs(app):
    """A run with test cases of its own, a subunit job (with a dstat log) and a JUnit job."""
    name = run_name()
    upload_results(app, name)
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat.csv", DATA_DSTAT, status=201)
    resp = app.get(f"/exports/runs/{name}/stackviz.tar.gz")
    assert resp.headers["Content-Type"] == "application/gzip"
    assert 'filename="' + name.replace(":", "_") + '-stackviz.tar.gz"' in \
        resp.headers["Content-Disposition"]
    files = _untar(resp.body)
    config = json.loads(files["config.json"])
    assert config["deployer"] is False  # else the front end asks a deployer API
    datasets = config["datasets"]
    assert [d["name"] for d in datasets] == [f"{name} (run)", f"{name} job 1",
                                            f"{name} job 2"]
    artifacts = [a for d in datasets for a in d["artifacts"]]
    for artifact in artifacts:
        assert list(artifact) == ["path", "artifact_name", "artifact_type", "content_type",
                                  "primary"]
        assert artifact["path"] in files  # fetched as data/<path>
    assert set(files) == {"config.json"} | {a["path"] for a in artifacts}
    # the front end groups artifacts by name across datasets: one group per dataset, and
    # in each one of every type it asks for, the raw file the only primary one
    groups: dict[str, list[dict]] = {}
    for artifact in artifacts:
        if artifact["artifact_type"] != "dstat":
            groups.setdefault(artifact["artifact_name"], []).append(artifact)
    assert list(groups) == ["run", "job-1", "job-2"]
    for group in groups.values():
        assert sorted((a["artifact_type"], a["primary"], a["content_type"]) for a in group) \
            == [("subunit", True, "application/json"),
                ("subunit-details", False, "application/json"),
                ("subunit-stats", False, "application/json")]
    dstat = [a for a in artifacts if a["artifact_type"] == "dstat"]
    assert dstat == [{"path": "dstat.csv", "artifact_name": "dstat.csv",
                      "artifact_type": "dstat", "content_type": "text/csv",
                      "primary": False}]
    assert datasets[1]["artifacts"][0] == dstat[0]

    def load(group, kind):
        return json.loads(files[next(a["path"] for a in groups[group]
                                     if a["artifact_type"] == kind)])

    api = {t["test_id"]: t for t in
           app.get(f"/runs/{name}/tests/?details=true").json["tests"] if t["job_id"] == "1"}
    raw = load("job-1", "subunit")
    assert len(raw) == len(api) == 6
    by_name = {e["name"]: e for e in raw}
    for test_id, test in api.items():  # timeline: tags (worker), timestamps, duration, status
        entry = by_name[stackviz_name(test_id)]
        assert list(entry) == ["name", "status", "tags", "timestamps", "duration", "details"]
        assert entry["status"] == STATUS[test["status"]]
        assert entry["tags"] == test["tags"] and entry["details"] == {}
        assert entry["duration"] == (test["duration"] or 0.0)
        start = dt.datetime.fromisoformat(test["start"]).replace(tzinfo=dt.timezone.utc)
        assert entry["timestamps"][0] == start.isoformat()
        assert all(t.endswith("+00:00") for t in entry["timestamps"])
    created = by_name["tempest.api.compute.test_servers.ServersTest.test_create"]
    assert (created["status"], created["tags"], created["duration"], created["timestamps"]) \
        == ("success", ["worker-0"], 1.5,
            ["2024-01-15T20:00:00+00:00", "2024-01-15T20:00:01.500000+00:00"])
    assert {e["name"].rsplit(".", 1)[-1]: e["status"] for e in raw} == {
        "test_create": "success", 'test_a,b["quoted"]': "fail", "test_attach": "skip",
        "test_known_bug": "xfail", "test_fixed_bug": "uxsuccess", "test_hang": "fail"}

    details = load("job-1", "subunit-details")  # the details page: one tab per attachment
    assert list(details) == [e["name"] for e in raw]
    assert details[stackviz_name(AWKWARD_ID)]["traceback"].endswith(
        'AssertionError: 404 != 204, "détail"\n')
    assert details["tempest.api.volume.test_volumes.VolumesTest.test_attach"] == \
        {"reason": "Cinder multiattach is not enabled"}
    assert details["tempest.api.compute.test_servers.ServersTest.test_create"] == \
        {"pythonlogging": "INFO \x1b[32mcreated\x1b[0m server é\n"}
    assert details["tempest.api.network.test_ports.PortsTest.test_known_bug"] == {}

    stats = load("job-1", "subunit-stats")  # the summary and failures panels
    assert stats == {
        "count": 6, "start": "2024-01-15T20:00:00+00:00", "end": "2024-01-15T20:00:05+00:00",
        "total_duration": pytest.approx(1.5 + 2.75 + 0 + 1 + 0.5 + 0),
        "failures": [{"name": n, "duration": by_name[n]["duration"], "details": None}
                     for n in (stackviz_name(AWKWARD_ID),
                               "tempest.scenario.TestScenario.tempest.scenario.test_hang")],
        "skips": [{"name": "tempest.api.volume.test_volumes.VolumesTest.test_attach",
                   "duration": 0.0, "details": None}]}

    # JUnit tests: their failure text as an attachment; a message without one shows as
    # the reason (skips) or traceback
    junit = {e["name"]: e["status"] for e in load("job-2", "subunit")}
    assert junit == {"tests.test_rgw.TestBucket.test_create": "success",
                     "tests.test_rgw.TestBucket.test_acl": "fail",
                     "tests.test_rgw.TestBucket.test_setup": "fail",
                     "tests.test_rgw.test_later": "skip"}
    junit_details = load("job-2", "subunit-details")
    assert junit_details["tests.test_rgw.test_later"] == {"reason": "needs a multisite setup"}
    assert junit_details["tests.test_rgw.TestBucket.test_setup"] == \
        {"error": "E fixture 'rgw' not found"}
    assert [e["name"] for e in load("run", "subunit")] == ["teuthology.nuke.test_nuke"]
    assert load("run", "subunit-stats")["count"] == 1

    # the dstat chart: the front end's parser finds its columns in our file, not in the
    # upload (whose blank line after the preamble shifts the column names by a row)
    names, samples = _dstat_parse(files["dstat.csv"].decode())
    assert {"system_time", "total_cpu_usage_usr", "total_cpu_usage_sys",
            "memory_usage_used", "net_total_recv"} <= set(names)
    assert len(samples) == len(DATA_DSTAT.splitlines()) - 7
    assert all(s["system_time"][:5] in ("31-12", "01-01") for s in samples)
    uploaded_names, _ = _dstat_parse(DATA_DSTAT.decode())
    assert "system_time" not in uploaded_names


def test_gzip_option_gzips_the_data_files(app, reference_run):
    url = f"/exports/runs/{reference_run}/stackviz.tar.gz"
    plain, zipped = _untar(app.get(url).body), _untar(app.get(url + "?gzip=1").body)
    config = json.loads(zipped["config.json"])  # config.json itself stays plain
    plain_config = json.loads(plain["config.json"])
    # as stackviz-export --gzip builds them: `.gz` paths, content_encoding gzip
    assert config["datasets"][0]["artifacts"] == [
        {**a, "path": a["path"] + ".gz", "content_encoding": "gzip"}
        for a in plain_config["datasets"][0]["artifacts"]]
    assert set(zipped) == {"config.json"} | {n + ".gz" for n in plain if n != "config.json"}
    for name, data in plain.items():
        if name != "config.json":
            assert gzip.decompress(zipped[name + ".gz"]) == data
    assert app.get(url + "?gzip=maybe", status=400).json["message"] == \
        "gzip must be a boolean"
    assert app.get(url + "?status=pass", status=400).json["message"] == \
        "unknown parameter 'status'; this export takes: gzip, layout"
    assert app.get(url + "?layout=2015", status=400).json["message"] == \
        "layout must be one of current, legacy"


def test_gzip_stored_dstat_and_several_dstat_logs(app):
    name = run_name()
    upload_results(app, name)
    app.put(f"/runs/{name}/jobs/2/artifacts/logs/dstat.csv.gz", gzip.compress(DATA_DSTAT),
            headers={"Content-Encoding": "gzip"}, status=201)
    files = _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz").body)
    config = json.loads(files["config.json"])
    assert [[a["path"] for a in d["artifacts"] if a["artifact_type"] == "dstat"]
            for d in config["datasets"]] == [[], [], ["dstat.csv"]]
    assert config["datasets"][2]["artifacts"][0]["artifact_name"] == "dstat.csv.gz"
    assert files["dstat.csv"] == _without_blank_lines(DATA_DSTAT)
    # with dstat logs on two jobs, each dataset names its own
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat.csv", DATA_DSTAT, status=201)
    files = _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz").body)
    config = json.loads(files["config.json"])
    assert [[a["path"] for a in d["artifacts"] if a["artifact_type"] == "dstat"]
            for d in config["datasets"]] == [[], ["job-1-dstat.csv"], ["job-2-dstat.csv"]]
    assert files["job-1-dstat.csv"] == files["job-2-dstat.csv"] == \
        _without_blank_lines(DATA_DSTAT)


def test_empty_and_unknown_runs(app):
    name = run_name()
    post_run(app, name)
    assert _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz").body) == \
        {"config.json": b'{"deployer":false,"datasets":[]}'}
    assert _untar(app.get(f"/exports/runs/{name}/stackviz.tar.gz?layout=legacy").body) == \
        {"config.json": b'{"tempest":[]}'}
    assert app.get("/exports/runs/nope/stackviz.tar.gz", status=404).json == \
        {"message": "run not found"}


# ---- ?layout=legacy: the pre-2016 layout, unchanged ------------------------------------------

@pytest.fixture
def run(app):
    name = run_name()
    upload_results(app, name)
    app.put(f"/runs/{name}/jobs/1/artifacts/dstat.csv", DATA_DSTAT, status=201)
    return name


def test_legacy_layout(app, run):
    resp = app.get(f"/exports/runs/{run}/stackviz.tar.gz?layout=legacy")
    files = _untar(resp.body)
    config = json.loads(files["config.json"])
    assert list(config) == ["tempest"]
    assert [(d["id"], d["name"]) for d in config["tempest"]] == [
        (0, f"{run} (run)"), (1, f"{run} job 1"), (2, f"{run} job 2")]
    job1 = config["tempest"][1]
    assert job1 == {"id": 1, "name": f"{run} job 1", "raw": "tempest_1_1_raw.json",
                    "tree": "tempest_1_1_tree.json", "details": "tempest_1_1_details.json",
                    "dstat": "dstat_log.csv"}
    named = {name for d in config["tempest"] for key, name in d.items()
             if key in ("raw", "tree", "details", "dstat")}
    assert set(files) == named | {"config.json"}
    assert files["dstat_log.csv"] == DATA_DSTAT  # as uploaded, byte for byte

    api = {t["test_id"]: t for t in
           app.get(f"/runs/{run}/tests/?details=true").json["tests"] if t["job_id"] == "1"}
    raw = json.loads(files[job1["raw"]])
    assert len(raw) == len(api) == 6
    by_name = {e["name"]: e for e in raw}
    for test_id, test in api.items():
        entry = by_name[stackviz_name(test_id)]
        assert set(entry) == {"status", "name", "tags", "details", "duration", "timestamps"}
        assert entry["status"] == LEGACY_STATUS[test["status"]]
        assert entry["timestamps"] == [iso(test["start"]), iso(test["stop"] or test["start"])]
    assert {e["name"].rsplit(".", 1)[-1]: e["status"] for e in raw} == {
        "test_create": "pass", 'test_a,b["quoted"]': "fail", "test_attach": "skip",
        "test_known_bug": "pass", "test_fixed_bug": "fail", "test_hang": "fail"}
    details = json.loads(files[job1["details"]])
    failing = details[stackviz_name(AWKWARD_ID)]
    assert failing["status"] == "fail"
    assert failing["timestamps"] == by_name[stackviz_name(AWKWARD_ID)]["timestamps"]
    tree = json.loads(files[job1["tree"]])
    assert tree["name"] == "tempest"
    gz = _untar(app.get(f"/exports/runs/{run}/stackviz.tar.gz?layout=legacy&gzip=1").body)
    assert json.loads(gz["config.json"])["tempest"][1]["dstat"] == "dstat_log.csv.gz"


def test_dstat_blank_lines_go_across_chunk_boundaries():
    """The dstat copy drops blank lines however the blob's chunks cut the file: byte by
    byte, CRLF line ends, a last line without its line end."""
    from paddles.services.stackviz import _SkipBlankLines

    class Out:
        data = b""

        def write(self, chunk):
            self.data += chunk

    text = DATA_DSTAT.replace(b"\n", b"\r\n") + b"\r\n  \r\n01-01 00:00:09,1.0"
    for size in (1, 2, 7, 4096, len(text)):
        out = Out()
        lines = _SkipBlankLines(out)
        for i in range(0, len(text), size):
            lines.write(text[i:i + size])
        lines.close()
        assert out.data == _without_blank_lines(text), size
        assert out.data.count(b"\n") == len(DATA_DSTAT.splitlines()) - 1
