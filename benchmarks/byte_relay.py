"""The floor of any relay in between: a process that only copies bytes, both ways, between a
client and a sandboxed browser's DevTools server. cdp_gateway measures it beside the gateway, so
the gateway's cost splits into what one more process on the path costs (wakeups, copies,
loopback) and what reading and judging every command adds.

Run by cdp_gateway (as root): python -m benchmarks.byte_relay WORKDIR. Listens on 127.0.0.1, an
ephemeral port printed on stdout; each connection is joined to a new socket dialed inside the
browser's network namespace. uvloop and protocol callbacks, as the gateway's relay: no task,
queue or parsing per message.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from pathlib import Path

import uvloop

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from browserfleet.browsers.devtools_endpoint import PORT_FILE
from browserfleet.cdp.dial import DevtoolsDialer, LoopbackDialer
from browserfleet.sandbox.reach import devtools_dialer, sandbox_uid


class Pipe(asyncio.Protocol):
    """One side: what it reads goes to its peer's transport, with flow control both ways."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: Pipe | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a TCP transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


async def serve(workdir: Path) -> None:
    loop = asyncio.get_running_loop()
    dialer: DevtoolsDialer
    if sandbox_uid(workdir) is not None:
        dialer = devtools_dialer(workdir)
    else:  # a browser without a sandbox listens on the host's loopback
        dialer = LoopbackDialer(int((workdir / "profile" / PORT_FILE).read_text().split()[0]))

    async def joined(client_sock: socket.socket) -> None:
        browser_sock = await dialer.connect()
        client, browser = Pipe(), Pipe()
        client.peer, browser.peer = browser, client
        await loop.connect_accepted_socket(lambda: browser, browser_sock)
        await loop.connect_accepted_socket(lambda: client, client_sock)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    print(listener.getsockname()[1], flush=True)
    try:
        async with asyncio.TaskGroup() as group:
            while True:
                accepted, _ = await loop.sock_accept(listener)
                accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                group.create_task(joined(accepted))
    finally:
        listener.close()
        if hasattr(dialer, "close"):
            dialer.close()


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m benchmarks.byte_relay WORKDIR")
    uvloop.run(serve(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
