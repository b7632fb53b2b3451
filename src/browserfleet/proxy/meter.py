"""Byte counters of one egress proxy, counted on the browser-facing sockets.

Plain ints bumped on the event loop thread: cheap to update, safe to read at any time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ByteMeter:
    """What the browser sent to and received from its proxy, over every connection."""

    from_browser: int = 0  # request heads, bodies and tunnelled bytes the browser sent
    to_browser: int = 0  # responses, error pages and tunnelled bytes the browser received
    connections: int = 0
    blocked: int = 0  # requests refused by the egress guard

    @property
    def total(self) -> int:
        """Bytes in both directions: what `proxyUsedMb` reports (MB = 10^6 bytes)."""
        return self.from_browser + self.to_browser
