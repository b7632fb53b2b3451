"""Routes out of the egress proxy (direct, HTTP upstream, SOCKS5 upstream) and how each connects.

Credentials live only in the route values: never in repr(), messages or logs. A failing upstream
raises an EgressError; nothing here ever falls back to another route.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from browserfleet.proxy import socks5
from browserfleet.proxy.errors import (
    ConnectTimeout,
    EgressBlocked,
    EgressError,
    TargetUnreachable,
    UpstreamAuthRefused,
    UpstreamRefusedTarget,
    UpstreamUnreachable,
)
from browserfleet.proxy.guard import EgressGuard, IPAddress
from browserfleet.proxy.http1 import (
    Authority,
    HeadBuffer,
    ProxyProtocolError,
    connect_request,
    parse_response_head,
)

log = logging.getLogger(__name__)
READ_LIMIT = 1024 * 1024  # StreamReader buffer: pauses the socket past twice this
# Upstream sockets are read through a StreamReader only up to a response head or a handshake
# answer; then the relay takes the socket over. A small buffer keeps the bytes read ahead of
# that (which Python must copy) small: with 1 MiB, a download copied ~2 MB before splicing.
UPSTREAM_READ_LIMIT = 64 * 1024
CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class DirectRoute:
    """Connect to targets ourselves, after the guard has checked the resolved address."""

    guard: EgressGuard = field(default_factory=EgressGuard)


@dataclass(frozen=True, slots=True)
class HttpUpstream:
    """An upstream HTTP proxy: CONNECT for tunnels, absolute-form for plain HTTP, Basic auth."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    # A tenant's own proxy is checked like any direct destination; the operator's are trusted.
    guard: EgressGuard | None = field(default=None, repr=False)

    def proxy_authorization(self) -> str | None:
        """The Proxy-Authorization value, or None without credentials."""
        if self.username is None:
            return None
        pair = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True, slots=True)
class Socks5Upstream:
    """An upstream SOCKS5 proxy (RFC 1928) with optional username/password (RFC 1929)."""

    host: str
    port: int
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    guard: EgressGuard | None = field(default=None, repr=False)  # as HttpUpstream's

    def __post_init__(self) -> None:
        if self.username is not None:
            socks5.auth_request(self.username, self.password or "")  # validates the lengths


Route = DirectRoute | HttpUpstream | Socks5Upstream


