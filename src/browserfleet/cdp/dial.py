"""How the server reaches a browser's DevTools server: a dialer opens a connected socket to it.

A browser on the host listens on 127.0.0.1; a sandboxed one listens on 127.0.0.1 of its own
network namespace, which only a socket created inside that namespace can reach. Everything that
talks to DevTools (launcher, gateway, tests) goes through a `DevtoolsDialer` and never assumes
which of the two it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Protocol

LOOPBACK = "127.0.0.1"


class DevtoolsDialer(Protocol):
    @property
    def port(self) -> int:
        """The DevTools port where the browser listens (what its Host header must name)."""

    async def connect(self) -> socket.socket:
        """A non-blocking TCP socket connected to the browser's DevTools server."""


class LoopbackDialer:
    """A browser whose DevTools server listens on the host's own 127.0.0.1."""

    def __init__(self, port: int) -> None:
        self._port = port

    @property
    def port(self) -> int:
        return self._port

    async def connect(self) -> socket.socket:
        return await connect_loopback(socket.socket(socket.AF_INET, socket.SOCK_STREAM), self._port)

    def __repr__(self) -> str:
        return f"LoopbackDialer({self._port})"


async def connect_loopback(sock: socket.socket, port: int) -> socket.socket:
    """Connect `sock` (from any network namespace) to 127.0.0.1:port; closed on failure."""
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.get_running_loop().sock_connect(sock, (LOOPBACK, port))
    except BaseException:
        sock.close()
        raise
    return sock


def host_header(dialer: DevtoolsDialer) -> str:
    # DevTools refuses a Host that is not an IP address or localhost (DNS rebinding guard).
    return f"{LOOPBACK}:{dialer.port}"


async def fetch(dialer: DevtoolsDialer, path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 GET to the DevTools server: (status, body). Not httpx: building its client
    costs more than the request, it cannot dial into another namespace, and it must ignore
    HTTP(S)_PROXY. Raises OSError or ValueError when the answer is not HTTP."""
    sock = await dialer.connect()
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        # Chromium's DevTools server speaks HTTP/1.1 only (it rejects HTTP/1.0).
        request = f"GET {path} HTTP/1.1\r\nHost: {host_header(dialer)}\r\nConnection: close\r\n\r\n"
        writer.write(request.encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *fields = head.split("\r\n")
        parts = status_line.split(" ")
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"GET {path}: not an HTTP answer: {status_line!r}")
        length = next(
            (int(f.split(":", 1)[1]) for f in fields if f.lower().startswith("content-length:")),
            None,
        )
        body = await (reader.read() if length is None else reader.readexactly(length))
        return int(parts[1]), body
    except asyncio.IncompleteReadError as exc:
        raise ValueError(f"GET {path}: the answer was cut short") from exc
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def get_json(dialer: DevtoolsDialer, path: str) -> object:
    """The JSON body of a 200 answer to GET path; ValueError for any other status."""
    status, body = await fetch(dialer, path)
    if status != 200:
        raise ValueError(f"GET {path}: {status}")
    return json.loads(body)
