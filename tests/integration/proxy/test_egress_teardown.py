"""aclose() ends every live connection at once and leaves no task or socket behind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time

import psutil
from loopback_servers import LOOPBACK_ALLOWED, OriginServer
from polling import until

from browserfleet.proxy import EgressProxy, open_egress


async def _open_tunnel(
    port: int, authority: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"CONNECT {authority} HTTP/1.1\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    return reader, writer


def _listening(port: int) -> bool:
    return any(
        c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
        for c in psutil.Process().net_connections("tcp")
    )


async def test_aclose_with_open_tunnels_closes_them_promptly_and_leaks_nothing(
    origin: OriginServer,
) -> None:
    before = asyncio.all_tasks()
    proxy = await open_egress(LOOPBACK_ALLOWED)
    port = proxy.port
    tunnels = [await _open_tunnel(port, f"127.0.0.1:{origin.port}") for _ in range(3)]
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)  # no request yet
    await until(
        lambda: len(asyncio.all_tasks() - before) >= 4, what="a handler task per connection"
    )

    started = time.monotonic()
    await proxy.aclose()
    assert time.monotonic() - started < 1

    async with asyncio.timeout(2):
        for reader, _ in [*tunnels, (idle_reader, idle_writer)]:
            with contextlib.suppress(ConnectionResetError):  # aborted: as good as closed
                assert await reader.read(-1) == b""
    assert [t for t in asyncio.all_tasks() if t.get_name().startswith("egress-proxy")] == []
    assert not _listening(port)
    for _, writer in [*tunnels, (idle_reader, idle_writer)]:
        writer.close()
    gc.collect()  # an unclosed transport would raise ResourceWarning (an error in this suite)


async def test_aclose_is_idempotent_and_start_after_context_exit_gives_a_new_port() -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        first = proxy.port
    await proxy.aclose()
    assert not _listening(first)


async def test_many_proxies_start_and_stop_quickly() -> None:
    started = time.monotonic()
    for _ in range(50):
        async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
            assert proxy.port > 0
    assert (time.monotonic() - started) / 50 < 0.05
