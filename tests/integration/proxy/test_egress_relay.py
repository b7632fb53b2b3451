"""Relaying established connections: big transfers, half-close, backpressure, idleness, teardown.

Each test runs on both relays (zero-copy splice(2), and the Python one used where splice is
missing) and, through conftest, on both event loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from loopback_servers import (
    LOOPBACK_ALLOWED,
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    OriginServer,
    Socks5Server,
    StreamServer,
    pattern_chunks,
    pattern_digest,
    proxy_exchange,
    split_response,
)
from polling import settled

from browserfleet.proxy import (
    EgressProxy,
    HttpUpstream,
    Route,
    Socks5Upstream,
    open_egress,
    zerocopy,
)
from browserfleet.proxy.http1 import CONNECTION_ESTABLISHED

MB = 1_000_000


@pytest.fixture(params=["splice", "python"])
def relay_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which relay carries established connections in this test (checked afterwards)."""
    if request.param == "splice" and not zerocopy.AVAILABLE:
        pytest.skip("splice(2) is not available here")
    monkeypatch.setattr(zerocopy, "AVAILABLE", request.param == "splice")
    spliced: list[zerocopy.SpliceRelay] = []
    real_run = zerocopy.SpliceRelay.run

    async def run(relay: zerocopy.SpliceRelay, idle_s: float) -> None:
        spliced.append(relay)
        await real_run(relay, idle_s)

    monkeypatch.setattr(zerocopy.SpliceRelay, "run", run)
    yield str(request.param)
    assert bool(spliced) == (request.param == "splice")


@pytest.fixture
async def streams() -> AsyncIterator[StreamServer]:
    async with StreamServer() as server:
        yield server


