"""EgressProxy: one browser's forwarding proxy on 127.0.0.1, over plain asyncio streams.

Plain HTTP is one request per browser connection: the request goes out with
`Connection: close`, the response comes back with it, and both sockets close after the response
(correct for any framing, and plain HTTP is rare next to CONNECT tunnels).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

from browserfleet.proxy.errors import EgressBlocked, EgressError, UpstreamAuthRefused
from browserfleet.proxy.http1 import (
    CONNECTION_ESTABLISHED,
    HeadBuffer,
    ProxyProtocolError,
    RequestHead,
    ResponseHead,
    client_response,
    content_length,
    error_response,
    origin_request,
    parse_request_head,
    parse_response_head,
    upstream_request,
)
from browserfleet.proxy.idle import Activity, IdleTimeout, Read
from browserfleet.proxy.meter import ByteMeter
from browserfleet.proxy.relay import BrowserSide, pump, relay
from browserfleet.proxy.upstream import (
    CHUNK,
    READ_LIMIT,
    HttpUpstream,
    Route,
    Stream,
    open_http_upstream,
    open_tunnel,
)
from browserfleet.proxy.zerocopy import PipePool
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)
# With a challenge, Chromium reports net::ERR_INVALID_AUTH_CREDENTIALS (it has no credentials
# to offer); without one it reports ERR_PROXY_AUTH_UNSUPPORTED. Checked with Chromium 14x.
AUTH_CHALLENGE = (("Proxy-Authenticate", 'Basic realm="browserfleet upstream proxy"'),)


# Below this many body bytes still to come, the Python pump finishes a response: setting up the
# zero-copy relay (detaching both sockets, loop registrations: ~0.1 ms) costs about as much as
# copying 64 KiB through Python.
SPLICE_FROM = 64 * 1024
UNKNOWN_LENGTH = sys.maxsize  # chunked, or until the origin closes: may be anything


@dataclass(frozen=True, slots=True)
class ResponseStart:
    """What the browser gets first (head and the body bytes read with it), and how much more
    body the head announced."""

    data: bytes
    remaining: int

    @property
    def splice_rest(self) -> bool:
        """Whether the rest of the body is worth the zero-copy relay's setup."""
        return self.remaining >= SPLICE_FROM


