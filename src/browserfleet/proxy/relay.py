"""Byte pumps between the browser-facing socket and the upstream one, with metering and idleness.

`relay()` carries an established connection (a CONNECT tunnel, or a plain-HTTP exchange once the
response head is through): zero-copy with splice(2) where the kernel has it (`zerocopy`), else
with the transports handing bytes to each other (`Tunnel`). The browser's side is metered either
way. A connection is idle when neither direction moved a byte for `idle_s` (see `idle`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import cast

from browserfleet.proxy import zerocopy
from browserfleet.proxy.idle import Activity, IdleTimeout, Read, until_done_or_idle
from browserfleet.proxy.meter import ByteMeter
from browserfleet.proxy.upstream import CHUNK, READ_LIMIT, Stream

Write = Callable[[bytes], None]


class BrowserSide:
    """The browser's connection to us: every byte read or written is metered here."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: ByteMeter
    ) -> None:
        self.reader, self.writer, self.meter = reader, writer, meter

    async def read(self) -> bytes:
        data = await self.reader.read(CHUNK)
        self.meter.from_browser += len(data)
        return data

    def write(self, data: bytes) -> None:
        self.meter.to_browser += len(data)
        self.writer.write(data)

    async def answer(self, response: bytes) -> None:
        """Send a final response (an error page) and flush it."""
        self.write(response)
        await self.writer.drain()


async def pump(read: Read, write: Write, writer: asyncio.StreamWriter, activity: Activity) -> None:
    """Copy until EOF, then half-close the destination; errors end the copy quietly."""
    try:
        while data := await activity.read(read):
            write(data)
            await activity.drain(writer)
        if writer.can_write_eof() and not writer.is_closing():
            writer.write_eof()
    except (OSError, IdleTimeout):
        writer.transport.abort()


async def relay(
    browser: BrowserSide,
    upstream: Stream,
    idle_s: float,
    pipes: zerocopy.PipePool,
    *,
    to_browser: bytes = b"",
    to_upstream: bytes = b"",
    ends_with_download: bool = False,
) -> None:
    """Carry an established connection until it ends, sending `to_browser`/`to_upstream` first.

    It ends when both directions passed EOF on, or with `ends_with_download` (a plain-HTTP
    response) when the upstream's did; when either side is lost; or after idle_s without a byte
    either way. Every byte on the browser's socket is metered. The zero-copy relay borrows its
    pipes from `pipes`.
    """
    if browser.writer.transport.is_closing():
        return  # the browser is gone: nothing can reach it
    # Through the transports, at once: the first bytes need not wait for the relay's setup.
    browser.write(to_browser)
    upstream.writer.write(to_upstream)
    if upstream.writer.transport.is_closing():
        await _deliver_remains(browser, upstream)
    elif zerocopy.AVAILABLE:
        await _relay_zero_copy(browser, upstream, idle_s, pipes, ends_with_download)
    else:
        await _relay_through_python(browser, upstream, idle_s, ends_with_download)


async def _deliver_remains(browser: BrowserSide, upstream: Stream) -> None:
    """The upstream is already lost: pass on what it sent before, then let the caller close."""
    with contextlib.suppress(OSError):
        browser.write(
            upstream.prefix + await _buffered(upstream.reader, _transport(upstream.writer))
        )


async def _relay_zero_copy(
    browser: BrowserSide,
    upstream: Stream,
    idle_s: float,
    pipes: zerocopy.PipePool,
    ends_with_download: bool,
) -> None:
    """Detach both sockets from their transports and splice between them.

    What the StreamReaders already held goes out before anything spliced, so order is kept.
    """
    with contextlib.ExitStack() as resources:
        browser_socket, held = await zerocopy.detach(
            browser.reader, browser.writer, resources, idle_s
        )
        browser.meter.from_browser += len(held)
        upstream_socket, came = await zerocopy.detach(
            upstream.reader, upstream.writer, resources, idle_s
        )
        spliced = zerocopy.SpliceRelay(
            browser_socket,
            upstream_socket,
            pipes,
            browser.meter,
            to_browser=upstream.prefix + came,
            to_upstream=held,
            ends_with_download=ends_with_download,
        )
        await spliced.run(idle_s)


