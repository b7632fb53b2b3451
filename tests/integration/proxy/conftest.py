"""Fixtures for the egress proxy's integration tests: loopback origin, SOCKS5 and HTTP upstreams.

Every test here runs on both event loops: uvicorn serves the proxy on uvloop, while the rest of
the suite runs on asyncio's default loop, and the relay drives raw fds differently on each.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop
from loopback_servers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    OriginServer,
    Socks5Server,
)
from upstream_proxy import proxy_py


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


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
    with proxy_py(UPSTREAM_USER, UPSTREAM_PASSWORD, workdir, log_level="WARNING") as (port, _):
        yield port
