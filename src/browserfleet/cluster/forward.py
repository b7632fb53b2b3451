"""A browser's DevTools server reached from another machine: the forwarder that runs beside it,
and the dialer the API process reaches it with.

`DevtoolsForwarder` serves one browser on an address of its node. A connection must open with
the preface (preface.py) within a deadline, else it is closed without a byte; then the forwarder
dials the browser with the node's own dialer, answers one status byte, and splices bytes both
ways. `RemoteDialer` is a `DevtoolsDialer` like any other, so the gateway, the primer and the
screencast reach a remote browser unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import math
import secrets
import socket
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Self

from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cluster.preface import (
    OK,
    PREFACE_BYTES,
    UNREACHABLE,
    check_status,
    new_token,
    preface,
    preface_matches,
)
from browserfleet.proxy import zerocopy
from browserfleet.proxy.meter import ByteMeter
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ForwarderLimits:
    # Connections handled at once (reading a preface, dialing or relaying); one more is closed
    # at once. The gateway opens a few per client (discovery, websockets, counting).
    max_connections: int = 64
    preface_timeout_s: float = 2.0
    dial_timeout_s: float = 5.0
    close_timeout_s: float = 5.0


@dataclass(slots=True)
class ForwarderCounters:
    accepted: int = 0  # connections taken in
    refused: int = 0  # over max_connections: closed at once, never read
    rejected: int = 0  # no valid preface within the deadline: closed without a byte
    dialed: int = 0  # valid prefaces: each dialed the browser once
    unreachable: int = 0  # of those, the browser did not answer (status UNREACHABLE)
    open: int = 0  # being handled now
    bytes_to_browser: int = 0  # relayed, after the prefaces
    bytes_to_client: int = 0  # relayed, the status bytes included


class DevtoolsForwarder:
    """`async with DevtoolsForwarder(dialer, host) as forwarder:` hand `forwarder.port` and
    `forwarder.token` to the API process, which reaches the browser with a `RemoteDialer`."""

    def __init__(
        self,
        browser: DevtoolsDialer,
        host: str,
        port: int | range = 0,
        *,
        limits: ForwarderLimits | None = None,
    ) -> None:
        """`port`: 0 for any free port, or the range the operator opened for forwarders
        (the first free one from a random start is taken)."""
        if not zerocopy.AVAILABLE:
            raise RuntimeError("the DevTools forwarder needs splice(2) (Linux)")
        self._browser = browser
        self._host, self._requested_port = host, port
        self._limits = limits or ForwarderLimits()
        self._token = new_token()
        self._counters = ForwarderCounters()
        self._meter = ByteMeter()  # the relays' byte counts: "browser" there is our client
        self._clients: set[asyncio.StreamWriter] = set()
        self._pipes = zerocopy.PipePool()
        self._tasks = TaskSet("devtools-forwarder")
        self._server: asyncio.Server | None = None

    @property
    def token(self) -> bytes:
        """The secret a client's preface must carry: for the API process alone, never logged."""
        return self._token

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the DevTools forwarder is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def counters(self) -> ForwarderCounters:
        """A snapshot."""
        return replace(
            self._counters,
            open=len(self._clients),
            bytes_to_browser=self._meter.from_browser,
            bytes_to_client=self._meter.to_browser,
        )

    async def start(self) -> int:
        """Listen on host:port; return the port. OSError when every port of the range is
        taken."""
        requested = self._requested_port
        if isinstance(requested, int):
            self._server = await self._listen(requested)
            return self.port
        start = secrets.randbelow(len(requested)) if len(requested) else 0
        for i in range(len(requested)):
            port = requested[(start + i) % len(requested)]
            try:
                self._server = await self._listen(port)
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            return self.port
        raise OSError(
            errno.EADDRINUSE, f"no free forwarder port in {requested.start}-{requested.stop - 1}"
        )

    async def _listen(self, port: int) -> asyncio.Server:
        # SO_REUSEADDR passes a closed forwarder's TIME_WAIT; Linux never lets two listeners
        # share a port with it (that would take SO_REUSEPORT).
        return await asyncio.start_server(self._accept, self._host, port, reuse_address=True)

    async def aclose(self) -> None:
        """Stop listening, end every connection and return once none of its tasks is left."""
        if self._server is not None:
            self._server.close()
        await self._tasks.close(grace_s=self._limits.close_timeout_s)
        if len(self._tasks):
            log.warning("devtools forwarder: %d connections did not end", len(self._tasks))
        for writer in self._clients:  # tasks cancelled before they ran never closed theirs
            writer.transport.abort()
        self._clients.clear()
        self._pipes.close()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        port = self.port if self._server is not None else self._requested_port
        return f"DevtoolsForwarder({self._host}:{port}, browser={self._browser!r})"

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= self._limits.max_connections:
            self._counters.refused += 1
            log.warning(
                "devtools forwarder: refused %s: %d connections open",
                writer.get_extra_info("peername"),
                len(self._clients),
            )
            writer.transport.abort()
            return
        try:
            self._tasks.spawn(self._serve(reader, writer), name=f"conn-{self._counters.accepted}")
        except RuntimeError:  # closing: the task set takes no more work
            writer.transport.abort()
            return
        self._counters.accepted += 1
        self._clients.add(writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve_one(reader, writer)
        except OSError:
            pass  # the client went away: nobody to tell
        except asyncio.CancelledError:
            writer.transport.abort()
            raise
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        refusal = await self._check_preface(reader)
        if refusal is not None:
            self._counters.rejected += 1
            log.warning(
                "devtools forwarder: closed %s: %s", writer.get_extra_info("peername"), refusal
            )
            return
        self._counters.dialed += 1
        browser = await self._dial()
        if browser is None:
            self._counters.unreachable += 1
            writer.write(UNREACHABLE)  # flushed by the close that follows
            return
        with browser, contextlib.ExitStack() as resources:
            client, held = await zerocopy.detach(
                reader, writer, resources, self._limits.close_timeout_s
            )
            relay = zerocopy.SpliceRelay(
                client, browser, self._pipes, self._meter, to_browser=OK, to_upstream=held
            )
            # Never idle out: a DevTools client may wait long for an event; the gateway and
            # the browser's own end bound the connection.
            await relay.run(math.inf)

    async def _check_preface(self, reader: asyncio.StreamReader) -> str | None:
        """None for a valid preface, else why the connection is closed."""
        try:
            async with asyncio.timeout(self._limits.preface_timeout_s):
                received = await reader.readexactly(PREFACE_BYTES)
        except TimeoutError:
            return f"no preface within {self._limits.preface_timeout_s:g} s"
        except asyncio.IncompleteReadError as exc:
            return f"a preface of {len(exc.partial)} bytes, then the end"
        return None if preface_matches(received, self._token) else "a wrong preface"

    async def _dial(self) -> socket.socket | None:
        try:
            async with asyncio.timeout(self._limits.dial_timeout_s):
                return await self._browser.connect()
        except OSError as exc:  # refused, the sandbox gone, or the timeout
            log.warning("devtools forwarder: %r is unreachable: %r", self._browser, exc)
            return None


class RemoteDialer:
    """Implements cdp.dial.DevtoolsDialer for a browser behind a DevtoolsForwarder.

    `port` is the browser's own DevTools port, so the Host header it is sent stays its own.
    A refused preface, an unreachable browser or a forwarder that hangs up raise
    ConnectionRefusedError, as a closed DevTools port would.
    """

    def __init__(
        self,
        host: str,
        forward_port: int,
        token: bytes,
        devtools_port: int,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        ip = ipaddress.ip_address(host)
        self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._address = (host, forward_port)
        self._preface = preface(token)
        self._port = devtools_port
        self._timeout_s = timeout_s

    @property
    def port(self) -> int:
        return self._port

    async def connect(self) -> socket.socket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self._timeout_s):
                await loop.sock_connect(sock, self._address)
                await loop.sock_sendall(sock, self._preface)
                check_status(await loop.sock_recv(sock, 1))
        except (ConnectionResetError, ConnectionAbortedError, BrokenPipeError) as exc:
            # Reset by a forwarder at its cap (it never reads such a connection).
            sock.close()
            raise ConnectionRefusedError("the DevTools forwarder refused the connection") from exc
        except BaseException:
            sock.close()
            raise
        return sock

    def __repr__(self) -> str:
        host, forward_port = self._address
        return f"RemoteDialer({host}:{forward_port}, port={self._port})"