class _Pipe(asyncio.Protocol):
    """Reads one transport, writes its peer; the peer's write buffer paces our reading."""

    def __init__(
        self, tunnel: Tunnel, peer: asyncio.Transport, count: Callable[[int], None]
    ) -> None:
        self._tunnel, self.peer, self._count = tunnel, peer, count

    def data_received(self, data: bytes) -> None:
        self._count(len(data))
        self._tunnel.touch()
        self.peer.write(data)

    def eof_received(self) -> bool:
        if self.peer.can_write_eof() and not self.peer.is_closing():
            self.peer.write_eof()
        self._tunnel.finished_one(self)
        return True  # keep our sending side open: TCP half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self._tunnel.lost()

    def pause_writing(self) -> None:  # our transport's send buffer is full: stop feeding it
        self.peer.pause_reading()

    def resume_writing(self) -> None:
        self.peer.resume_reading()


class Tunnel:
    """A task-free relay through Python, where splice(2) is missing: the transports hand bytes
    to each other.

    Swapping the streams' protocols for `_Pipe`s avoids StreamReader copies and a task wake-up
    per chunk, which roughly doubles throughput on loopback over StreamReader pumps.
    """

    def __init__(
        self,
        browser: asyncio.Transport,
        upstream: asyncio.Transport,
        idle_s: float,
        *,
        ends_with_download: bool = False,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = self._loop.create_future()
        self._open_directions = 2
        self._idle_s, self._last = idle_s, self._loop.time()
        self._browser, self._upstream = browser, upstream
        self._ends_with_download = ends_with_download

    def touch(self) -> None:
        self._last = self._loop.time()

    def finished_one(self, pipe: _Pipe) -> None:
        """One direction passed EOF on; the download's alone ends a plain-HTTP response."""
        self._open_directions -= 1
        download = pipe.peer is self._browser
        if self._open_directions == 0 or (self._ends_with_download and download):
            self.lost()

    def lost(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def run(self) -> None:
        """Until both directions ended, either side was lost, or the tunnel idled out."""
        try:
            await until_done_or_idle(self._done, lambda: self._last, self._idle_s)
        finally:
            for transport in (self._browser, self._upstream):
                if self._done.done():
                    transport.close()  # flush what is queued, then close
                else:
                    transport.abort()  # cancelled or idle: drop it now


async def _relay_through_python(
    browser: BrowserSide, upstream: Stream, idle_s: float, ends_with_download: bool
) -> None:
    """Relay an established connection with `_Pipe`s until it ends, metering the browser's side."""
    meter = browser.meter
    browser_transport = _transport(browser.writer)
    upstream_transport = _transport(upstream.writer)
    tunnel = Tunnel(
        browser_transport, upstream_transport, idle_s, ends_with_download=ends_with_download
    )

    def sent(n: int) -> None:
        meter.from_browser += n

    def received(n: int) -> None:
        meter.to_browser += n

    to_upstream = _Pipe(tunnel, upstream_transport, sent)
    to_browser = _Pipe(tunnel, browser_transport, received)
    # Paused while swapping: bytes the StreamReaders already hold must go out before new ones.
    browser_transport.pause_reading()
    upstream_transport.pause_reading()
    browser_transport.set_protocol(to_upstream)
    upstream_transport.set_protocol(to_browser)
    held = [
        (to_upstream, await _buffered(browser.reader, browser_transport), browser.reader),
        (
            to_browser,
            upstream.prefix + await _buffered(upstream.reader, upstream_transport),
            upstream.reader,
        ),
    ]
    for pipe, data, reader in held:
        if data:
            pipe.data_received(data)
        if reader.at_eof():
            pipe.eof_received()
    browser_transport.resume_reading()
    upstream_transport.resume_reading()
    await tunnel.run()


async def _buffered(reader: asyncio.StreamReader, transport: asyncio.Transport) -> bytes:
    """What the StreamReader already holds, without waiting for more; leaves reading paused."""
    try:
        async with asyncio.timeout(0):
            return await reader.read(4 * READ_LIMIT)  # a non-empty buffer returns at once
    except TimeoutError:
        return b""
    finally:
        transport.pause_reading()  # read() may have resumed it


def _transport(writer: asyncio.StreamWriter) -> asyncio.Transport:
    # A read-write transport (uvloop's TCPTransport is one without subclassing asyncio's).
    return cast(asyncio.Transport, writer.transport)
