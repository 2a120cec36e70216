"""`paddles purge --artifacts-older-than`: rows first, then the blobs nothing names; safe
against uploads of the same content. SQLite and PostgreSQL, local and S3 storage."""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import threading
import time

import pytest
from sqlalchemy import update

from paddles.commands import main
from paddles.db import begin_write
from paddles.models import Artifact
from paddles.services import artifacts as artifact_service
from paddles.streams import spool_body
from tests.factories import job_body

from .conftest import row_counts, stored_blobs

OLD, SHARED, NEW = b"old and alone\n", b"old, but shared with a new one\n", b"new\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def purge(settings, db_engine, monkeypatch, capsys):
    """purge("--artifacts-older-than", "30d", expect=0) -> stderr, with the test's settings."""
    env = {"PADDLES_DATABASE_URL": settings.database_url, "PADDLES_DATA_DIR": settings.data_dir,
           "PADDLES_ARTIFACTS_STORAGE": settings.artifacts_storage}
    for key in ("s3_endpoint_url", "s3_bucket", "s3_access_key_id", "s3_secret_access_key",
                "s3_prefix"):
        env[f"PADDLES_{key.upper()}"] = getattr(settings, key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PADDLES_CONFIG", raising=False)

    def run(*argv, expect=0):
        capsys.readouterr()
        try:
            code = main(["purge", *argv])
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        assert code == expect, err
        return err
    return run


def _age(session, names, days=40):
    session.execute(update(Artifact).where(Artifact.name.in_(names))
                    .values(created=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)))
    session.commit()


def test_purge_deletes_old_artifacts_then_the_blobs_nothing_names(app, job, session, store,
                                                                  purge):
    run, _ = job
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("2", status="running")))
    app.put(f"/runs/{run}/jobs/1/artifacts/old.log", OLD)
    app.put(f"/runs/{run}/jobs/1/artifacts/shared-old.log", SHARED)
    app.put(f"/runs/{run}/jobs/2/artifacts/shared-new.log", SHARED)
    app.put(f"/runs/{run}/artifacts/new.log", NEW)
    _age(session, ["old.log", "shared-old.log"])
    before = stored_blobs(store)

    err = purge("--artifacts-older-than", "30d", "--dry-run")
    assert "would delete 2 artifact(s) created before" in err
    assert f"and 1 blob(s), {len(OLD)} bytes" in err and "dry run: nothing was changed" in err
    assert stored_blobs(store) == before and row_counts(session)["artifacts"] == 4

    err = purge("--artifacts-older-than", "30d")
    assert "deleted 2 artifact(s)" in err and f"deleted 1 unused blob(s), {len(OLD)} bytes" in err
    assert stored_blobs(store) == sorted([sha(SHARED), sha(NEW)])
    assert row_counts(session) == {"artifacts": 2, "blobs": 2, "test_cases": 0}
    assert app.get(f"/runs/{run}/jobs/2/artifacts/shared-new.log").body == SHARED
    app.get(f"/runs/{run}/jobs/1/artifacts/old.log", status=404)
    # nothing is old enough for a second pass
    assert "deleted 0 artifact(s)" in purge("--artifacts-older-than", "12h")


def test_purge_collects_blobs_left_by_deletes_and_old_spool_files(app, job_url, store, purge):
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    abandoned, current = store.spool_dir / "upload-1.part", store.spool_dir / "upload-2.part"
    abandoned.write_bytes(b"half an upload")
    current.write_bytes(b"an upload in progress")
    os.utime(abandoned, (time.time() - 2 * 86400,) * 2)
    app.put(f"{job_url}/artifacts/a.log", OLD)
    app.put(f"{job_url}/artifacts/a.log", NEW, status=200)  # replaced: OLD unused
    app.put(f"{job_url}/artifacts/b.log", SHARED)
    app.delete(f"{job_url}/artifacts/b.log", status=204)
    err = purge("--artifacts-older-than", "90m")
    assert "deleted 0 artifact(s)" in err and "deleted 2 unused blob(s)" in err
    assert "deleted 1 abandoned upload spool file(s)" in err
    assert stored_blobs(store) == [sha(NEW)]
    assert not abandoned.exists() and current.exists()


@pytest.mark.parametrize("argv", [["--artifacts-older-than", "30"],
                                  ["--artifacts-older-than", "0d"],
                                  ["--artifacts-older-than", "3 months"], []])
def test_bad_command_lines_exit_2(purge, argv):
    purge(*argv, expect=2)


def test_upload_of_a_blob_purge_just_deleted_puts_it_back(app, job_url, job, session_factory,
                                                          store, session):
    """The interleaving purge's lock allows: the upload stored the blob (already there), purge
    then deletes it as unreferenced, and the upload's transaction finds it gone."""
    run, job_id = job
    app.put(f"{job_url}/artifacts/a.log", SHARED)
    app.delete(f"{job_url}/artifacts/a.log", status=204)  # blob row stays, unreferenced
    upload = spool_body(io.BytesIO(SHARED), len(SHARED), spool_dir=store.spool_dir, limit=10**6,
                        content_encoding=None, content_type="text/plain")
    prepared = artifact_service.prepare_upload(store, upload, "again.log")  # put: a no-op
    with session_factory.begin() as purge_session:
        begin_write(purge_session)
        assert artifact_service.delete_blob_if_unreferenced(purge_session, store,
                                                            sha(SHARED)) == len(SHARED)
    assert stored_blobs(store) == []
    with session_factory.begin() as upload_session:
        begin_write(upload_session)
        artifact_service.save_artifact(upload_session, store, run, job_id, prepared)
    upload.discard()
    assert stored_blobs(store) == [sha(SHARED)]
    assert app.get(f"{job_url}/artifacts/again.log").body == SHARED
    assert row_counts(session)["blobs"] == 1


def test_purge_waits_for_an_upload_holding_the_blob_then_keeps_it(app, job_url, job,
                                                                  session_factory, store):
    run, job_id = job
    app.put(f"{job_url}/artifacts/a.log", SHARED)
    app.delete(f"{job_url}/artifacts/a.log", status=204)
    upload = spool_body(io.BytesIO(SHARED), len(SHARED), spool_dir=store.spool_dir, limit=10**6,
                        content_encoding=None, content_type="text/plain")
    prepared = artifact_service.prepare_upload(store, upload, "again.log")
    result = {}

    def purge_blob():
        with session_factory.begin() as purge_session:
            begin_write(purge_session)  # SQLite: waits for the write lock
            result["freed"] = artifact_service.delete_blob_if_unreferenced(
                purge_session, store, sha(SHARED))  # PostgreSQL: waits for the row lock
        result["done"] = time.monotonic()

    with session_factory.begin() as upload_session:
        begin_write(upload_session)
        artifact_service.save_artifact(upload_session, store, run, job_id, prepared)
        purger = threading.Thread(target=purge_blob)
        purger.start()
        time.sleep(0.5)
        assert "done" not in result  # blocked behind the upload's lock
        committed = time.monotonic()
    purger.join(timeout=30)
    upload.discard()
    assert result["freed"] is None and result["done"] >= committed
    assert stored_blobs(store) == [sha(SHARED)]
    assert app.get(f"{job_url}/artifacts/again.log").body == SHARED
