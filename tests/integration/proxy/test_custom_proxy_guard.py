"""A tenant's own proxy passes the egress guard: resolved, checked, connected at the checked
address; its failures all look alike; the egress proxy caps connections and slow heads."""

from __future__ import annotations

import asyncio
import ipaddress

from loopback import free_port
from loopback_servers import OriginServer, get_via_tunnel, split_response

from browserfleet.proxy import (
    EgressGuard,
    EgressProxy,
    HttpUpstream,
    Socks5Upstream,
    parse_networks,
)
from browserfleet.proxy.guard import IPAddress, blocked_reason, host_addresses
from browserfleet.proxy.upstream import CUSTOM_PROXY_FAILED

LOOPBACK_ALLOWED = EgressGuard(allow_networks=parse_networks(["127.0.0.0/8"]))


class Listener:
    """A loopback port that records every connection made to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._seen, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    def _seen(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def test_a_custom_proxy_on_loopback_is_blocked_and_never_connected() -> None:
    listener = Listener()
    async with listener as port:
        for route in (
            HttpUpstream("127.0.0.1", port, guard=EgressGuard()),
            Socks5Upstream("localhost", port, guard=EgressGuard()),
        ):
            async with EgressProxy(route) as proxy:
                answer, _ = await get_via_tunnel(proxy.port, "example.com:443")
            assert split_response(answer)[0] == 403
            assert b"loopback" in answer
    assert listener.connections == 0


async def test_closed_silent_and_non_proxy_ports_answer_the_same() -> None:
    held: list[asyncio.StreamWriter] = []

    def keep(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts, then says nothing

    def not_a_proxy(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        held.append(writer)

    silent = await asyncio.start_server(keep, "127.0.0.1", 0)
    web = await asyncio.start_server(not_a_proxy, "127.0.0.1", 0)
    try:
        ports = {
            "closed": free_port(),
            "silent": int(silent.sockets[0].getsockname()[1]),
            "web server": int(web.sockets[0].getsockname()[1]),
        }
        answers = {}
        for name, port in ports.items():
            route = HttpUpstream("127.0.0.1", port, guard=LOOPBACK_ALLOWED)
            async with EgressProxy(route, connect_timeout_s=0.5) as proxy:
                answer, _ = await get_via_tunnel(proxy.port, "example.com:443")
            answers[name] = split_response(answer)[0:3:2]
    finally:
        for writer in held:
            writer.close()
        for server in (silent, web):
            server.close()
    assert len(answers) == 3
    assert len(set(answers.values())) == 1, answers
    status, body = answers["closed"]
    assert status == 502
    assert CUSTOM_PROXY_FAILED.encode() in body


async def test_the_upstream_is_connected_at_the_address_that_was_checked(
    origin: OriginServer,
) -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        assert host == "my-proxy.invalid"  # a name no system resolver knows
        return [ipaddress.ip_address("127.0.0.1")]

    guard = EgressGuard(allow_networks=parse_networks(["127.0.0.0/8"]), resolver=resolver)
    route = HttpUpstream("my-proxy.invalid", origin.port, guard=guard)
    async with EgressProxy(route) as proxy:
        answer, _ = await get_via_tunnel(proxy.port, "example.com:443")
    # Reached at the checked address (the loopback origin takes the CONNECT as a proxy would).
    assert split_response(answer)[0] == 200
    assert origin.log.requests and origin.log.requests[0].request_line.startswith("CONNECT ")


def test_the_cloud_platform_endpoint_and_this_hosts_addresses_are_blocked() -> None:
    assert blocked_reason(ipaddress.ip_address("168.63.129.16")) is not None
    mine = host_addresses()
    assert ipaddress.ip_address("127.0.0.1") in mine
    guard = EgressGuard(local_addresses=frozenset({ipaddress.ip_address("203.0.113.7")}))
    try:
        guard.check("h", ipaddress.ip_address("203.0.113.7"))
    except Exception as exc:
        assert "this server" in str(exc)
    else:
        raise AssertionError("a host address passed the guard")


async def test_the_egress_proxy_caps_connections_and_slow_heads() -> None:
    route = HttpUpstream("127.0.0.1", 9)
    writers: list[asyncio.StreamWriter] = []
    async with EgressProxy(route, max_connections=3, head_timeout_s=0.5) as proxy:
        try:
            held = []
            for _ in range(3):
                reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
                writers.append(writer)
                # A head that never ends, sent at once: written after the proxy had closed
                # the connection it would be answered with a reset instead.
                writer.write(b"CONNECT exam")
                held.append(reader)
            extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writers.append(extra_writer)
            assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # refused at once
            for reader in held:
                assert await asyncio.wait_for(reader.read(), 10) == b""  # the head timeout
        finally:
            for writer in writers:
                writer.close()
