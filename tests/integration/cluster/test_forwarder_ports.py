"""A node's DevTools forwarders listen only on the ports the operator opened for them
(BROWSERFLEET_CLUSTER__FORWARD_PORTS): each takes a free one, a port something else holds is
skipped, and a full range is a clear error, never a port outside it."""

from __future__ import annotations

import contextlib
import errno
import socket

import pytest
from loopback import free_port

from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.cluster.forward import DevtoolsForwarder


def _free_range(size: int) -> range:
    """`size` consecutive ports that are free now (bound, then released)."""
    for _ in range(50):
        first = free_port()
        ports = range(first, first + size)
        with contextlib.ExitStack() as held:
            try:
                for port in ports:
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return ports
    raise RuntimeError("no free range of ports")


async def test_forwarders_take_the_free_ports_of_their_range_and_no_other() -> None:
    ports = _free_range(3)
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", ports[1]))
    squatter.listen()
    dialer = LoopbackDialer(9)
    first = DevtoolsForwarder(dialer, "127.0.0.1", ports)
    second = DevtoolsForwarder(dialer, "127.0.0.1", ports)
    third = DevtoolsForwarder(dialer, "127.0.0.1", ports)
    try:
        await first.start()
        await second.start()
        assert {first.port, second.port} == {ports[0], ports[2]}
        with pytest.raises(OSError, match=f"no free forwarder port in {ports[0]}-{ports[2]}") as e:
            await third.start()
        assert e.value.errno == errno.EADDRINUSE
        freed = first.port
        await first.aclose()
        again = DevtoolsForwarder(dialer, "127.0.0.1", ports)
        try:
            assert await again.start() == freed  # a closed forwarder's port is free again
        finally:
            await again.aclose()
    finally:
        squatter.close()
        for forwarder in (first, second):
            await forwarder.aclose()
