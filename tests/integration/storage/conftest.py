"""Blob store fixtures: each store under test, local and S3 alike (the S3 server, its buckets
and the S3 store come from tests/integration/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.port import BlobStore


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
