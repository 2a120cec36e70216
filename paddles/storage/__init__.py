"""Blob storage backends behind one small interface (`base.BlobStore`)."""
from __future__ import annotations

from pathlib import Path

from .base import CHUNK_SIZE, BlobMissing, BlobStore, check_sha256
from .local import LocalBlobStore

__all__ = ["CHUNK_SIZE", "BlobMissing", "BlobStore", "LocalBlobStore", "check_sha256",
           "make_blob_store"]


def make_blob_store(settings) -> BlobStore:
    """The backend the settings name: `local` (default) or `s3`."""
    data_dir = Path(settings.data_dir)
    kind = (settings.artifacts_storage or "local").lower()
    if kind == "local":
        root = Path(settings.artifacts_dir) if settings.artifacts_dir else data_dir / "blobs"
        return LocalBlobStore(root, settings.artifacts_tmp_dir or None)
    if kind == "s3":
        from .s3 import S3BlobStore  # boto3 is imported only when configured

        return S3BlobStore(
            settings.s3_bucket, spool_dir=settings.artifacts_tmp_dir or data_dir / "tmp",
            endpoint_url=settings.s3_endpoint_url, access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key, region=settings.s3_region,
            prefix=settings.s3_prefix)
    raise ValueError(f"unknown artifacts storage {settings.artifacts_storage!r} "
                     "(expected 'local' or 's3')")
