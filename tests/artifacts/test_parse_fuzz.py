"""Fuzz the parsed formats through PUT: subunit, JUnit and dstat files that are well formed
but carry odd values (any attachment bytes in any declared charset, timestamps at the ends of
the calendar, infinite times, NUL in CSV cells, long worker tags), where schemathesis' random
bodies never reach. Every upload is stored (201/200), never a 5xx, and its test cases and
timeline read back. Bounded like tests/api/test_fuzz.py: PADDLES_FUZZ_EXAMPLES examples
(default 15, derandomized), PADDLES_FUZZ_SEED to draw others. SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import io
import os
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, given, seed, settings as hyp_settings, strategies as st
from subunit.v2 import StreamResultToBytes

EXAMPLES = int(os.environ.get("PADDLES_FUZZ_EXAMPLES") or 15)
SEED = os.environ.get("PADDLES_FUZZ_SEED")

text = st.text(max_size=40)
no_nul = text.map(lambda s: s.replace("\x00", ""))
when = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1),
                    timezones=st.just(dt.timezone.utc))
charsets = st.sampled_from(["utf8", "utf-7", "utf-16", "latin-1", "unicode_escape",
                            "raw_unicode_escape", "bogus", "ascii"])
statuses = st.sampled_from(["success", "fail", "skip", "xfail", "uxsuccess", "exists",
                            "inprogress"])


@st.composite
def subunit_files(draw) -> bytes:
    out = io.BytesIO()
    w = StreamResultToBytes(out)
    for _ in range(draw(st.integers(1, 3))):
        test_id = draw(no_nul) or "t"
        tags = draw(st.sets(st.one_of(no_nul, no_nul.map(lambda s: "worker-" + s * 9)),
                            max_size=2))
        tags = {t for t in tags if t} or None
        at = draw(when)
        w.status(test_id=test_id, test_status="inprogress", timestamp=at, test_tags=tags)
        w.status(test_id=test_id, file_name=draw(no_nul) or "traceback",
                 file_bytes=draw(st.binary(max_size=80)), eof=True, timestamp=at,
                 mime_type=f"text/plain; charset={draw(charsets)}")
        w.status(test_id=test_id, test_status=draw(statuses), timestamp=at, test_tags=tags)
    return out.getvalue()


xml_text = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=
                                 "\ufffe\uffff"), max_size=30)
stamps = st.one_of(xml_text, st.sampled_from([
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00",
    "2024-01-15T20:00:00Z", "2024-01-15T20:00:00+05:30"]))
times = st.one_of(xml_text, st.sampled_from(["inf", "1e400", "nan", "-1", "1e300", "1,000.5"]))


@st.composite
def junit_files(draw) -> bytes:
    cases = "".join(
        f"<testcase classname={quoteattr(draw(xml_text))} name={quoteattr(draw(xml_text))} "
        f"time={quoteattr(draw(times))} timestamp={quoteattr(draw(stamps))}>"
        f"<failure message={quoteattr(draw(xml_text))}/></testcase>"
        for _ in range(draw(st.integers(1, 3))))
    return f"<testsuites><testsuite name='s'>{cases}</testsuite></testsuites>".encode()


cells = st.one_of(text.map(lambda s: '"' + s.replace('"', '""') + '"'),
                  st.floats().map(str),
                  st.sampled_from(["15-01 20:00:00", "31-02 10:00:00", "1e400", ""]))


@st.composite
def dstat_files(draw) -> bytes:
    groups = ",".join(draw(st.lists(cells, max_size=3)))
    rows = "\n".join(",".join(draw(st.lists(cells, min_size=1, max_size=4)))
                     for _ in range(draw(st.integers(0, 4))))
    return (f'"Dstat 0.7.4 CSV output"\n"Date:",{draw(cells)}\n\n'
            f'"system","total cpu usage",{groups}\n"time","usr","sys","idl"\n{rows}\n'
            ).encode("utf-8", "surrogatepass")


FILES = st.one_of(subunit_files().map(lambda b: ("subunit", b)),
                  junit_files().map(lambda b: ("junit", b)),
                  dstat_files().map(lambda b: ("dstat", b)))


@pytest.fixture
def storage_kind():
    return "local"


def test_parsed_uploads_never_fail(app, job_url):
    @hyp_settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=SEED is None, suppress_health_check=list(HealthCheck))
    @given(kind_and_body=FILES, scope=st.sampled_from(["run", "job"]))
    def upload(kind_and_body, scope):
        kind, body = kind_and_body
        base = job_url if scope == "job" else job_url.rsplit("/jobs/", 1)[0]
        resp = app.put(f"{base}/artifacts/fuzzed?kind={kind}", body, expect_errors=True)
        assert resp.status_int in (200, 201), resp.body[:300]
        assert resp.json["kind"] == kind and resp.json["parse_status"] in ("ok", "error")
        assert app.get(f"{base}/artifacts/fuzzed").body == body
        tests = app.get(f"{base}/tests/?details=true").json
        assert tests["counts"]["total"] == len(tests["tests"])
        if scope == "job":
            app.get(f"{job_url}/timeline/", status=(200, 404))

    if SEED is not None:
        upload = seed(int(SEED))(upload)
    upload()