@dataclass(slots=True)
class Stream:
    """A connected byte stream; `prefix` holds bytes already read past a handshake."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    prefix: bytes = b""

    def close(self) -> None:
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


async def open_tunnel(route: Route, target: Authority, *, timeout_s: float) -> Stream:
    """A byte stream to `target` through `route` (for CONNECT, or plain HTTP on SOCKS/direct)."""
    return await _guarded(route, _within(timeout_s, target, _open_tunnel(route, target)))


# What a tenant is told when its own proxy fails, whatever the reason: closed, refused,
# filtered (timeout), unreachable, or answering something other than a proxy's yes. One answer,
# so a custom proxy setting cannot map which addresses and ports exist.
CUSTOM_PROXY_FAILED = "the custom proxy could not be reached or refused the connection"


async def _guarded(route: Route, opening: Coroutine[Any, Any, Stream]) -> Stream:
    """Collapse every failure of a guarded (tenant's) upstream into one answer, except a
    refusal by the guard itself and a rejection of the tenant's own credentials."""
    if isinstance(route, DirectRoute) or route.guard is None:
        return await opening
    try:
        return await opening
    except (EgressBlocked, UpstreamAuthRefused):
        raise
    except EgressError as exc:
        log.info("custom proxy failed: %s", exc)
        raise UpstreamUnreachable(CUSTOM_PROXY_FAILED) from None


async def open_http_upstream(route: HttpUpstream, target: Authority, *, timeout_s: float) -> Stream:
    """A connection to the HTTP upstream itself, to send it an absolute-form request."""
    return await _guarded(route, _within(timeout_s, target, _connect_upstream(route)))


async def _within(
    timeout_s: float, target: Authority, opening: Coroutine[Any, Any, Stream]
) -> Stream:
    try:
        async with asyncio.timeout(timeout_s):
            return await opening
    except TimeoutError:
        raise ConnectTimeout(f"no connection to {target} within {timeout_s:g} s") from None


async def _open_tunnel(route: Route, target: Authority) -> Stream:
    match route:
        case DirectRoute(guard=guard):
            return await _connect_direct(guard, target)
        case HttpUpstream() | Socks5Upstream():
            return await _handshake(await _connect_upstream(route), route, target)


async def _connect_direct(guard: EgressGuard, target: Authority) -> Stream:
    """Connect to the checked addresses themselves, never to the name again."""
    addresses = await guard.resolve(target.host, target.port)
    return await _connect_checked(addresses, target)


async def _connect_checked(addresses: list[IPAddress], target: Authority) -> Stream:
    failure: OSError | None = None
    for address in addresses:
        try:
            reader, writer = await asyncio.open_connection(
                str(address), target.port, limit=UPSTREAM_READ_LIMIT
            )
        except OSError as exc:
            failure = exc
            continue
        return Stream(reader, writer)
    reason = failure.strerror if failure is not None and failure.strerror else "connection failed"
    raise TargetUnreachable(f"could not connect to {target}: {reason}")


async def _connect_upstream(route: HttpUpstream | Socks5Upstream) -> Stream:
    """The upstream proxy's socket; a guarded (tenant's) upstream is resolved, checked and
    connected at the checked address like a direct destination."""
    if route.guard is not None:
        where = Authority(route.host, route.port)
        return await _connect_checked(await route.guard.resolve(route.host, route.port), where)
    try:
        reader, writer = await asyncio.open_connection(
            route.host, route.port, limit=UPSTREAM_READ_LIMIT
        )
    except OSError as exc:
        log.warning(
            "upstream proxy %s:%s unreachable: %s", route.host, route.port, exc.strerror or exc
        )
        raise UpstreamUnreachable("the upstream proxy is unreachable") from None
    return Stream(reader, writer)


async def _handshake(
    stream: Stream, route: HttpUpstream | Socks5Upstream, target: Authority
) -> Stream:
    """Run the upstream's handshake; close the stream on any failure (including cancellation)."""
    try:
        if isinstance(route, HttpUpstream):
            stream.prefix = await _http_connect(stream, route, target)
        else:
            await _socks5_connect(stream, route, target)
    except BaseException:
        stream.abort()
        raise
    return stream


async def _http_connect(stream: Stream, route: HttpUpstream, target: Authority) -> bytes:
    stream.writer.write(connect_request(target, route.proxy_authorization()))
    await stream.writer.drain()
    buffer = HeadBuffer()
    while True:
        data = await stream.reader.read(CHUNK)
        if not data:
            raise UpstreamUnreachable("the upstream proxy closed the connection")
        try:
            found = buffer.feed(data)
        except ProxyProtocolError:
            raise UpstreamRefusedTarget("the upstream proxy sent a malformed answer") from None
        if found is not None:
            break
    head, rest = found
    try:
        status = parse_response_head(head).status
    except ProxyProtocolError:
        raise UpstreamRefusedTarget("the upstream proxy sent a malformed answer") from None
    if status == 407:
        raise UpstreamAuthRefused("the upstream proxy refused the credentials")
    if not 200 <= status < 300:
        raise UpstreamRefusedTarget(f"the upstream proxy answered {status} for {target}")
    return rest


async def _socks5_connect(stream: Stream, route: Socks5Upstream, target: Authority) -> None:
    reader, writer = stream.reader, stream.writer
    try:
        await _socks5_authenticate(reader, writer, route)
        writer.write(socks5.connect_request(target.host, target.port))
        await writer.drain()
        await reader.readexactly(socks5.reply_address_length(await reader.readexactly(5)))
    except asyncio.IncompleteReadError:
        raise UpstreamUnreachable("the SOCKS5 upstream closed the connection") from None
    except socks5.Socks5Error as exc:
        raise UpstreamRefusedTarget(f"the SOCKS5 upstream refused {target}: {exc}") from None


async def _socks5_authenticate(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Socks5Upstream
) -> None:
    with_credentials = route.username is not None
    writer.write(socks5.greeting(with_credentials))
    await writer.drain()
    method = socks5.parse_method_choice(await reader.readexactly(2))
    expected = socks5.USERNAME_PASSWORD if with_credentials else socks5.NO_AUTH
    if method == socks5.NO_ACCEPTABLE:
        raise UpstreamAuthRefused("the SOCKS5 upstream requires other credentials")
    if method != expected:
        raise socks5.Socks5Error("the server chose a method we did not offer")
    if with_credentials:
        writer.write(socks5.auth_request(route.username or "", route.password or ""))
        await writer.drain()
        if not socks5.auth_succeeded(await reader.readexactly(2)):
            raise UpstreamAuthRefused("the SOCKS5 upstream refused the credentials")
