"""`paddles export`: the same bytes as the HTTP exports, to a file or stdout; filters and
errors; progress only when asked (stderr is not a terminal here)."""
from __future__ import annotations

import io
import json
import logging
import tarfile

import pytest

from paddles.commands import main
from tests.factories import post_job, run_name

from .conftest import upload_results


@pytest.fixture
def cli(database_url, settings, db_engine, monkeypatch, capsysbinary):
    """cli(*argv, expect=0) -> (stdout bytes, stderr text)."""
    monkeypatch.setenv("PADDLES_DATABASE_URL", database_url)
    monkeypatch.setenv("PADDLES_ADDRESS", settings.address)
    monkeypatch.setenv("PADDLES_DATA_DIR", settings.data_dir)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str, expect: int = 0) -> tuple[bytes, str]:
        capsysbinary.readouterr()
        code = main(["export", *argv])
        out, err = capsysbinary.readouterr()
        assert code == expect, err
        return out, err.decode()

    yield run
    root.handlers[:], root.level = handlers, level


@pytest.fixture
def run(app):
    name = run_name()
    upload_results(app, name)
    post_job(app, run_name(user="zed"), 1, status="pass", branch="squid")
    return name


def test_stdout_gives_the_http_bytes(app, cli, run):
    for argv, url in (
            (["runs"], "/exports/runs.csv"),
            (["runs", "-f", "jsonl", "--branch", "squid"], "/exports/runs.jsonl?branch=squid"),
            (["runs", "--format", "json", "--user", "zed", "--since", "2024-01-01",
              "--until", "today"], "/exports/runs.json?user=zed&since=2024-01-01&until=today"),
            (["jobs", run], f"/exports/runs/{run}/jobs.csv"),
            (["jobs", run, "-f", "json", "--status", "running"],
             f"/exports/runs/{run}/jobs.json?status=running"),
            (["tests", run, "-f", "junit.xml"], f"/exports/runs/{run}/tests.junit.xml"),
            (["tests", run, "-f", "subunit", "--status", "fail"],
             f"/exports/runs/{run}/tests.subunit?status=fail"),
            (["tests", run, "-o", "-"], f"/exports/runs/{run}/tests.csv")):
        out, err = cli(*argv)
        assert out == app.get(url).body, argv
        assert err == ""  # no progress: stderr is not a terminal


def test_output_file_and_format_from_its_suffix(app, cli, run, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    target = tmp_path / "tests.junit.xml"
    out, err = cli("tests", run, "-o", str(target))
    assert (out, err) == (b"", "")
    assert target.read_bytes() == app.get(f"/exports/runs/{run}/tests.junit.xml").body
    jobs = tmp_path / "jobs.jsonl"
    cli("jobs", run, "-o", str(jobs), "--no-progress")
    assert jobs.read_bytes() == app.get(f"/exports/runs/{run}/jobs.jsonl").body
    stackviz = tmp_path / "dataset.tar.gz"
    _, err = cli("stackviz", run, "--gzip", "-o", str(stackviz), "--progress")
    assert stackviz.read_bytes() == app.get(f"/exports/runs/{run}/stackviz.tar.gz?gzip=1").body
    assert err.startswith("\rexport stackviz: ") and "11/11 rows (100%)" in err
    assert err.endswith("\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dataset.tar.gz", "jobs.jsonl", "tests.junit.xml"]  # no leftover temporary files


def _untar(body: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_stackviz_writes_the_http_archive(app, cli, run):
    for argv, query in (((), ""), (("--layout", "current"), ""),
                        (("--layout", "legacy"), "?layout=legacy"),
                        (("--layout", "legacy", "--gzip"), "?layout=legacy&gzip=1")):
        out, err = cli("stackviz", run, *argv)
        assert out == app.get(f"/exports/runs/{run}/stackviz.tar.gz{query}").body
        files = _untar(out)
        assert ("datasets" in json.loads(files["config.json"])) == ("legacy" not in argv)
    with pytest.raises(SystemExit) as exit_info:
        cli("stackviz", run, "--layout", "2015")
    assert exit_info.value.code == 2


def test_errors_leave_no_file(cli, run, tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    target = tmp_path / "x.csv"
    _, err = cli("jobs", "no-such-run", "-o", str(target), expect=1)
    assert err == "paddles export: error: run not found\n"
    _, err = cli("runs", "--since", "last-week", "-o", str(target), expect=1)
    assert err.startswith("paddles export: error: since must be YYYY-MM-DD")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(SystemExit) as exit_info:
        cli("runs", "--status", "bogus")
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit):
        cli("tests", run, "-f", "xml")
