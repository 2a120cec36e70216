"""What the admin commands share: one transaction per command, dry runs, progress lines.

Exit codes: 0 done (also a dry run, and "nothing to do"), 1 the command failed (bad input,
unknown run or node, database error; nothing was changed), 2 bad command line (argparse).
"""
from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator

from sqlalchemy.orm import Session

from ..db import begin_write, make_engine, make_session_factory

# Below this many items a command prints no progress at all.
PROGRESS_MIN_ITEMS = 1000


@contextmanager
def transaction(settings, *, write: bool = True, dry_run: bool = False) -> Iterator[Session]:
    """One session and one transaction; committed at the end unless `dry_run` (rolled back).

    A dry run does exactly the work of a real one, so what it reports is what a real run
    would do, and then undoes it.
    """
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        with make_session_factory(
                engine, topic_prefix=settings.event_topic_prefix).begin() as session:
            if write and not dry_run:
                begin_write(session)  # SQLite: take the write lock up front
            yield session
            if dry_run:
                session.rollback()
    finally:
        engine.dispose()


def add_dry_run(parser: argparse.ArgumentParser,
                help: str = "report what would change, change nothing") -> None:
    parser.add_argument("-n", "--dry-run", action="store_true", help=help)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


class Progress:
    """`progress(done, total)` callback: a stderr line per 5 % step once there are many items."""

    def __init__(self, label: str, stream=None, min_items: int = PROGRESS_MIN_ITEMS):
        self.label = label
        self.stream = stream or sys.stderr
        self.min_items = min_items
        self.last_step = -1
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        if total < self.min_items:
            return
        step = done * 20 // total
        if step == self.last_step and done != total:
            return
        self.last_step = step
        elapsed = time.monotonic() - self.started
        print(f"{self.label}: {done}/{total} ({100 * done // total}%) {elapsed:.0f}s",
              file=self.stream, flush=True)


def note(text: str) -> None:
    """A summary line for humans: stderr, so stdout stays data."""
    print(text, file=sys.stderr, flush=True)


def dry_run_note(args) -> None:
    if getattr(args, "dry_run", False):
        note("dry run: nothing was changed")
