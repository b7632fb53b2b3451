"""Zero-copy relay of an established connection: socket -> pipe -> socket with splice(2).

Why: relaying through Python costs a copy into user space, a copy back out and a callback per
chunk, which caps a tunnel well below what loopback carries. splice() moves page references
between a socket and a pipe inside the kernel, so a relayed byte never enters Python, and one
wake-up moves up to a pipe's worth.

How: the two sockets are taken from their asyncio/uvloop transports (`detach`: writes flushed,
the StreamReader's bytes taken out, the fd dup()ed, the transport aborted, because a loop will
not watch an fd a transport owns) and driven with add_reader/add_writer. Each direction is a
`Flow`, a small state machine (send the bytes held back, fill the pipe from the source, drain it
into the destination, pass EOF on as a half-close) that never blocks and says what it waits for
next. Flow is pure bookkeeping; the syscalls behind it are a `SpliceChannel`.

Pipes are lent by a `PipePool` only while bytes sit in them: an idle tunnel holds none, which
keeps the per-user pipe page budget (/proc/sys/fs/pipe-user-pages-soft, past which the kernel
hands out one-page pipes) for the transfers that move, and saves creating two pipes per tunnel.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from browserfleet.proxy.idle import IdleTimeout, until_done_or_idle
from browserfleet.proxy.meter import ByteMeter

AVAILABLE = sys.platform == "linux" and hasattr(os, "splice")
# Bytes one splice() may move. The relay's CPU for a 200 MB loopback download measured 155 ms
# with 64 KiB pipes (the default), 85 ms with 256 KiB, 50-65 ms with 1 MiB.
PIPE_BYTES = 1024 * 1024
# Empty pipes a pool keeps for the next transfer (more are closed). Steps run one at a time, so
# only directions stalled with bytes in their pipe hold one; the rest share the idle ones.
IDLE_PIPES = 2
STEPS_PER_WAKEUP = 8  # syscalls one direction may make before the loop serves other work
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)

Count = Callable[[int], None]


class Wait(enum.Enum):
    """What a Flow needs before it can move again."""

    READ = "read"  # the source has nothing for us yet
    WRITE = "write"  # the destination is full: the source is not read meanwhile (backpressure)
    DONE = "done"  # EOF passed on: this direction is over


class Channel(Protocol):
    """The I/O under a Flow. Moving calls move what they can now, or raise BlockingIOError."""

    def send(self, data: memoryview) -> int:
        """Write bytes held in memory to the destination."""

    def fill(self) -> int:
        """Source to an empty pipe; 0 means EOF."""

    def drain(self, size: int) -> int:
        """Pipe to destination, at most `size` bytes."""

    def release(self) -> None:
        """The pipe is empty: give it back until the next fill."""

    def shut(self) -> None:
        """Half-close the destination (EOF one way, the other way keeps flowing)."""


def _uncounted(_: int) -> None:
    pass


class Flow:
    """One direction of a relay: bytes held back first, then the source until EOF."""

    def __init__(
        self,
        channel: Channel,
        held: bytes = b"",
        *,
        taken: Count = _uncounted,
        given: Count = _uncounted,
    ) -> None:
        self._channel = channel
        self._held = memoryview(held)
        self._in_pipe = 0
        self._eof = False
        self._done = False
        self._taken, self._given = taken, given  # read from the source, written to the dest

    @property
    def in_pipe(self) -> int:
        """Bytes read from the source and not yet written to the destination."""
        return self._in_pipe

    def step(self) -> Wait:
        """Move what moves without blocking (bounded, to stay fair); say what to wait for.

        OSErrors other than BlockingIOError (a reset, a broken pipe) are the caller's to handle.
        """
        try:
            return self._steps()
        finally:
            if not self._in_pipe:
                self._channel.release()

    def _steps(self) -> Wait:
        try:
            for _ in range(STEPS_PER_WAKEUP):
                if not self._move():
                    return Wait.DONE
        except BlockingIOError:
            pass
        return Wait.WRITE if self._held or self._in_pipe else Wait.READ

    def _move(self) -> bool:
        """One syscall's worth of progress; False once EOF has been passed on."""
        if self._done:
            return False
        if self._held:
            sent = self._channel.send(self._held)
            self._held = self._held[sent:]
            self._given(sent)
        elif self._in_pipe:
            sent = self._channel.drain(self._in_pipe)
            self._in_pipe -= sent
            self._given(sent)
        elif self._eof:
            self._channel.shut()
            self._done = True
            return False
        else:
            self._in_pipe = self._channel.fill()
            self._eof = self._in_pipe == 0
            self._taken(self._in_pipe)
        return True


