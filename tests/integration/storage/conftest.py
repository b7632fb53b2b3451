"""Blob store fixtures: one S3-compatible server for the whole run (a fresh bucket per test) and
each store under test, local and S3 alike."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from s3_server import S3TestServer

from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.port import BlobStore
from browserfleet.storage.s3 import AddressingStyle, S3BlobStore, S3Config

MIB = 1024 * 1024
# Low enough that a 12 MiB object takes boto3's multipart path (S3's smallest part is 5 MiB).
TEST_PART = 5 * MIB


class SuiteResources(Protocol):
    ports: set[int]


@pytest.fixture(scope="session")
def s3_server(suite_resources: SuiteResources) -> Iterator[S3TestServer]:
    server = S3TestServer()
    server.start()
    suite_resources.ports.add(server.port)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(s3_server: S3TestServer) -> str:
    name = f"bf-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    return name


def s3_config(server: S3TestServer, bucket: str, **overrides: Any) -> S3Config:
    values: dict[str, Any] = {
        "bucket": bucket,
        "endpoint_url": server.url,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
        "addressing_style": AddressingStyle.PATH,
        "multipart_threshold": TEST_PART,
        "multipart_chunksize": TEST_PART,
        "connect_timeout_s": 5.0,
        "read_timeout_s": 30.0,
    }
    return S3Config(**(values | overrides))


@pytest.fixture
async def s3_store(s3_server: S3TestServer, bucket: str) -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(s3_config(s3_server, bucket))
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def local_store(tmp_path: Path) -> AsyncIterator[LocalBlobStore]:
    store = LocalBlobStore(tmp_path / "blobs")
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> BlobStore:
    """Each contract test runs once against each store."""
    found: BlobStore = request.getfixturevalue(f"{request.param}_store")
    return found


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """A scratch folder for the files a test puts and gets."""
    path = tmp_path / "files"
    path.mkdir()
    return path