class TunnelClient:
    """A browser's side of a CONNECT tunnel that counts every byte it sends and receives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.sent = self.received = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, proxy_port: int, target_port: int, *, along: bytes = b""
    ) -> AsyncIterator[TunnelClient]:
        """CONNECT to 127.0.0.1:target_port; `along` goes in the same write as the request."""
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
        client = cls(reader, writer)
        try:
            client.send(f"CONNECT 127.0.0.1:{target_port} HTTP/1.1\r\n\r\n".encode() + along)
            async with asyncio.timeout(5):
                answer = await reader.readuntil(b"\r\n\r\n")
            client.received += len(answer)
            assert answer == CONNECTION_ESTABLISHED
            yield client
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def send(self, data: bytes) -> None:
        self.writer.write(data)
        self.sent += len(data)

    async def upload(self, size: int) -> None:
        for chunk in pattern_chunks(size):
            self.send(chunk)
            await self.writer.drain()

    async def read_to_eof(self) -> tuple[int, str]:
        """(byte count, sha256) of everything until EOF, without holding it all in memory."""
        digest, count = hashlib.sha256(), 0
        async with asyncio.timeout(20):
            while data := await self.reader.read(1024 * 1024):
                digest.update(data)
                count += len(data)
        self.received += count
        return count, digest.hexdigest()

    async def answer(self) -> bytes:
        async with asyncio.timeout(20):
            data = await self.reader.read(-1)
        self.received += len(data)
        return data


async def test_a_multi_mb_download_through_a_tunnel_is_whole_and_metered_exactly(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SEND 8000000\n")
        assert await client.read_to_eof() == (8 * MB, pattern_digest(8 * MB))
        assert metered(proxy) == (client.sent, client.received)


async def test_a_multi_mb_upload_then_half_close_still_gets_the_answer_back(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SINK\n")
        await client.upload(6 * MB)
        client.writer.write_eof()  # our EOF reaches the target; its answer still reaches us
        assert await client.answer() == f"{6 * MB} {pattern_digest(6 * MB)}".encode()
        assert metered(proxy) == (client.sent, client.received)


async def test_after_the_target_half_closes_the_browser_can_still_send(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SEND 1000\n")
        assert await client.read_to_eof() == (1000, pattern_digest(1000))
        client.send(b"still talking after your EOF")
        client.writer.write_eof()
        await _settled(lambda: streams.log.finished == 1)
        assert streams.log.received == len(b"still talking after your EOF")


async def test_bytes_sent_along_with_the_connect_request_reach_the_target_first(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED) as proxy,
        TunnelClient.open(proxy.port, streams.port, along=b"SEND 3000000\n") as client,
    ):
        assert await client.read_to_eof() == (3 * MB, pattern_digest(3 * MB))
        assert proxy.meter.from_browser == client.sent


async def test_a_slow_reader_holds_the_target_back_and_loses_nothing(
    relay_path: str, streams: StreamServer
) -> None:
    # Kernel socket buffers alone may take tens of MB (autotuned up to tcp_rmem/tcp_wmem's
    # maxima), so the transfer is larger than what they can hide.
    size = 64 * MB
    async with (
        EgressProxy(LOOPBACK_ALLOWED) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        tracemalloc.start()
        try:
            client.send(f"SEND {size}\n".encode())
            # The browser reads nothing meanwhile: the target writes until every buffer on the
            # way is full (the kernel's grow as they fill), then stays blocked.
            stalled_at = await settled(lambda: streams.log.written, what="the target's writes")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stalled_at < size  # backpressure holds the target back...
        assert peak < 8 * MB  # ...and the proxy does not buffer what the browser will not take
        assert await client.read_to_eof() == (size, pattern_digest(size))
        assert metered(proxy) == (client.sent, client.received)


async def test_an_idle_tunnel_is_closed_after_the_idle_timeout(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED, idle_timeout_s=0.3) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SINK\n")
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            await client.answer()
        assert 0.25 < time.monotonic() - started < 3


async def test_uploading_alone_keeps_a_tunnel_open_past_the_idle_timeout(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED, idle_timeout_s=0.5) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SINK\n")
        for _ in range(8):  # 0.8 s (> idle_s) of a trickle one way, nothing the other way
            await asyncio.sleep(0.1)
            client.send(b"u")
        client.writer.write_eof()
        assert await client.answer() == f"8 {hashlib.sha256(b'u' * 8).hexdigest()}".encode()


async def test_downloading_alone_keeps_a_tunnel_open_past_the_idle_timeout(
    relay_path: str, streams: StreamServer
) -> None:
    async with (
        EgressProxy(LOOPBACK_ALLOWED, idle_timeout_s=0.5) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"DRIP 8 0.1\n")
        assert await client.answer() == b"." * 8


async def test_aclose_ends_a_live_transfer_at_once_and_leaves_no_fd_behind(
    relay_path: str, streams: StreamServer
) -> None:
    before = _open_fds()
    proxy = await open_egress(LOOPBACK_ALLOWED)
    try:
        async with TunnelClient.open(proxy.port, streams.port) as client:
            client.send(f"SEND {64 * MB}\n".encode())
            await client.reader.readexactly(MB)  # mid-transfer: the relay holds bytes in flight

            started = time.monotonic()
            await proxy.aclose()
            assert time.monotonic() - started < 1

            with contextlib.suppress(ConnectionResetError):  # aborted: as good as closed
                await client.read_to_eof()
    finally:
        await proxy.aclose()
    assert streams.log.written < 64 * MB  # cut short, not finished
    await _settled(lambda: not _open_fds() - before)  # the target's side closes in a moment
    assert _open_fds() - before == set()  # sockets, dup()s, pipes: all closed


async def test_a_multi_mb_plain_http_body_without_a_length_is_relayed_whole(
    relay_path: str, origin: OriginServer
) -> None:
    request = f"GET {origin.url('/until-close/6000000')} HTTP/1.1\r\n\r\n".encode()
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        raw = await proxy_exchange(proxy.port, request)
        assert metered(proxy) == (len(request), len(raw))
    status, _, body = split_response(raw)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == pattern_digest(6 * MB)


async def test_a_multi_mb_plain_http_body_with_a_length_is_relayed_whole(
    relay_path: str, origin: OriginServer
) -> None:
    request = f"GET {origin.url('/bytes/7000000')} HTTP/1.1\r\n\r\n".encode()
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        raw = await proxy_exchange(proxy.port, request)
        assert metered(proxy) == (len(request), len(raw))
    status, headers, body = split_response(raw)
    assert (status, headers["content-length"], body) == (200, "7000000", b"x" * 7 * MB)


@pytest.fixture(params=["http", "socks5"])
def upstream_route(
    request: pytest.FixtureRequest, http_upstream_port: int, socks5_upstream: Socks5Server
) -> Iterator[Route]:
    if request.param == "http":
        yield HttpUpstream("127.0.0.1", http_upstream_port, UPSTREAM_USER, UPSTREAM_PASSWORD)
    else:
        yield Socks5Upstream("127.0.0.1", socks5_upstream.port, UPSTREAM_USER, UPSTREAM_PASSWORD)


async def test_a_multi_mb_transfer_through_an_upstream_is_whole_both_ways(
    relay_path: str, upstream_route: Route, streams: StreamServer
) -> None:
    async with (
        EgressProxy(upstream_route) as proxy,
        TunnelClient.open(proxy.port, streams.port) as client,
    ):
        client.send(b"SEND 5000000\n")
        assert await client.read_to_eof() == (5 * MB, pattern_digest(5 * MB))
        async with TunnelClient.open(proxy.port, streams.port) as uploader:
            # Sized, not ended by a half-close: proxy.py drops the tunnel on the browser's EOF.
            uploader.send(f"RECV {3 * MB}\n".encode())
            await uploader.upload(3 * MB)
            assert await uploader.answer() == f"{3 * MB} {pattern_digest(3 * MB)}".encode()
        sent, received = client.sent + uploader.sent, client.received + uploader.received
        assert metered(proxy) == (sent, received)


async def test_a_multi_mb_plain_http_body_through_an_upstream_is_whole(
    relay_path: str, upstream_route: Route, origin: OriginServer
) -> None:
    request = f"GET {origin.url('/until-close/3000000')} HTTP/1.1\r\n\r\n".encode()
    async with EgressProxy(upstream_route) as proxy:
        raw = await proxy_exchange(proxy.port, request)
        assert metered(proxy) == (len(request), len(raw))
    status, _, body = split_response(raw)
    assert status == 200
    assert hashlib.sha256(body).hexdigest() == pattern_digest(3 * MB)


def metered(proxy: EgressProxy) -> tuple[int, int]:
    return proxy.meter.from_browser, proxy.meter.to_browser


def _open_fds() -> set[str]:
    """This process's open fds as "fd -> what", leaving out the one that lists them."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own fd is gone by now
            target = os.readlink(f"/proc/self/fd/{name}")
            if not target.startswith("/proc/"):
                fds.add(f"{name} -> {target}")
    return fds


async def _settled(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until condition() holds (the peers' own closing takes a few loop turns)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)
