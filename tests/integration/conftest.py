"""Fixtures shared by the integration suites: one S3-compatible server for the whole run, a
fresh bucket per test, and an S3 blob store on it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Protocol

import boto3
import pytest
from s3_server import S3TestServer

from browserfleet.storage.s3 import S3BlobStore


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


@pytest.fixture(scope="session")
def boto_session() -> boto3.session.Session:
    """One boto3 session for the run's stores: its service models load once, not per test."""
    return boto3.session.Session()


@pytest.fixture
def bucket(s3_server: S3TestServer) -> Iterator[str]:
    """A fresh bucket, emptied and removed afterwards (moto keeps objects in memory)."""
    name = f"bf-{uuid.uuid4().hex[:16]}"
    s3_server.create_bucket(name)
    yield name
    s3_server.remove_bucket(name)


@pytest.fixture
async def s3_store(
    s3_server: S3TestServer, bucket: str, boto_session: boto3.session.Session
) -> AsyncIterator[S3BlobStore]:
    store = S3BlobStore(s3_server.store_config(bucket), session=boto_session)
    try:
        yield store
    finally:
        await store.aclose()
