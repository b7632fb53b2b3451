"""Sockets inside a sandbox's network namespace, made by the server from the outside.

A socket belongs to the network namespace it was created in, whichever thread uses it later.
A short-lived thread enters the sandbox's namespace with setns(2), creates the socket and ends:
the server's own threads never change namespace, so nothing the server opens can land in a
sandbox by mistake. Through such sockets the server listens for the browser's egress proxy and
dials its DevTools server, both on the 127.0.0.1 that exists only inside the sandbox.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from browserfleet.cdp.dial import LOOPBACK, connect_loopback

CLONE_NEWNET = 0x40000000
T = TypeVar("T")

_libc = ctypes.CDLL(None, use_errno=True)


class NetnsGone(ConnectionRefusedError):
    """The sandbox's network namespace was released: nothing of it can be reached any more."""


class Netns:
    """A handle on one network namespace, released once (then every use raises NetnsGone)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        # Held while a thread is inside or the fd closes: a closed fd's number, reused for
        # another sandbox's namespace, must never be entered by a late dialer.
        self._lock = threading.Lock()

    @classmethod
    def of_pid(cls, pid: int) -> Netns:
        """The network namespace process pid is in (the caller must know pid is still it)."""
        return cls(os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC))

    def inode(self) -> int:
        with self._lock:
            self._check()
            return os.fstat(self._fd).st_ino

    def make_socket(
        self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
    ) -> socket.socket:
        """A new socket in this namespace. Blocking; call it through `in_thread` only."""
        with self._lock:
            self._check()
            if _libc.setns(self._fd, CLONE_NEWNET) != 0:
                code = ctypes.get_errno()
                raise OSError(code, f"setns: {os.strerror(code)}")
            return socket.socket(family, kind)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def _check(self) -> None:
        if self._fd < 0:
            raise NetnsGone("the sandbox's network namespace is gone")

    async def open_socket(
        self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
    ) -> socket.socket:
        return await in_thread(lambda: self.make_socket(family, kind))

    async def listen(self, port: int, backlog: int = 128) -> socket.socket:
        """A socket listening on 127.0.0.1:port inside the namespace."""

        def make() -> socket.socket:
            sock = self.make_socket()
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((LOOPBACK, port))
                sock.listen(backlog)
            except BaseException:
                sock.close()
                raise
            return sock

        return await in_thread(make)


async def in_thread(work: Callable[[], T]) -> T:
    """Run work in a new thread that ends with it (it may have entered a namespace)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def deliver(outcome: Callable[[], None]) -> None:
        if not done.done():
            outcome()

    def run() -> None:
        try:
            outcome = functools.partial(done.set_result, work())
        except BaseException as error:
            outcome = functools.partial(done.set_exception, error)
        try:
            loop.call_soon_threadsafe(deliver, outcome)
        except RuntimeError:  # the loop is closed: nobody will take the socket
            _discard(outcome.args[0])

    threading.Thread(target=run, name="netns", daemon=True).start()
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        # The thread finishes on its own; a socket it made is closed when it arrives.
        done.add_done_callback(_discard_result)
        raise


def _discard_result(future: asyncio.Future[T]) -> None:
    if not future.cancelled() and future.exception() is None:
        _discard(future.result())


def _discard(result: object) -> None:
    if isinstance(result, socket.socket):
        result.close()


class NetnsDialer:
    """Implements cdp.dial.DevtoolsDialer for a browser listening inside a network namespace."""

    def __init__(self, netns: Netns, port: int, *, owns_netns: bool = False) -> None:
        self._netns = netns
        self._port = port
        self._owns = owns_netns

    def close(self) -> None:
        """Release the namespace handle, if this dialer owns it (a sandbox's own dialers share
        the sandbox's, which the sandbox releases)."""
        if self._owns:
            self._netns.close()

    @property
    def port(self) -> int:
        return self._port

    async def connect(self) -> socket.socket:
        return await connect_loopback(await self._netns.open_socket(), self._port)

    def __repr__(self) -> str:
        return f"NetnsDialer(port={self._port})"
