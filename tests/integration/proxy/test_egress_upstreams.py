"""Chaining through real upstreams: proxy.py with Basic auth, and a SOCKS5 server with auth.

Failures answer the browser at once and never fall back to a direct connection.
"""

from __future__ import annotations

import asyncio
import time

from loopback import free_port
from loopback_servers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    OriginServer,
    Socks5Server,
    get_via_tunnel,
    proxy_exchange,
    split_response,
)

from browserfleet.proxy import EgressProxy, HttpUpstream, Socks5Upstream


def http_upstream(port: int, password: str = UPSTREAM_PASSWORD) -> HttpUpstream:
    return HttpUpstream("127.0.0.1", port, UPSTREAM_USER, password)


async def test_plain_http_goes_through_the_authenticated_http_upstream(
    origin: OriginServer, http_upstream_port: int
) -> None:
    async with EgressProxy(http_upstream(http_upstream_port)) as proxy:
        raw = await proxy_exchange(proxy.port, f"GET {origin.url('/p')} HTTP/1.1\r\n\r\n".encode())
    assert split_response(raw)[0] == 200
    [seen] = origin.log.requests
    assert seen.request_line == "GET /p HTTP/1.1"
    assert "proxy-authorization" not in seen.headers  # the upstream consumed our credentials


async def test_connect_goes_through_the_authenticated_http_upstream(
    origin: OriginServer, http_upstream_port: int
) -> None:
    async with EgressProxy(http_upstream(http_upstream_port)) as proxy:
        answer, response = await get_via_tunnel(proxy.port, f"127.0.0.1:{origin.port}", "/bytes/5")
    assert answer.startswith(b"HTTP/1.1 200")
    assert split_response(response)[2] == b"xxxxx"
    assert len(origin.log.requests) == 1


async def test_a_refused_password_answers_407_with_a_challenge_and_reaches_nothing(
    origin: OriginServer, http_upstream_port: int
) -> None:
    async with EgressProxy(http_upstream(http_upstream_port, "wrong")) as proxy:
        raw = await proxy_exchange(proxy.port, f"GET {origin.url()} HTTP/1.1\r\n\r\n".encode())
        answer, _ = await get_via_tunnel(proxy.port, f"127.0.0.1:{origin.port}")
    for response in (raw, answer):
        status, headers, _ = split_response(response)
        assert status == 407
        assert headers["proxy-authenticate"].startswith("Basic ")
        assert "wrong" not in response.decode("latin-1")
    assert origin.log.requests == []


async def test_an_unreachable_upstream_answers_502_fast_and_nothing_goes_direct(
    origin: OriginServer,
) -> None:
    route = HttpUpstream("127.0.0.1", free_port(), UPSTREAM_USER, UPSTREAM_PASSWORD)
    started = time.monotonic()
    async with EgressProxy(route) as proxy:
        raw = await proxy_exchange(proxy.port, f"GET {origin.url()} HTTP/1.1\r\n\r\n".encode())
        answer, _ = await get_via_tunnel(proxy.port, f"127.0.0.1:{origin.port}")
    assert time.monotonic() - started < 2
    assert split_response(raw)[0] == 502
    assert answer.startswith(b"HTTP/1.1 502")
    assert UPSTREAM_PASSWORD.encode() not in raw + answer
    assert origin.log.requests == []


async def test_an_upstream_that_never_answers_times_out_with_504() -> None:
    silent = await asyncio.start_server(_never_answer, "127.0.0.1", 0)
    route = HttpUpstream("127.0.0.1", silent.sockets[0].getsockname()[1], "u", "p")
    try:
        async with EgressProxy(route, connect_timeout_s=0.3) as proxy:
            answer, _ = await get_via_tunnel(proxy.port, "example.test:443")
    finally:
        silent.close()
        await silent.wait_closed()
    assert answer.startswith(b"HTTP/1.1 504")


async def test_socks5_upstream_with_credentials_carries_http_and_connect_by_name(
    origin: OriginServer, socks5_upstream: Socks5Server
) -> None:
    route = Socks5Upstream("127.0.0.1", socks5_upstream.port, UPSTREAM_USER, UPSTREAM_PASSWORD)
    async with EgressProxy(route) as proxy:
        raw = await proxy_exchange(
            proxy.port, f"GET http://origin.test:{origin.port}/ HTTP/1.1\r\n\r\n".encode()
        )
        answer, response = await get_via_tunnel(
            proxy.port, f"origin.test:{origin.port}", "/bytes/3"
        )
    assert split_response(raw)[0] == 200
    assert answer.startswith(b"HTTP/1.1 200")
    assert split_response(response)[2] == b"xxx"
    assert socks5_upstream.destinations == [(3, "origin.test", origin.port)] * 2
    assert origin.log.requests[0].headers["host"] == f"origin.test:{origin.port}"


async def test_socks5_refused_credentials_answer_407(
    origin: OriginServer, socks5_upstream: Socks5Server
) -> None:
    route = Socks5Upstream("127.0.0.1", socks5_upstream.port, UPSTREAM_USER, "wrong")
    async with EgressProxy(route) as proxy:
        answer, _ = await get_via_tunnel(proxy.port, f"127.0.0.1:{origin.port}")
    assert answer.startswith(b"HTTP/1.1 407")
    assert socks5_upstream.auth_failures == 1
    assert origin.log.requests == []


async def test_socks5_refused_target_answers_502(socks5_upstream: Socks5Server) -> None:
    route = Socks5Upstream("127.0.0.1", socks5_upstream.port, UPSTREAM_USER, UPSTREAM_PASSWORD)
    async with EgressProxy(route) as proxy:
        answer, _ = await get_via_tunnel(proxy.port, f"127.0.0.1:{free_port()}")
    assert answer.startswith(b"HTTP/1.1 502")
    assert b"connection refused" in answer


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.read(-1)
    finally:
        writer.close()