@dataclass(frozen=True, slots=True)
class Pipe:
    read_fd: int
    write_fd: int
    size: int  # its capacity: what one fill may move

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


def open_pipe() -> Pipe:
    """A non-blocking pipe, enlarged to PIPE_BYTES when the kernel allows."""
    read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # EPERM past the user's pipe page budget: keep the default
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return Pipe(read_fd, write_fd, fcntl.fcntl(write_fd, fcntl.F_GETPIPE_SZ))


class PipePool:
    """Empty pipes lent to the channels of one owner (an EgressProxy), closed with it."""

    def __init__(self, keep: int = IDLE_PIPES) -> None:
        self._idle: list[Pipe] = []
        self._keep = keep
        self._closed = False

    def take(self) -> Pipe:
        return self._idle.pop() if self._idle else open_pipe()

    def give(self, pipe: Pipe) -> None:
        """Take back an empty pipe (the caller's bookkeeping says so) for the next taker."""
        if self._closed or len(self._idle) >= self._keep:
            pipe.close()
        else:
            self._idle.append(pipe)

    def close(self) -> None:
        """Close the idle pipes; pipes lent out are closed when given back."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class SpliceChannel:
    """A Flow's syscalls: source socket -> a pipe from the pool -> destination socket."""

    def __init__(self, source: socket.socket, destination: socket.socket, pipes: PipePool) -> None:
        self._destination = destination
        self._source_fd, self._destination_fd = source.fileno(), destination.fileno()
        self._pipes = pipes
        self._pipe: Pipe | None = None

    def send(self, data: memoryview) -> int:
        return self._destination.send(data)

    def fill(self) -> int:
        if self._pipe is None:
            self._pipe = self._pipes.take()
        return os.splice(self._source_fd, self._pipe.write_fd, self._pipe.size, flags=_FLAGS)

    def drain(self, size: int) -> int:
        assert self._pipe is not None  # only called with bytes in the pipe
        return os.splice(self._pipe.read_fd, self._destination_fd, size, flags=_FLAGS)

    def release(self) -> None:
        if self._pipe is not None:
            self._pipes.give(self._pipe)
            self._pipe = None

    def discard(self) -> None:
        """The relay ended with bytes still in the pipe: they will never go out; close it."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    def shut(self) -> None:
        with contextlib.suppress(OSError):  # the peer is already gone: nothing to tell it
            self._destination.shutdown(socket.SHUT_WR)


@dataclass(slots=True)
class _Leg:
    """A Flow, its channel, and the fds its waits are registered on."""

    flow: Flow
    channel: SpliceChannel
    source_fd: int
    destination_fd: int
    wait: Wait | None = None  # what the loop currently watches for it; None: nothing


class SpliceRelay:
    """Both directions of a connection, driven by loop callbacks (no task, no Python copies).

    It ends when both directions passed EOF on (or, with `ends_with_download`, when the
    upstream's did: a plain-HTTP response), on any socket error, or after idle_s without a
    byte either way. The sockets stay the caller's to close, after run().
    """

    def __init__(
        self,
        browser: socket.socket,
        upstream: socket.socket,
        pipes: PipePool,
        meter: ByteMeter,
        *,
        to_browser: bytes,
        to_upstream: bytes,
        ends_with_download: bool = False,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._last = self._loop.time()
        self._ends_with_download = ends_with_download

        def taken(n: int) -> None:
            meter.from_browser += n

        def given(n: int) -> None:
            meter.to_browser += n

        up = SpliceChannel(browser, upstream, pipes)
        down = SpliceChannel(upstream, browser, pipes)
        self._up = _Leg(Flow(up, to_upstream, taken=taken), up, browser.fileno(), upstream.fileno())
        self._down = _Leg(
            Flow(down, to_browser, given=given), down, upstream.fileno(), browser.fileno()
        )

    async def run(self, idle_s: float) -> None:
        """Relay until the connection ends (or idles out)."""
        try:
            for leg in (self._up, self._down):
                self._advance(leg)
            await until_done_or_idle(self._done, lambda: self._last, idle_s)
        finally:
            self._end()
            for leg in (self._up, self._down):
                self._watch(leg, None)
                leg.channel.discard()

    def _advance(self, leg: _Leg) -> None:
        """A loop callback: the fd the leg waited on is ready."""
        if self._done.done():
            return
        self._last = self._loop.time()
        try:
            wait = leg.flow.step()
            self._watch(leg, wait)
        except OSError:  # reset, broken pipe: the connection is over both ways
            self._end()
            return
        if wait is Wait.DONE and self._finished():
            self._end()

    def _finished(self) -> bool:
        if self._ends_with_download and self._down.wait is Wait.DONE:
            return True
        return self._up.wait is self._down.wait is Wait.DONE

    def _watch(self, leg: _Leg, wait: Wait | None) -> None:
        """Register the leg's callback for `wait`, unregistering the previous one; no-op if same."""
        if wait is leg.wait:
            return
        if leg.wait is Wait.READ:
            self._loop.remove_reader(leg.source_fd)
        elif leg.wait is Wait.WRITE:
            self._loop.remove_writer(leg.destination_fd)
        if wait is Wait.READ:
            self._loop.add_reader(leg.source_fd, self._advance, leg)
        elif wait is Wait.WRITE:
            self._loop.add_writer(leg.destination_fd, self._advance, leg)
        leg.wait = wait

    def _end(self) -> None:
        if not self._done.done():
            self._done.set_result(None)


async def detach(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    resources: contextlib.ExitStack,
    flush_s: float,
) -> tuple[socket.socket, bytes]:
    """Take a connected socket from its stream: (our own socket, bytes its reader held).

    The transport's queued writes are flushed first (at most flush_s), nothing is read past
    what the StreamReader already holds, and the transport is aborted: the connection then lives
    on in the dup()ed socket alone, which `resources` closes.
    """
    # A read-write transport (uvloop's TCPTransport is one without subclassing asyncio's).
    transport = cast(asyncio.Transport, writer.transport)
    transport.pause_reading()
    if transport.get_write_buffer_size():
        await _flushed(writer, flush_s)
    if transport.is_closing():  # lost while we waited
        raise ConnectionResetError("the connection closed while it was being detached")
    # The reader gets nothing more from this transport, so what it holds is all it will have:
    # marking that as its end lets read() return it at once instead of waiting for more. A real
    # EOF is not lost: the socket reports it again to whoever reads it next.
    reader.feed_eof()
    held = await reader.read()
    original = transport.get_extra_info("socket")
    own = socket.socket(original.family, original.type, original.proto, os.dup(original.fileno()))
    resources.callback(own.close)
    own.setblocking(False)  # the fd is already: this tells the socket object
    transport.abort()
    return own, held


async def _flushed(writer: asyncio.StreamWriter, timeout_s: float) -> None:
    """Wait until the transport has handed every queued byte to the kernel."""
    writer.transport.set_write_buffer_limits(high=0)
    try:
        async with asyncio.timeout(timeout_s):
            await writer.drain()
    except TimeoutError:
        raise IdleTimeout from None
