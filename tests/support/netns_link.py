"""A network namespace of the test's own, joined to the host's by one veth pair on a /30 of
its own: a "machine" the test can cut off (its link down) and put back. The namespace is
removed (and the pair with it) however the test ends.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

IP = "/usr/sbin/ip"
NSENTER = "/usr/bin/nsenter"


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True, slots=True)
class Link:
    namespace: str  # `ip netns` name of the far side
    host_ip: str  # the host's end, in the host's namespace
    far_ip: str  # the far end, inside the namespace
    host_dev: str

    def prefix(self) -> list[str]:
        """A command's prefix that runs it inside the namespace: its network only (`ip netns
        exec` would also give it a sysfs of its own, without the host's cgroup mounts)."""
        return [NSENTER, f"--net=/run/netns/{self.namespace}", "--"]

    def cut(self) -> None:
        """The link down, from the host's side: nothing passes either way."""
        _ip("link", "set", self.host_dev, "down")

    def restore(self) -> None:
        _ip("link", "set", self.host_dev, "up")


@contextlib.contextmanager
def linked_namespace(subnet: int) -> Iterator[Link]:
    """Namespace `bf-<pid>-<subnet>` with the far end of 10.231.<subnet>.0/30 (.2), the host
    keeping .1; `subnet` keeps concurrent uses apart."""
    tag = f"{os.getpid() % 100000}-{subnet}"
    namespace, host_dev, far_dev = f"bf-{tag}", f"bfh{tag}", f"bfn{tag}"
    link = Link(namespace, f"10.231.{subnet}.1", f"10.231.{subnet}.2", host_dev)
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", host_dev, "type", "veth", "peer", "name", far_dev)
        _ip("link", "set", far_dev, "netns", namespace)
        _ip("addr", "add", f"{link.host_ip}/30", "dev", host_dev)
        _ip("link", "set", host_dev, "up")
        inside = ["netns", "exec", namespace, IP]
        _ip(*inside, "addr", "add", f"{link.far_ip}/30", "dev", far_dev)
        _ip(*inside, "link", "set", far_dev, "up")
        _ip(*inside, "link", "set", "lo", "up")
        yield link
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", host_dev)  # its peer goes with it
        _ip("netns", "del", namespace)
