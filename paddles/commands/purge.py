"""`paddles purge`: retention. Safe to run while the server is serving.

--artifacts-older-than AGE deletes the artifacts uploaded (or last replaced) more than AGE
ago, with the test cases and timelines parsed from them, in one transaction; then, each in
its own short transaction, every stored blob no artifact names any more (also those left by
DELETEs and by deleted runs and jobs). A blob is deleted only when, under its row lock, no
artifact names it; an upload of the same content that races the deletion finds the blob gone
and stores it again. Upload spool files untouched for a day (left by killed workers) go
too. AGE is a number and a unit: 30d, 12h, 90m (also s, w).

--events-older-than AGE deletes the events recorded more than AGE ago (the spec suggests
90d), with their webhook deliveries, in batches of short transactions. Give either option
or both.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re

from ..db import begin_write, make_engine, make_session_factory
from ..models import utcnow
from ..services import artifacts as artifact_service
from ..services import events as event_service
from ..storage import make_blob_store
from ..streams import clean_spool
from ._common import Progress, add_dry_run, dry_run_note, note

SPOOL_MAX_AGE = 24 * 3600  # seconds; no upload takes that long
EVENT_BATCH = 5000  # events deleted per transaction

_AGE = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def age(text: str) -> dt.timedelta:
    match = _AGE.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an age like 30d, 12h or 90m")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def register(sub):
    parser = sub.add_parser("purge", help="delete old artifacts (and the blobs they leave "
                                          "unused) and old events", description=__doc__)
    parser.add_argument("--artifacts-older-than", type=age, metavar="AGE",
                        help="delete artifacts older than this (30d, 12h, 90m)")
    parser.add_argument("--events-older-than", type=age, metavar="AGE",
                        help="delete events (and their webhook deliveries) older than this")
    add_dry_run(parser)
    return parser


def run(args, settings) -> int:
    if args.artifacts_older_than is None and args.events_older_than is None:
        note("paddles purge: nothing to purge: give --artifacts-older-than AGE and/or "
             "--events-older-than AGE")
        return 2
    if args.events_older_than is not None:
        purge_events(args, settings)
    if args.artifacts_older_than is None:
        return 0
    cutoff = utcnow() - args.artifacts_older_than
    store = make_blob_store(settings)
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    sessions = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)
    try:
        if args.dry_run:
            with sessions() as session:
                plan = artifact_service.plan_purge(session, cutoff)
                blobs = artifact_service.unreferenced_blobs(session, keep_after=cutoff)
            note(f"would delete {plan.artifacts} artifact(s) created before "
                 f"{cutoff:%Y-%m-%d %H:%M:%S} UTC, and {len(blobs)} blob(s), "
                 f"{sum(b.size for b in blobs)} bytes")
            dry_run_note(args)
            return 0
        with sessions.begin() as session:
            begin_write(session)
            deleted = artifact_service.delete_artifacts_before(session, cutoff)
        note(f"deleted {deleted} artifact(s) created before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
        with sessions() as session:
            shas = [blob.sha256 for blob in artifact_service.unreferenced_blobs(session)]
        progress = Progress("purge: blobs")
        blobs = freed = 0
        for done, sha in enumerate(shas, 1):
            with sessions.begin() as session:  # one short lock per blob
                begin_write(session)
                size = artifact_service.delete_blob_if_unreferenced(session, store, sha)
            if size is not None:
                blobs += 1
                freed += size
            progress(done, len(shas))
        note(f"deleted {blobs} unused blob(s), {freed} bytes")
        spooled = clean_spool(store.spool_dir, SPOOL_MAX_AGE)
        if spooled:
            note(f"deleted {spooled} abandoned upload spool file(s)")
        return 0
    finally:
        engine.dispose()


def purge_events(args, settings) -> None:
    cutoff = utcnow() - args.events_older_than
    engine = make_engine(settings.database_url, pool_size=1, max_overflow=0)
    sessions = make_session_factory(engine, topic_prefix=settings.event_topic_prefix)
    try:
        with sessions() as session:
            total = event_service.count_events_before(session, cutoff)
        if args.dry_run:
            note(f"would delete {total} event(s) recorded before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
            if args.artifacts_older_than is None:
                dry_run_note(args)
            return
        progress = Progress("purge: events")
        deleted = 0
        while True:
            with sessions.begin() as session:  # short transactions: writers wait little
                begin_write(session)
                batch = event_service.delete_events_before(session, cutoff,
                                                           batch=EVENT_BATCH)
            deleted += batch
            progress(min(deleted, total), max(total, 1))
            if batch < EVENT_BATCH:
                break
        note(f"deleted {deleted} event(s) recorded before {cutoff:%Y-%m-%d %H:%M:%S} UTC")
    finally:
        engine.dispose()
