"""A saved profile's archive as the seed of a new browser: unpacked into its profile directory
before Chromium starts, its session cookies taken out for the browser to be given once it
answers. The same object seeds a browser on this host and, carried by value, one on a cluster
node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from browserfleet.profiles.state import take_session_cookies
from browserfleet.storage.archive import ArchiveLimits, unpack


@dataclass(slots=True)
class ArchiveSeed:
    """Call it with the new profile directory (the launcher does, in a worker thread)."""

    archive: Path  # on the host that unpacks it
    limits: ArchiveLimits
    # What the unpacked profile held of session cookies (Chromium keeps none on disk): set by
    # the call, restored through CDP once the browser answers.
    session_cookies: list[dict[str, object]] = field(default_factory=list)

    def __call__(self, dest: Path) -> None:
        unpack(self.archive, dest, limits=self.limits)
        self.session_cookies = take_session_cookies(dest)
