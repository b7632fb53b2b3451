"""Taking a socket from its asyncio/uvloop stream for the zero-copy relay, on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from browserfleet.proxy import zerocopy

pytestmark = pytest.mark.skipif(not zerocopy.AVAILABLE, reason="splice(2) is not available here")

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@pytest.fixture
async def connected() -> AsyncIterator[tuple[Streams, Streams]]:
    """(server side, client side) of one loopback TCP connection."""
    accepted: asyncio.Queue[Streams] = asyncio.Queue()
    server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), "127.0.0.1", 0)
    client = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    served = await accepted.get()
    try:
        yield served, client
    finally:
        for _, writer in (served, client):
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_queued_writes_are_flushed_and_the_reader_s_bytes_handed_over(
    connected: tuple[Streams, Streams],
) -> None:
    (reader, writer), (peer_reader, peer_writer) = connected
    peer_writer.write(b"read ahead by the StreamReader")
    await peer_writer.drain()
    await asyncio.sleep(0.05)
    queued = b"q" * 8_000_000  # more than the socket buffers take while the peer does not read
    writer.write(queued)
    assert writer.transport.get_write_buffer_size() > 0
    with contextlib.ExitStack() as resources:
        async with asyncio.TaskGroup() as group:
            detaching = group.create_task(zerocopy.detach(reader, writer, resources, 5.0))
            await asyncio.sleep(0.05)
            assert not detaching.done()  # waits for the queue to drain...
            assert await peer_reader.readexactly(len(queued)) == queued  # ...which the peer does
        own, held = detaching.result()
        assert held == b"read ahead by the StreamReader"
        assert writer.transport.is_closing()
        own.send(b"after the queue")  # the connection lives on in our socket alone
        assert await peer_reader.readexactly(15) == b"after the queue"


async def test_an_eof_seen_by_the_stream_is_seen_again_on_the_socket(
    connected: tuple[Streams, Streams],
) -> None:
    (reader, writer), (_, peer_writer) = connected
    peer_writer.write(b"last words")
    peer_writer.write_eof()
    await asyncio.sleep(0.05)
    with contextlib.ExitStack() as resources:
        own, held = await zerocopy.detach(reader, writer, resources, 5.0)
        assert held == b"last words"
        assert own.recv(100) == b""  # EOF, not "nothing yet"


async def test_a_lost_connection_cannot_be_detached(connected: tuple[Streams, Streams]) -> None:
    (reader, writer), _ = connected
    writer.transport.abort()
    await asyncio.sleep(0)
    with contextlib.ExitStack() as resources, pytest.raises(ConnectionResetError):
        await zerocopy.detach(reader, writer, resources, 5.0)
