"""What the database or a header could not take was a 500 (issue #18, item 7: what fuzzing
the artifact routes found). An upload is stored whatever its content; what its parser read
is stored too, made storable, or else the artifact says why not (parse_status "error"); a
type guessed from its name is one a header can carry. SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import io
from urllib.parse import quote

import pytest
from sqlalchemy import update
from subunit.v2 import StreamResultToBytes

from paddles import parsers
from paddles.models import Artifact
from paddles.parsers import ParsedTest, ParseResult

T0 = dt.datetime(2024, 1, 15, 20, 0, 0, tzinfo=dt.timezone.utc)
REPLACED = "\ufffd"


@pytest.fixture
def storage_kind():
    return "local"  # parsing does not depend on the blob backend


def _subunit(test_id="t.one", tags=None, attachment=b"", mime="text/plain; charset=utf8"):
    out = io.BytesIO()
    w = StreamResultToBytes(out)
    w.status(test_id=test_id, test_status="inprogress", timestamp=T0, test_tags=tags)
    w.status(test_id=test_id, file_name="traceback", file_bytes=attachment, mime_type=mime,
             eof=True, timestamp=T0)
    w.status(test_id=test_id, test_status="fail", timestamp=T0, test_tags=tags)
    return out.getvalue()


def _put(app, url, body, status=201):
    art = app.put(url, body, status=status).json
    assert app.get(url.split("?")[0]).body == body  # the upload itself is kept as sent
    return art


def test_nul_in_a_subunit_attachment(app, job_url):
    """PostgreSQL refuses NUL in text and in jsonb: the traceback's NUL was a 500."""
    body = _subunit(attachment=b"Traceback\nValueError: bad \x00 byte\n")
    art = _put(app, f"{job_url}/artifacts/nul.subunit", body)
    assert (art["kind"], art["parse_status"]) == ("subunit", "ok")
    [test] = app.get(f"{job_url}/tests/?details=true").json["tests"]
    assert test["message"] == f"ValueError: bad {REPLACED} byte"
    assert test["details"] == {"traceback": f"Traceback\nValueError: bad {REPLACED} byte\n"}


def test_lone_surrogate_from_an_attachment_charset(app, job_url):
    """An attachment's charset is the client's: utf-7 decodes '+2AA-' to a lone surrogate,
    which no backend can encode (a 500 on SQLite and PostgreSQL)."""
    body = _subunit(attachment=b"Traceback\nError: +2AA-\n", mime="text/plain; charset=utf-7")
    art = _put(app, f"{job_url}/artifacts/utf7.subunit", body)
    assert art["parse_status"] == "ok"
    [test] = app.get(f"{job_url}/tests/?details=true").json["tests"]
    assert test["message"] == f"Error: {REPLACED}"


def test_long_worker_tag(app, job_url):
    """worker is 64 characters at most: a longer worker-* tag was a 400 on PostgreSQL
    (and kept whole on SQLite). The worker is left out; the tag stays."""
    tag = "worker-" + "x" * 80
    art = _put(app, f"{job_url}/artifacts/w.subunit", _subunit(tags={tag, "smoke"}))
    assert art["parse_status"] == "ok"
    [test] = app.get(f"{job_url}/tests/").json["tests"]
    assert test["worker"] is None and tag in test["tags"]
    short = _put(app, f"{job_url}/artifacts/w2.subunit",
                 _subunit(test_id="t.two", tags={"worker-" + "y" * 57}))
    assert short["parse_status"] == "ok"
    tests = {t["test_id"]: t for t in app.get(f"{job_url}/tests/").json["tests"]}
    assert tests["t.two"]["worker"] == "worker-" + "y" * 57


def test_nul_in_dstat_columns(app, job_url):
    """csv reads NUL (Python 3.11+) into a column name: jsonb refused it, a 500. (A NUL makes
    the content look binary: the client names the kind.)"""
    body = (b'"Dstat 0.7.4 CSV output"\n\n"system","total cpu usage",,\n'
            b'"time","us\x00r","sys","idl"\n"15-01 20:00:00",1,2,97\n')
    art = _put(app, f"{job_url}/artifacts/dstat.csv?kind=dstat", body)
    assert (art["kind"], art["parse_status"]) == ("dstat", "ok")
    timeline = app.get(f"{job_url}/timeline/").json
    assert timeline["columns"][1] == f"total cpu usage/us{REPLACED}r"


