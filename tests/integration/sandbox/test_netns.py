"""Sockets made inside another network namespace, for real (a namespace held by `unshare`)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator

import pytest

from browserfleet.cdp.dial import LOOPBACK
from browserfleet.sandbox.netns import Netns, NetnsDialer, NetnsGone, in_thread


@pytest.fixture
def namespace() -> Iterator[Netns]:
    """A fresh network namespace (only a down loopback), alive while `unshare` sleeps."""
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up; echo up; exec sleep 60"],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"up\n"
    holder.stdout.close()
    netns = Netns.of_pid(holder.pid)
    assert os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net")
    try:
        yield netns
    finally:
        netns.close()
        holder.kill()
        holder.wait()


def host_port_refuses(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((LOOPBACK, port)) != 0


async def test_a_listener_inside_is_reached_only_from_inside(namespace: Netns) -> None:
    listener = await namespace.listen(0)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    try:
        assert host_port_refuses(port), "the host's loopback is another namespace"
        dialed = await NetnsDialer(namespace, port).connect()
        listener.settimeout(5)
        accepted.append(listener.accept()[0])
        dialed.send(b"ping")
        assert accepted[0].recv(4) == b"ping"
        dialed.close()
    finally:
        listener.close()
        for sock in accepted:
            sock.close()


async def test_no_thread_of_the_server_ever_changes_namespace(namespace: Netns) -> None:
    """Dialing enters the namespace in a throwaway thread: neither the event loop's thread nor
    the default executor's (where getaddrinfo runs) ends up inside."""
    host = _thread_netns()
    listener = await namespace.listen(0)
    try:
        for _ in range(5):
            (await NetnsDialer(namespace, listener.getsockname()[1]).connect()).close()
        assert _thread_netns() == host
        executor_threads = await asyncio.gather(
            *(asyncio.to_thread(_thread_netns) for _ in range(8))
        )
        assert set(executor_threads) == {host}
        assert await in_thread(namespace.inode) != os.stat("/proc/self/ns/net").st_ino
    finally:
        listener.close()


def _thread_netns() -> str:
    return os.readlink("/proc/thread-self/ns/net")


async def test_a_released_namespace_cannot_be_entered(namespace: Netns) -> None:
    dialer = NetnsDialer(namespace, 9)
    namespace.close()
    with pytest.raises(NetnsGone):
        await dialer.connect()
    namespace.close()  # idempotent


async def test_a_refused_port_inside_is_an_oserror(namespace: Netns) -> None:
    listener = await namespace.listen(0)
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(ConnectionRefusedError):
        await NetnsDialer(namespace, port).connect()
