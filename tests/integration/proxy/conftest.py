"""Fixtures for the egress proxy's integration tests: loopback origin, SOCKS5 and HTTP upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from loopback_servers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    OriginServer,
    Socks5Server,
    proxy_py,
)


@pytest.fixture
async def origin() -> AsyncIterator[OriginServer]:
    async with OriginServer() as server:
        yield server


@pytest.fixture
async def socks5_upstream() -> AsyncIterator[Socks5Server]:
    async with Socks5Server(UPSTREAM_USER, UPSTREAM_PASSWORD) as server:
        yield server


@pytest.fixture(scope="session")
def http_upstream_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A real authenticated HTTP proxy (proxy.py) shared by the session's tests."""
    workdir: Path = tmp_path_factory.mktemp("proxy-py")
    with proxy_py(UPSTREAM_USER, UPSTREAM_PASSWORD, workdir) as port:
        yield port
