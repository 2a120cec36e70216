"""The one filter table for /runs/ chains (spec 3.5-3.7): URL segments to SQL conditions.

`parse_chain` turns the path segments after /runs/ into a Chain; `Chain.conditions()` gives
the WHERE clauses. The URL tree, exports and the CLI all filter runs through this module.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from sqlalchemy import ColumnElement, Date, and_, false, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from .errors import InvalidRequest, NotFound
from .models import Job, Run
from .models.statuses import RUN_STATUS_VALUES
from .schemas.common import next_day, parse_day, to_utc


class utc_date(FunctionElement):
    """The UTC calendar day of a timestamp, whatever the database session's time zone."""
    type = Date()
    inherit_cache = True


@compiles(utc_date)
def _utc_date_default(element, compiler, **kw):  # SQLite stores naive UTC text
    return f"date({compiler.process(element.clauses, **kw)})"


@compiles(utc_date, "postgresql")
def _utc_date_pg(element, compiler, **kw):  # date() of a timestamptz follows the session zone
    return f"CAST(timezone('UTC', {compiler.process(element.clauses, **kw)}) AS DATE)"


def like_prefix(value: str) -> str:
    """`value%` with LIKE's wildcards escaped, as ONE bound string, so PostgreSQL plans a
    prefix range on the pattern-ops index (`startswith()` sends `:v || '%'`)."""
    escaped = value.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return escaped + "%"


def _job_has(cond: Callable[[type[Job], str], ColumnElement]
             ) -> Callable[[str], ColumnElement]:
    """`runs.id IN (job run ids matching)`. Each use gets its own alias, so it combines with
    other job filters and with job-valued indexes that select from the jobs table themselves.

    IN rather than a correlated EXISTS: PostgreSQL then estimates the match from the jobs
    index and picks the plan that fits. Measured at 1M jobs: a rare sha1 prefix 270 ms with
    EXISTS (it walked every run by date) and 0.5 ms with IN; a common flavor 0.5 ms either way.
    """
    def condition(value: str) -> ColumnElement:
        job = aliased(Job)
        return Run.id.in_(select(job.run_id).where(cond(job, value)))
    return condition


def _on_day(value: str) -> ColumnElement:
    start = parse_day(value)
    return and_(Run.scheduled >= start, Run.scheduled < next_day(start))


@dataclasses.dataclass(frozen=True)
class Filter:
    name: str                                   # nested spelling
    condition: Callable[[str], ColumnElement]   # value -> WHERE clause on runs
    index_column: ColumnElement                  # what a bare `<filter>/` lists
    on_jobs: bool = False                        # index lists job values
    top_level: str | None = None                 # first-segment spelling, when it differs
    in_query: bool = True                        # a `?name=` of exports and the CLI


FILTERS: dict[str, Filter] = {f.name: f for f in (
    Filter("branch", lambda v: Run.branch == v, Run.branch),
    Filter("suite", lambda v: Run.suite == v, Run.suite),
    Filter("machine_type", lambda v: Run.machine_type == v, Run.machine_type),
    Filter("status", lambda v: Run.status == v if v in RUN_STATUS_VALUES else false(),
           Run.status),
    Filter("user", lambda v: Run.user == v, Run.user),
    Filter("sha1", _job_has(lambda job, v: job.sha1.like(like_prefix(v), escape="/")),
           Job.sha1, on_jobs=True),
    Filter("flavor", _job_has(lambda job, v: job.flavor == v), Job.flavor, on_jobs=True,
           top_level="flavors"),
    # the query string bounds days with since/until instead
    Filter("date", _on_day, utc_date(Run.scheduled), in_query=False),
)}
# The filters as the first segment after /runs/ spells them -> their name. The order of
# FILTERS is that of the routes in the OpenAPI document.
TOP_LEVEL = {f.top_level or f.name: f.name for f in FILTERS.values()}
# every /runs/<one of these>/... is a filter route (controllers/runs.py, routes.py)
RESERVED = frozenset(TOP_LEVEL) | {"queued"}


