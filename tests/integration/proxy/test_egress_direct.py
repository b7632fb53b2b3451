"""The egress proxy on a direct route: HTTP and CONNECT to a loopback origin, and the guard."""

from __future__ import annotations

import asyncio
import ipaddress

from loopback_servers import (
    LOOPBACK_ALLOWED,
    PAGE,
    OriginServer,
    get_via_tunnel,
    proxy_exchange,
    split_response,
)

from browserfleet.proxy import DirectRoute, EgressGuard, EgressProxy


async def test_plain_http_is_forwarded_in_origin_form_without_proxy_headers(
    origin: OriginServer,
) -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        raw = await proxy_exchange(
            proxy.port,
            f"GET {origin.url('/page?x=1')} HTTP/1.1\r\nHost: wrong.example\r\n"
            "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
            "Proxy-Connection: keep-alive\r\n\r\n".encode(),
        )
    status, headers, body = split_response(raw)
    assert (status, body) == (200, PAGE)
    assert headers["connection"] == "close"
    [seen] = origin.log.requests
    assert seen.request_line == "GET /page?x=1 HTTP/1.1"
    assert seen.headers == {"host": f"127.0.0.1:{origin.port}", "connection": "close"}


async def test_a_request_body_reaches_the_origin(origin: OriginServer) -> None:
    body = b"b" * 300_000
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        raw = await proxy_exchange(
            proxy.port,
            f"POST {origin.url('/echo')} HTTP/1.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body,
        )
    assert split_response(raw)[2] == b"300000"
    assert origin.log.requests[0].body == body


async def test_connect_tunnels_bytes_both_ways(origin: OriginServer) -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        answer, response = await get_via_tunnel(proxy.port, f"127.0.0.1:{origin.port}", "/bytes/10")
    assert answer == b"HTTP/1.1 200 Connection established\r\n\r\n"
    assert split_response(response)[2] == b"x" * 10


async def test_connect_to_an_ipv6_literal_reaches_an_ipv6_origin() -> None:
    server = await asyncio.start_server(_hello, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        route = DirectRoute(EgressGuard(allow_networks=(ipaddress.ip_network("::1/128"),)))
        async with EgressProxy(route) as proxy:
            answer, response = await get_via_tunnel(proxy.port, f"[::1]:{port}")
    finally:
        server.close()
        await server.wait_closed()
    assert answer.startswith(b"HTTP/1.1 200")
    assert response == b"hello"


async def test_loopback_is_blocked_by_default_with_a_page_and_a_count(origin: OriginServer) -> None:
    async with EgressProxy(DirectRoute()) as proxy:
        raw = await proxy_exchange(proxy.port, f"GET {origin.url()} HTTP/1.1\r\n\r\n".encode())
        answer, _ = await get_via_tunnel(proxy.port, f"localhost:{origin.port}")
        assert proxy.meter.blocked == 2
    status, headers, body = split_response(raw)
    assert status == 403
    assert b"Blocked by browserfleet egress policy" in body
    assert headers["content-type"].startswith("text/html")
    assert answer.startswith(b"HTTP/1.1 403")
    assert origin.log.requests == []


async def test_metadata_address_is_blocked_before_any_connection_is_tried() -> None:
    async with EgressProxy(LOOPBACK_ALLOWED, connect_timeout_s=1) as proxy:
        raw = await proxy_exchange(
            proxy.port, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\n\r\n"
        )
    status, _, body = split_response(raw)
    assert status == 403
    assert b"cloud metadata" in body


async def test_refused_connection_gives_502(origin: OriginServer) -> None:
    port = origin.port  # then closed: nothing listens there any more
    await origin.__aexit__(None, None, None)
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        raw = await proxy_exchange(
            proxy.port, f"GET http://127.0.0.1:{port}/ HTTP/1.1\r\n\r\n".encode()
        )
        answer, _ = await get_via_tunnel(proxy.port, f"127.0.0.1:{port}")
    assert split_response(raw)[0] == 502
    assert answer.startswith(b"HTTP/1.1 502")


async def test_garbage_gets_400_and_an_oversized_head_gets_431() -> None:
    async with EgressProxy(LOOPBACK_ALLOWED) as proxy:
        garbage = await proxy_exchange(proxy.port, b"HELLO\r\n\r\n")
        huge = await proxy_exchange(proxy.port, b"GET http://a/ HTTP/1.1\r\nX: " + b"a" * 70_000)
    assert split_response(garbage)[0] == 400
    assert split_response(huge)[0] == 431


async def test_an_idle_browser_connection_is_closed_after_the_idle_timeout() -> None:
    async with EgressProxy(LOOPBACK_ALLOWED, idle_timeout_s=0.2) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        async with asyncio.timeout(5):
            assert await reader.read(-1) == b""
        writer.close()
        await writer.wait_closed()


async def _hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"hello")
    await writer.drain()
    writer.close()