@pytest.mark.parametrize("timestamp", ["0001-01-01T00:00:00+01:00",
                                       "9999-12-31T23:59:59-01:00"])
def test_junit_timestamp_without_a_utc_datetime(app, job_url, timestamp):
    """Converting these to UTC overflows Python's datetime: a 500 on both backends. The
    timestamp is unreadable, like any other bad one; the test case stays."""
    body = (f'<testsuite><testcase name="a" time="1" timestamp="{timestamp}"/>'
            f'<testcase name="b" timestamp="2024-01-15T21:00:00+01:00"/></testsuite>').encode()
    art = _put(app, f"{job_url}/artifacts/junit.xml", body)
    assert (art["kind"], art["parse_status"]) == ("junit", "ok")
    tests = {t["test_id"]: t for t in app.get(f"{job_url}/tests/").json["tests"]}
    assert (tests["a"]["start"], tests["a"]["stop"], tests["a"]["duration"]) == (None, None, 1)
    assert tests["b"]["start"] == "2024-01-15 20:00:00"


def test_junit_huge_or_infinite_time(app, job_url):
    """time="1e300" with a timestamp overflowed and lost every test case of the file;
    time="inf" was kept as an infinite duration."""
    body = (b'<testsuite><testcase name="a" time="1e300" timestamp="2024-01-15T20:00:00Z"/>'
            b'<testcase name="b" time="inf"/><testcase name="c" time="2.5"/></testsuite>')
    art = _put(app, f"{job_url}/artifacts/junit.xml", body)
    assert (art["parse_status"], art["parse_error"]) == ("ok", None)
    tests = {t["test_id"]: t for t in app.get(f"{job_url}/tests/").json["tests"]}
    assert (tests["a"]["start"], tests["a"]["stop"]) == ("2024-01-15 20:00:00", None)
    assert tests["a"]["duration"] == 1e300
    assert tests["b"]["duration"] is None and tests["c"]["duration"] == 2.5


def test_a_value_the_database_refuses_is_a_parse_error(app, job_url, monkeypatch):
    """Whatever a parser still gets wrong: its rows are not stored, the artifact is, with
    the reason (the upload used to fail whole, with a 500)."""
    far = dt.datetime(1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5)))  # no UTC value

    def bad_parser(stream):
        return ParseResult(tests=[ParsedTest("t.ok", "pass"),
                                  ParsedTest("t.bad", "pass", start=far)])

    monkeypatch.setitem(parsers._PARSERS, "junit", bad_parser)
    body = b'<testsuite><testcase name="a"/></testsuite>'
    art = _put(app, f"{job_url}/artifacts/junit.xml", body)
    assert (art["kind"], art["parse_status"]) == ("junit", "error")
    assert art["parse_error"] == "junit: parsed results could not be stored (OverflowError)"
    assert app.get(f"{job_url}/tests/").json["counts"]["total"] == 0
    listed = app.get(f"{job_url}/artifacts/").json
    assert [(a["name"], a["parse_status"]) for a in listed] == [("junit.xml", "error")]


# ---- a Content-Type guessed from the name ---------------------------------------------------

@pytest.mark.parametrize("name", ["data:\u0100/x,y", "data:t/" + "a" * 300 + ",y"])
def test_a_data_url_name_is_not_a_type(app, job_url, name):
    """mimetypes read a name beginning `data:` as a data URL and returned its TYPE as
    written: a non-Latin-1 one made gunicorn refuse every download (a 500), a long one was a
    400 on PostgreSQL (and kept whole on SQLite). The name is a path, never a URL."""
    url = f"{job_url}/artifacts/{quote(name)}"
    art = app.put(url, b"hello\n", status=201).json  # no Content-Type: guessed
    assert art["content_type"] == "text/plain; charset=utf-8"
    resp = app.get(url)
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.body == b"hello\n"


def test_a_stored_type_no_header_can_carry_is_served_as_octet_stream(app, job_url, session):
    """Rows stored before the fix keep their guess; their downloads work again."""
    url = f"{job_url}/artifacts/old.log"
    app.put(url, b"hello\n", status=201)
    session.execute(update(Artifact).where(Artifact.name == "old.log")
                    .values(content_type="\u0100/x"))
    session.commit()
    resp = app.get(url)
    assert resp.headers["Content-Type"] == "application/octet-stream"
    assert resp.body == b"hello\n"
    assert app.head(url).headers["Content-Type"] == "application/octet-stream"
