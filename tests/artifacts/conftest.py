"""Artifact fixtures: the storage backend (local directory, or S3 against a real S3 protocol
server: moto in server mode, started once per session) and helpers to look at what is stored.

Every test here runs on SQLite and PostgreSQL (the `database_url` fixture); tests that touch
storage also run on both backends (`storage_kind`). Modules that only parse override
`storage_kind` to "local".
"""
from __future__ import annotations

import dataclasses
import io
import json
import socket
import uuid
from pathlib import Path

import boto3
import pytest
import webtest
from sqlalchemy import func, select

from paddles.app import make_app
from paddles.models import Artifact, Blob, TestCase
from paddles.settings import load_settings
from paddles.storage import LocalBlobStore, make_blob_store
from tests.factories import job_body, run_name

DATA = Path(__file__).parent / "data"
S3_KEYS = {"s3_access_key_id": "testing", "s3_secret_access_key": "testing",
           "s3_region": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 protocol server (moto's server mode) on a free local port."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def storage_kind(request) -> str:
    return request.param


def s3_client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


@pytest.fixture
def settings(database_url, storage_kind, tmp_path, request):
    values = dict(database_url=database_url, address="http://paddles.test",
                  default_latest_runs_count=25, data_dir=str(tmp_path / "data"),
                  artifacts_storage=storage_kind)
    if storage_kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"paddles-{uuid.uuid4().hex[:12]}"
        s3_client(endpoint).create_bucket(Bucket=bucket)
        values.update(s3_endpoint_url=endpoint, s3_bucket=bucket, s3_prefix="blobs/", **S3_KEYS)
    return load_settings(environ={}, **values)


@pytest.fixture
def store(settings):
    return make_blob_store(settings)


@pytest.fixture
def make_client(settings, session_factory):
    """A webtest app with settings changed, e.g. make_client(artifacts_max_size=1000)."""
    def build(**changes):
        return webtest.TestApp(make_app(dataclasses.replace(settings, **changes),
                                        session_factory=session_factory))
    return build


@pytest.fixture
def job(app):
    """(run name, job_id) of a fresh job, made through the API as teuthology does."""
    run = run_name()
    app.post(f"/runs/{run}/jobs/", json.dumps(job_body("1", status="running")))
    return run, "1"


@pytest.fixture
def job_url(job) -> str:
    run, job_id = job
    return f"/runs/{run}/jobs/{job_id}"


# ---- what is stored -------------------------------------------------------------------------

def stored_blobs(store) -> list[str]:
    """sha256 of every blob the backend holds."""
    if isinstance(store, LocalBlobStore):
        if not store.root.exists():
            return []
        return sorted(p.name for p in store.root.glob("??/??/*") if p.is_file())
    keys = []
    for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket):
        keys += [obj["Key"].rsplit("/", 1)[-1] for obj in page.get("Contents", [])]
    return sorted(keys)


def spool_files(store) -> list[Path]:
    """Leftover temporary files: the spool, and partial files beside local blobs."""
    leftovers = list(store.spool_dir.glob("*")) if store.spool_dir.exists() else []
    if isinstance(store, LocalBlobStore) and store.root.exists():
        leftovers += list(store.root.glob("??/??/.*"))
    return leftovers


def blob_bytes(store, sha256: str) -> bytes:
    return b"".join(store.open_range(sha256))


def row_counts(session) -> dict[str, int]:
    session.rollback()  # a fresh snapshot
    return {name: session.scalar(select(func.count()).select_from(model))
            for name, model in (("artifacts", Artifact), ("blobs", Blob),
                                ("test_cases", TestCase))}


# ---- raw WSGI calls (bodies webtest cannot send: short, failing, chunked) --------------------

class FailingInput(io.RawIOBase):
    """A wsgi.input that gives `data`, then raises as a dropped connection does."""

    def __init__(self, data: bytes, error: Exception | None = None):
        self._data = io.BytesIO(data)
        self._error = error or ConnectionResetError("client went away")

    def read(self, size=-1):
        chunk = self._data.read(size)
        if not chunk:
            raise self._error
        return chunk


def wsgi_call(wsgi_app, method: str, path: str, stream, *, content_length: int | None,
              headers: dict | None = None, chunked: bool = False):
    """(status code, headers dict, body) from calling the WSGI app directly."""
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "SERVER_NAME": "paddles.test",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": stream, "wsgi.errors": io.StringIO(), "QUERY_STRING": ""}
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True
    for key, value in (headers or {}).items():
        name = key.upper().replace("-", "_")
        environ[name if name == "CONTENT_TYPE" else "HTTP_" + name] = value
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"] = int(status.split()[0])
        captured["headers"] = dict(response_headers)

    chunks = wsgi_app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    return captured["status"], captured["headers"], body
