"""Blobs as objects in an S3-compatible bucket (AWS, Ceph RGW, MinIO...), keyed
`<prefix>ab/cd/<sha256>`."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from .base import CHUNK_SIZE, BlobMissing, fanout

_MISSING = {"404", "NoSuchKey", "NotFound"}
_TRANSFER = TransferConfig(multipart_threshold=64 * 1024 * 1024,
                           multipart_chunksize=64 * 1024 * 1024, max_concurrency=4)


class S3BlobStore:
    def __init__(self, bucket: str, *, spool_dir: str | Path, endpoint_url: str | None = None,
                 access_key_id: str | None = None, secret_access_key: str | None = None,
                 region: str | None = None, prefix: str = ""):
        if not bucket:
            raise ValueError("the s3 artifact storage needs a bucket (PADDLES_S3_BUCKET)")
        self.bucket = bucket
        self.prefix = prefix
        self.spool_dir = Path(spool_dir).absolute()
        # credentials left empty fall through to boto3's usual chain (env, profile, role)
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(signature_version="s3v4", retries={"max_attempts": 5,
                                                             "mode": "standard"},
                          s3={"addressing_style": "path"}))

    def key(self, sha256: str) -> str:
        return self.prefix + fanout(sha256)

    def put(self, sha256: str, source: Path) -> None:
        if self.exists(sha256):
            return
        # a single PUT or a multipart upload: either way the object appears only when complete
        self.client.upload_file(str(source), self.bucket, self.key(sha256), Config=_TRANSFER)

    def open_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            if not self.exists(sha256):
                raise BlobMissing(sha256)
            return iter(())
        kwargs = {}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), **kwargs)
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise BlobMissing(sha256) from None
            raise
        return _iter_body(resp["Body"])

    def exists(self, sha256: str) -> bool:
        return self.size(sha256) is not None

    def size(self, sha256: str) -> int | None:
        try:
            return self.client.head_object(Bucket=self.bucket,
                                           Key=self.key(sha256))["ContentLength"]
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _iter_body(body) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK_SIZE)
    finally:
        body.close()