class EgressProxy:
    """A per-session forwarding proxy: `async with EgressProxy(route) as proxy: proxy.port`."""

    def __init__(
        self,
        route: Route,
        *,
        connect_timeout_s: float = 10.0,
        idle_timeout_s: float = 300.0,
        head_timeout_s: float = 30.0,
        max_connections: int = 256,
        host: str = "127.0.0.1",
    ) -> None:
        self._route = route
        self._head_timeout_s = head_timeout_s
        self._max_connections = max_connections
        self._live = 0  # connections being served now
        self._connect_timeout_s = connect_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._host = host
        self._meter = ByteMeter()
        self._tasks = TaskSet("egress-proxy")
        self._pipes = PipePool()  # for zero-copy relays; empty pipes kept between transfers
        self._server: asyncio.Server | None = None

    @property
    def route(self) -> Route:
        return self._route

    def reroute(self, route: Route) -> None:
        """Carry new connections by `route` from now on (a pooled browser's proxy is given its
        session's route when the browser is handed out)."""
        self._route = route

    @property
    def meter(self) -> ByteMeter:
        """Live byte counters of every connection this proxy carried."""
        return self._meter

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the egress proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, sock: socket.socket | None = None) -> int:
        """Accept on `sock` (a listening socket, which the proxy then owns: e.g. one created in a
        sandbox's network namespace), else listen on an ephemeral port of `host`; return the
        port."""
        if sock is not None:
            self._server = await asyncio.start_server(self._accept, sock=sock, limit=READ_LIMIT)
        else:
            self._server = await asyncio.start_server(self._accept, self._host, 0, limit=READ_LIMIT)
        return self.port

    async def aclose(self) -> None:
        """Stop listening and close every live connection now."""
        if self._server is not None:
            self._server.close()
        await self._tasks.close(grace_s=5.0)
        self._pipes.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> EgressProxy:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._live >= self._max_connections:
            writer.transport.abort()  # a browser never needs this many: refuse, hold nothing
            return
        browser = BrowserSide(reader, writer, self._meter)
        try:
            self._tasks.spawn(self._serve(browser), name=f"conn-{self._meter.connections}")
        except RuntimeError:  # closing: the task set takes no more work
            writer.transport.abort()
            return
        self._meter.connections += 1
        self._live += 1

    async def _serve(self, browser: BrowserSide) -> None:
        try:
            await self._serve_one(browser)
        finally:
            self._live -= 1

    async def _serve_one(self, browser: BrowserSide) -> None:
        try:
            head, rest = await self._read_request(browser)
            if head.is_connect:
                await self._tunnel(browser, head, rest)
            else:
                await self._forward(browser, head, rest)
        except ProxyProtocolError as exc:
            await _answer_quietly(browser, error_response(exc.status, str(exc)))
        except EgressError as exc:
            await _answer_quietly(browser, self._refusal(exc))
        except (OSError, IdleTimeout, EOFError):
            pass  # the browser went away or idled out: nothing to answer
        except asyncio.CancelledError:
            browser.writer.transport.abort()
            raise
        finally:
            browser.writer.close()

    async def _read_request(self, browser: BrowserSide) -> tuple[RequestHead, bytes]:
        """The request head, which must come whole within head_timeout_s."""
        activity, buffer = Activity(self._idle_timeout_s), HeadBuffer()
        try:
            async with asyncio.timeout(self._head_timeout_s):
                while True:
                    data = await activity.read(browser.read)
                    if not data:
                        raise EOFError
                    if (found := buffer.feed(data)) is not None:
                        return parse_request_head(found[0]), found[1]
        except TimeoutError:
            raise IdleTimeout from None

    async def _tunnel(self, browser: BrowserSide, head: RequestHead, rest: bytes) -> None:
        upstream = await open_tunnel(self._route, head.target, timeout_s=self._connect_timeout_s)
        with _owned(upstream):
            await relay(
                browser,
                upstream,
                self._idle_timeout_s,
                self._pipes,
                to_browser=CONNECTION_ESTABLISHED,
                to_upstream=rest,
            )

    async def _forward(self, browser: BrowserSide, head: RequestHead, rest: bytes) -> None:
        route, timeout_s = self._route, self._connect_timeout_s
        if isinstance(route, HttpUpstream):
            upstream = await open_http_upstream(route, head.target, timeout_s=timeout_s)
            request = upstream_request(head, route.proxy_authorization())
        else:
            upstream = await open_tunnel(route, head.target, timeout_s=timeout_s)
            request = origin_request(head)
        with _owned(upstream):
            upstream.writer.write(request + rest)
            await self._exchange(browser, upstream, via_proxy=isinstance(route, HttpUpstream))

    async def _exchange(self, browser: BrowserSide, upstream: Stream, *, via_proxy: bool) -> None:
        """Relay the request body while the response head comes back; then the rest of the body.

        Every response is `Connection: close`, so past its head the exchange is a tunnel that
        ends with the download. A body known to be short is finished by the Python pump, which
        costs less than setting up the zero-copy relay; any other goes through `relay`.
        """
        activity = Activity(self._idle_timeout_s)
        read: Read = lambda: upstream.reader.read(CHUNK)  # noqa: E731
        async with asyncio.TaskGroup() as group:
            sending = group.create_task(
                pump(browser.read, upstream.writer.write, upstream.writer, activity)
            )
            start = await self._response_start(browser, read, activity, via_proxy=via_proxy)
            if start is not None and not start.splice_rest:
                browser.write(start.data)
                await pump(read, browser.write, browser.writer, activity)
            sending.cancel()
        if start is not None and start.splice_rest:
            await relay(
                browser,
                upstream,
                self._idle_timeout_s,
                self._pipes,
                to_browser=start.data,
                ends_with_download=True,
            )

    async def _response_start(
        self, browser: BrowserSide, read: Read, activity: Activity, *, via_proxy: bool
    ) -> ResponseStart | None:
        """The response head for the browser and the body bytes read with it; None when the
        browser was answered with an error page instead."""
        try:
            response, body = await _response_head(read, activity)
        except (OSError, IdleTimeout, ProxyProtocolError, EOFError):
            await _answer_quietly(browser, error_response(502, "The site sent no valid response."))
            return None
        if via_proxy and response.status == 407:
            await _answer_quietly(browser, self._refusal(UpstreamAuthRefused("refused")))
            return None
        length = content_length(response)
        remaining = UNKNOWN_LENGTH if length is None else max(0, length - len(body))
        return ResponseStart(client_response(response) + body, remaining)

    def _refusal(self, exc: EgressError) -> bytes:
        """The answer to the browser for a failure, logged once here."""
        if isinstance(exc, EgressBlocked):
            self._meter.blocked += 1
            log.warning("egress blocked: %s", exc)
            return error_response(403, f"Blocked by browserfleet egress policy: {exc}")
        log.info("egress failed (%s): %s", type(exc).__name__, exc)
        if isinstance(exc, UpstreamAuthRefused):
            return error_response(407, str(exc), extra=AUTH_CHALLENGE)
        return error_response(exc.status, str(exc))


async def _response_head(read: Read, activity: Activity) -> tuple[ResponseHead, bytes]:
    buffer = HeadBuffer()
    while True:
        data = await activity.read(read)
        if not data:
            raise EOFError
        if (found := buffer.feed(data)) is not None:
            return parse_response_head(found[0]), found[1]


async def _answer_quietly(browser: BrowserSide, response: bytes) -> None:
    try:
        async with asyncio.timeout(5.0):
            await browser.answer(response)
    except (OSError, TimeoutError):
        pass


@contextlib.contextmanager
def _owned(stream: Stream) -> Iterator[None]:
    """Close the upstream after use: flush on success, drop at once on failure or cancel."""
    try:
        yield
    except BaseException:
        stream.abort()
        raise
    stream.close()


async def open_egress(
    route: Route, *, connect_timeout_s: float = 10.0, idle_timeout_s: float = 300.0
) -> EgressProxy:
    """Start an EgressProxy for one browser session; the caller owns it and calls aclose().

    Pass the port to Chromium with `chromium_proxy_args(proxy.port)`.
    """
    proxy = EgressProxy(route, connect_timeout_s=connect_timeout_s, idle_timeout_s=idle_timeout_s)
    await proxy.start()
    return proxy
