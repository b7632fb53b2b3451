"""Byte metering: every byte the browser sent and received, per proxy, tunnels included."""

from __future__ import annotations

import asyncio

from loopback_servers import LOOPBACK_ALLOWED, OriginServer

from browserfleet.proxy import EgressProxy

FIVE_MB = 5_000_000


async def _fetch(port: int, request: bytes, then: bytes = b"") -> tuple[int, int]:
    """Send request (and, after the first answer head, `then`); return (bytes sent, received)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        received = b""
        if then:
            received = await reader.readuntil(b"\r\n\r\n")
            writer.write(then)
        async with asyncio.timeout(20):
            received += await reader.read(-1)
        return len(request) + len(then), len(received)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_a_5mb_download_is_metered_exactly_and_within_1_percent_of_what_was_served(
    origin: OriginServer,
) -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as plain, EgressProxy(LOOPBACK_ALLOWED) as tunnel:
        sent_a, got_a = await _fetch(
            plain.port, f"GET {origin.url(f'/bytes/{FIVE_MB}')} HTTP/1.1\r\n\r\n".encode()
        )
        served_a = origin.log.bytes_sent
        authority = f"127.0.0.1:{origin.port}"
        sent_b, got_b = await _fetch(
            tunnel.port,
            f"CONNECT {authority} HTTP/1.1\r\n\r\n".encode(),
            f"GET /bytes/{FIVE_MB} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode(),
        )
        served_b = origin.log.bytes_sent - served_a
        # Exact at the browser's sockets...
        assert (plain.meter.from_browser, plain.meter.to_browser) == (sent_a, got_a)
        assert (tunnel.meter.from_browser, tunnel.meter.to_browser) == (sent_b, got_b)
        # ...and within 1% of what the origin served, separately per proxy.
        assert abs(plain.meter.total - served_a) / served_a < 0.01
        assert abs(tunnel.meter.total - served_b) / served_b < 0.01
        assert plain.meter.connections == tunnel.meter.connections == 1


async def test_upload_bytes_are_metered_too(origin: OriginServer) -> None:
    body = b"u" * 1_000_000
    request = f"POST {origin.url('/echo')} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n"
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        sent, received = await _fetch(proxy.port, request.encode() + body)
        assert proxy.meter.from_browser == sent > len(body)
        assert proxy.meter.to_browser == received


async def test_the_meter_is_readable_while_a_download_is_running(origin: OriginServer) -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"GET {origin.url('/bytes/20000000')} HTTP/1.1\r\n\r\n".encode())
        got = len(await reader.readexactly(1_000_000))
        midway = proxy.meter.to_browser
        assert got <= midway < 20_000_000
        writer.close()
        await writer.wait_closed()


async def test_error_pages_are_metered() -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        sent, received = await _fetch(proxy.port, b"BAD\r\n\r\n")
        assert (proxy.meter.from_browser, proxy.meter.to_browser) == (sent, received)
        assert received > 0