@dataclasses.dataclass
class Chain:
    pairs: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    index: str | None = None                    # bare `<filter>/` at the end
    date_range: tuple[dt.datetime, dt.datetime] | None = None
    empty: bool = False                         # `date/from/A/` alone
    queued: bool = False

    @property
    def last(self) -> str | None:
        return self.pairs[-1][0] if self.pairs else None

    def conditions(self) -> list[ColumnElement]:
        conds = [FILTERS[name].condition(value) for name, value in self.pairs]
        if self.date_range is not None:
            start, end = self.date_range
            conds.append(Run.scheduled >= start)
            conds.append(Run.scheduled < end)
        return conds


def parse_chain(segments: list[str]) -> Chain:
    segs = [s for s in segments if s != ""]
    chain = Chain()
    if segs == ["queued"]:
        chain.queued = True
        return chain
    i, previous = 0, None
    while i < len(segs):
        seg = segs[i]
        name = TOP_LEVEL.get(seg) if i == 0 else (seg if seg in FILTERS else None)
        if name is None or name == previous:
            raise NotFound("resource was not found")
        if i + 1 == len(segs):
            chain.index = name
            return chain
        if name == "date" and segs[i + 1] == "from":
            return _date_range(chain, segs[i + 2:])
        chain.pairs.append((name, segs[i + 1]))
        previous = name
        i += 2
    return chain


def _date_range(chain: Chain, rest: list[str]) -> Chain:
    if len(rest) == 1:
        parse_day(rest[0])
        chain.empty = True
        return chain
    if len(rest) != 3 or rest[1] != "to":
        raise NotFound("resource was not found")
    chain.date_range = (parse_day(rest[0]), next_day(parse_day(rest[2])))
    return chain


# ---- query-string filters: exports and the CLI ------------------------------------------

QUERY_FILTERS = tuple(f.name for f in FILTERS.values() if f.in_query)
QUERY_BOUNDS = ("since", "until")


def parse_query(params) -> list[ColumnElement]:
    """`?branch=main&status=running&since=2024-01-01`: WHERE clauses on runs, from FILTERS.

    `since`/`until` bound `scheduled`: a day (`YYYY-MM-DD`, `today`, `yesterday`) means from
    its midnight UTC / through its end; an ISO 8601 time means that instant (naive = UTC).
    Unknown, repeated or empty keys and impossible values are a 400 (the URL chains answer
    an unknown status with no runs instead, as upstream does).
    """
    seen: set[str] = set()
    conds: list[ColumnElement] = []
    for key, value in params.items():
        if key not in QUERY_FILTERS and key not in QUERY_BOUNDS:
            raise InvalidRequest(f"unknown filter {key!r}; filters are "
                                 + ", ".join(QUERY_FILTERS + QUERY_BOUNDS))
        if key in seen:
            raise InvalidRequest(f"{key} is given more than once")
        seen.add(key)
        if value is None or str(value).strip() == "":
            raise InvalidRequest(f"{key} must not be empty")
        if key == "status" and value not in RUN_STATUS_VALUES:
            raise InvalidRequest("status must be one of " + ", ".join(RUN_STATUS_VALUES))
        if key == "since":
            start, _ = _bound(key, value)
            conds.append(Run.scheduled >= start)
        elif key == "until":
            end, is_day = _bound(key, value)
            conds.append(Run.scheduled < next_day(end) if is_day else Run.scheduled <= end)
        else:
            conds.append(FILTERS[key].condition(value))
    return conds


def _bound(key: str, text: str) -> tuple[dt.datetime, bool]:
    """(instant, True when `text` named a whole day)."""
    try:
        return parse_day(text), True
    except InvalidRequest:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{key} must be YYYY-MM-DD, today, yesterday or an ISO 8601 "
                             "time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return to_utc(key, when), False
