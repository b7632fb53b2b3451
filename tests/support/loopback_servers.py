"""Real servers on 127.0.0.1 for the egress proxy tests: an origin, a SOCKS5 proxy, proxy.py.

The asyncio servers run on the test's own loop and close every connection they accepted; the
proxy.py upstream is a subprocess in its own process group, killed and reaped at teardown.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

from browserfleet.proxy import DirectRoute, EgressGuard

UPSTREAM_USER, UPSTREAM_PASSWORD = "fleet-user", "s3cret-pass"
LOOPBACK_ALLOWED = DirectRoute(EgressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)))
PAGE = (
    b"<!doctype html><html><head><title>origin page</title></head><body>origin-body</body></html>"
)


class LoopbackServer:
    """An asyncio server on 127.0.0.1 that owns (and at close cancels) its connection tasks."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self.handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.transport.abort()
            self._handlers.discard(task)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


@dataclass
class SeenRequest:
    request_line: str
    headers: dict[str, str]
    body: bytes


@dataclass
class OriginLog:
    requests: list[SeenRequest] = field(default_factory=list)
    bytes_sent: int = 0


class OriginServer(LoopbackServer):
    """HTTP/1.1 origin: `/` a page, `/bytes/N` N bytes, `/echo` the request body's length,
    `/until-close/N` N bytes framed by closing the connection (no Content-Length)."""

    def __init__(self) -> None:
        super().__init__()
        self.log = OriginLog()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.log.requests.append(SeenRequest(lines[0], headers, body))
        path = lines[0].split(" ")[1]
        if path.startswith("/until-close/"):
            await self._until_close(writer, int(path.removeprefix("/until-close/")))
            return
        if path.startswith("/bytes/"):
            payload = b"x" * int(path.removeprefix("/bytes/"))
        elif path == "/echo":
            payload = str(len(body)).encode()
        else:
            payload = PAGE
        response = (
            f"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {len(payload)}\r\n"
            "Connection: close\r\nX-Hop: secret-hop\r\n\r\n"
        ).encode()
        for chunk in (response, payload):
            writer.write(chunk)
            self.log.bytes_sent += len(chunk)
            await writer.drain()

    async def _until_close(self, writer: asyncio.StreamWriter, size: int) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n"
        writer.write(head)
        self.log.bytes_sent += len(head)
        for chunk in pattern_chunks(size):
            writer.write(chunk)
            self.log.bytes_sent += len(chunk)
            await writer.drain()
        writer.close()  # the body ends with the connection
        await writer.wait_closed()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


PATTERN = bytes(range(256)) * 4096  # 1 MiB that is not all one byte: misordering shows


def pattern_chunks(size: int) -> Iterator[bytes]:
    """`size` bytes of PATTERN repeated, in chunks of at most 1 MiB."""
    whole, part = divmod(size, len(PATTERN))
    yield from [PATTERN] * whole
    if part:
        yield PATTERN[:part]


def pattern_digest(size: int) -> str:
    digest = hashlib.sha256()
    for chunk in pattern_chunks(size):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class StreamLog:
    """What a StreamServer did: bytes it wrote, and bytes it read after its command line."""

    written: int = 0
    received: int = 0
    received_digest: str = ""
    finished: int = 0  # connections handled to the end


class StreamServer(LoopbackServer):
    """A raw TCP peer for tunnels. The client's first line picks what it does:

    `SEND n\n`: send n PATTERN bytes, half-close, then read until EOF (counted);
    `SINK\n`: read until EOF, then answer `<count> <sha256>` and close;
    `RECV n\n`: read n bytes, then answer `<count> <sha256>` and close (no half-close needed);
    `DRIP n seconds\n`: send n single bytes, one every `seconds`, then close.
    """

    def __init__(self) -> None:
        super().__init__()
        self.log = StreamLog()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        command, *args = (await reader.readline()).decode().split()
        if command == "SEND":
            await self._send(writer, int(args[0]))
            await self._sink(reader)
        elif command in ("SINK", "RECV"):
            await self._sink(reader, int(args[0]) if args else None)
            writer.write(f"{self.log.received} {self.log.received_digest}".encode())
            await writer.drain()
        elif command == "DRIP":
            for _ in range(int(args[0])):
                await asyncio.sleep(float(args[1]))
                writer.write(b".")
                await writer.drain()
        writer.close()  # flushed first: the connection task aborts whatever is left after us
        await writer.wait_closed()
        self.log.finished += 1

    async def _send(self, writer: asyncio.StreamWriter, size: int) -> None:
        for chunk in pattern_chunks(size):
            writer.write(chunk)
            await writer.drain()
            self.log.written += len(chunk)
        writer.write_eof()

    async def _sink(self, reader: asyncio.StreamReader, size: int | None = None) -> None:
        """Read until EOF, or until `size` bytes."""
        digest = hashlib.sha256()
        while size is None or self.log.received < size:
            wanted = 1024 * 1024 if size is None else min(1024 * 1024, size - self.log.received)
            if not (data := await reader.read(wanted)):
                break
            digest.update(data)
            self.log.received += len(data)
        self.log.received_digest = digest.hexdigest()


class Socks5Server(LoopbackServer):
    """A SOCKS5 proxy with username/password auth that records each CONNECT's destination."""

    def __init__(self, username: str, password: str) -> None:
        super().__init__()
        self.username, self.password = username, password
        self.destinations: list[tuple[int, str, int]] = []  # (ATYP, host, port)
        self.auth_failures = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if 2 not in methods:
            writer.write(b"\x05\xff")
            return
        writer.write(b"\x05\x02")
        if not await self._authenticated(reader, writer):
            return
        host, port = await self._destination(reader)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + bytes(6))
            return
        writer.write(b"\x05\x00\x00\x01" + bytes(6))
        try:
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            up_writer.transport.abort()

    async def _authenticated(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        _version, ulen = await reader.readexactly(2)
        user = (await reader.readexactly(ulen)).decode()
        (plen,) = await reader.readexactly(1)
        password = (await reader.readexactly(plen)).decode()
        ok = (user, password) == (self.username, self.password)
        self.auth_failures += not ok
        writer.write(b"\x01\x00" if ok else b"\x01\x01")
        await writer.drain()
        return ok

    async def _destination(self, reader: asyncio.StreamReader) -> tuple[str, int]:
        _version, _cmd, _rsv, atyp = await reader.readexactly(4)
        if atyp == 3:
            (length,) = await reader.readexactly(1)
            host = (await reader.readexactly(length)).decode()
        else:
            raw = await reader.readexactly(4 if atyp == 1 else 16)
            host = str(ipaddress.ip_address(raw))
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        self.destinations.append((atyp, host, port))
        # The tests' names all live on loopback: resolve like the real upstream would.
        return ("127.0.0.1" if atyp == 3 else host), port


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def proxy_exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes to a proxy on 127.0.0.1:port; return everything it answered until EOF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read(-1)
    finally:
        writer.close()
        await writer.wait_closed()


async def get_via_tunnel(port: int, authority: str, path: str = "/") -> tuple[bytes, bytes]:
    """CONNECT through the proxy, then a plain GET inside the tunnel: (CONNECT answer, response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        async with asyncio.timeout(10):
            answer = await reader.readuntil(b"\r\n\r\n")
            if not answer.startswith(b"HTTP/1.1 200"):
                return answer + await reader.read(-1), b""
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            return answer, await reader.read(-1)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body
