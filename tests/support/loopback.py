"""Loopback basics every test and benchmark shares: a free port, and the resolver rule that keeps
Chromium off the outside world.

Tests and benchmarks send traffic only to loopback. Chromium gets ``RESOLVER_RULES`` so that no
outside name resolves (a page that names one fails fast with ERR_NAME_NOT_RESOLVED instead of
reaching, or waiting for, a real network), while 127.0.0.1 (our page servers) stays reachable.
"""

from __future__ import annotations

import socket

# The rule alone (the value of Chromium's --host-resolver-rules switch) ...
HOST_RESOLVER_RULES = "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"
# ... and the switch as it goes into a launch spec's extra arguments.
RESOLVER_RULES = f"--host-resolver-rules={HOST_RESOLVER_RULES}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
