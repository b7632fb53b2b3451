"""Why the egress proxy could not carry a request; each fact maps to one answer for the browser.

Messages name hosts and ports only: never a credential, so they are safe to log and to show.
"""

from __future__ import annotations


class EgressError(Exception):
    """Base: `status` is the HTTP status the browser is answered with."""

    status = 502


class EgressBlocked(EgressError):
    """The guard refused a direct connection to a non-public address."""

    status = 403

    def __init__(self, host: str, address: object | None, reason: str) -> None:
        self.host, self.address, self.reason = host, address, reason
        where = host if address is None or str(address) == host else f"{host} ({address})"
        super().__init__(f"{where} is not reachable: {reason}")


class TargetUnreachable(EgressError):
    """A direct route could not resolve or connect to the target."""


class UpstreamUnreachable(EgressError):
    """The upstream proxy refused, reset or did not accept our connection."""


class UpstreamAuthRefused(EgressError):
    """The upstream proxy rejected the credentials (HTTP 407, SOCKS5 auth failure)."""

    status = 407


class UpstreamRefusedTarget(EgressError):
    """The upstream proxy answered but would not (or could not) reach the target."""


class ConnectTimeout(EgressError):
    """Connecting (directly or through the upstream) took longer than the connect timeout."""

    status = 504
