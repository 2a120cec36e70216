"""Run `paddles <command>` in-process against the fixture database (SQLite and PostgreSQL)."""
from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from sqlalchemy import func, select, update

from paddles.commands import main
from paddles.models import Job, Run
from paddles.models.statuses import COUNT_KEYS, count_key, run_status


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def json(self):
        return json.loads(self.out)


@pytest.fixture
def cli(database_url, db_engine, monkeypatch, capsys):
    """cli("expire-jobs", "--dry-run", expect=0) -> Result; asserts the exit code."""
    monkeypatch.setenv("PADDLES_DATABASE_URL", database_url)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)
    monkeypatch.delenv("PADDLES_TIMEZONE", raising=False)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level

    def run(*argv: str, expect: int = 0) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert code == expect, f"exit {code}\nstdout:\n{out}\nstderr:\n{err}"
        return Result(code, out, err)

    yield run
    root.handlers[:], root.level = handlers, level


def recomputed(session) -> dict[str, dict]:
    """Per run name: counts and status as the jobs say (independent of the services)."""
    session.rollback()
    out = {name: {**{k: 0 for k in COUNT_KEYS}, "total": 0}
           for name in session.scalars(select(Run.name))}
    for name, status, n in session.execute(
            select(Run.name, Job.status, func.count()).join(Job, Job.run_id == Run.id)
            .group_by(Run.name, Job.status)):
        out[name][count_key(status)] += n
        out[name]["total"] += n
    for counts in out.values():
        counts["status"] = run_status(counts).value
    return out


def stored(session) -> dict[str, dict]:
    session.rollback()  # a fresh snapshot (SQLite keeps one per read transaction)
    return {run.name: {**run.counts(), "status": run.status.value}
            for run in session.scalars(select(Run))}


def job_statuses(session) -> dict[tuple[str, str], str | None]:
    session.rollback()  # a fresh snapshot (SQLite keeps one per read transaction)
    return {(name, job_id): (status.value if status else None) for name, job_id, status in
            session.execute(select(Run.name, Job.job_id, Job.status)
                            .join(Run, Job.run_id == Run.id))}


def set_job_fields(engine, run: str, job_id, **values) -> None:
    """Direct UPDATE of one job, bypassing the services (to fake old or broken data)."""
    run_id = select(Run.id).where(Run.name == run).scalar_subquery()
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.run_id == run_id, Job.job_id == str(job_id))
                     .values(**values))
