"""`doctor`'s storage check: a probe object written, read back, served and deleted for real.

A local directory that does not exist yet is created for the probe and removed after it, so
`doctor` leaves no trace; an S3 bucket is never created (that is the operator's call).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx

from browserfleet.bootstrap import build_blob_store
from browserfleet.cli.findings import Finding, Status
from browserfleet.settings import Settings, StorageBackend
from browserfleet.storage.errors import (
    BucketNotFound,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from browserfleet.storage.model import LocalFile
from browserfleet.storage.port import BlobStore

CHECK = "storage"
PROBE_PREFIX = "doctor/"
PROBE_BYTES = 64 * 1024
STORAGE_TIMEOUT_S = 30.0
LINK_TIMEOUT_S = 10.0


class ProbeFailed(Exception):
    """The store answered, but not with what was written."""


async def check_storage(settings: Settings) -> Finding:
    """Write, stat, read back, serve and delete a probe object in the configured store."""
    created = _missing_dirs(settings)
    try:
        store = build_blob_store(settings)
    except (StorageError, ValueError) as error:
        return Finding(Status.FAIL, CHECK, f"cannot set up the store: {error}", _FIX_SETTINGS)
    where = store.describe()
    try:
        async with asyncio.timeout(STORAGE_TIMEOUT_S):
            elapsed_ms, served = await _round_trip(store)
    except TimeoutError:
        fix = "check that the store is up and reachable"
        return Finding(Status.FAIL, CHECK, f"{where}: no answer in {STORAGE_TIMEOUT_S:.0f} s", fix)
    except (StorageError, OSError, ProbeFailed) as error:
        return _failure(where, error)
    finally:
        await store.aclose()
        _remove_created(created)
    detail = f"{where}: write, read, delete OK in {elapsed_ms:.0f} ms"
    if served is not None:
        fix = "clients cannot download stored files: check public_endpoint_url and clocks"
        return Finding(Status.WARN, CHECK, f"{detail}; but {served}", fix)
    return Finding(Status.OK, CHECK, detail)


_FIX_SETTINGS = "fix the BROWSERFLEET_STORAGE__* settings"


def _failure(where: str, error: Exception) -> Finding:
    detail = f"{where}: {type(error).__name__}: {error}"
    if isinstance(error, BucketNotFound):
        fix = "create the bucket, or fix BROWSERFLEET_STORAGE__BUCKET"
    elif isinstance(error, StorageAccessDenied):
        fix = (
            "check the access key and secret, and that they may s3:PutObject, s3:GetObject, "
            "s3:DeleteObject and s3:ListBucket on the bucket"
        )
    elif isinstance(error, StorageUnavailable):
        fix = "check BROWSERFLEET_STORAGE__ENDPOINT_URL and that the store is up"
    elif isinstance(error, OSError):
        fix = "fix the directory's owner or mode, or set BROWSERFLEET_STORAGE__LOCAL_DIR"
    else:
        fix = "the store lost or changed data: check it is a conforming S3 server"
    return Finding(Status.FAIL, CHECK, detail, fix)


async def _round_trip(store: BlobStore) -> tuple[float, str | None]:
    """(milliseconds for the whole probe, why clients could not fetch the object or None)."""
    key = f"{PROBE_PREFIX}probe-{uuid.uuid4().hex}"
    payload = os.urandom(PROBE_BYTES)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="doctor-storage-") as scratch:
        source, copy = Path(scratch) / "probe", Path(scratch) / "copy"
        source.write_bytes(payload)
        try:
            await store.put_file(key, source)
            info = await store.stat(key)
            if info is None or info.size != PROBE_BYTES:
                raise ProbeFailed(f"the probe object reads back as {info}")
            await store.get_file(key, copy)
            if copy.read_bytes() != payload:
                raise ProbeFailed("the probe object read back with other bytes")
            served = await _serve_problem(store, key, payload)
        finally:
            await store.delete(key)
        if await store.stat(key) is not None:
            raise ProbeFailed("the probe object is still there after its deletion")
    return (time.monotonic() - started) * 1000, served


async def _serve_problem(store: BlobStore, key: str, payload: bytes) -> str | None:
    access = await store.access(key, expires_in=timedelta(minutes=1))
    if isinstance(access, LocalFile):
        same = access.path.read_bytes() == payload
        return None if same else "the local file to serve holds other bytes"
    try:
        async with httpx.AsyncClient(timeout=LINK_TIMEOUT_S, trust_env=False) as client:
            response = await client.get(access.url)
    except httpx.HTTPError as error:
        return f"its presigned URL could not be fetched ({type(error).__name__})"
    if response.status_code != 200:
        return f"its presigned URL answered {response.status_code}"
    if hashlib.sha256(response.content).digest() != hashlib.sha256(payload).digest():
        return "its presigned URL served other bytes"
    return None


def _missing_dirs(settings: Settings) -> list[Path]:
    """The local store's directory and its parents that do not exist yet, deepest first."""
    if settings.storage.backend is not StorageBackend.LOCAL:
        return []
    directory = settings.storage.effective_local_dir(settings.data_dir)
    return [d for d in (directory, *directory.parents) if not d.exists()]


def _remove_created(created: list[Path]) -> None:
    if created:
        shutil.rmtree(created[0], ignore_errors=True)
    for directory in created[1:]:
        try:
            directory.rmdir()
        except OSError:
            return
