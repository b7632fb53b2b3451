"""What crosses between the API process and a browser's actor: plain frozen values, no Ray.

Each is pickled by Ray on its way; none carries a credential of the server (the forwarder's
token is the one secret, made on the node for the API process alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from browserfleet.browsers.files import BrowserFiles
from browserfleet.storage.archive import ArchiveLimits


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """Where an actor runs, and which code it runs."""

    node_id: str
    ip: str
    version: str


@dataclass(frozen=True, slots=True)
class Launched:
    """A browser an actor started on its node, and how to reach its DevTools from outside."""

    pid: int  # on the node: the process the actor spawned (bubblewrap, or Chromium itself)
    devtools_port: int  # the browser's own port, as its Host header must name it
    forward_host: str  # the node's address its DevTools forwarder listens on
    forward_port: int
    forward_token: bytes = field(repr=False)  # the forwarder's preface secret: never logged
    workdir: Path  # on the node: only named and stored, never opened by the API process
    files: BrowserFiles  # host_* are the node's paths; the browser's own are what CDP names
    # A seeded browser's session cookies, taken out of its profile for CDP to restore.
    session_cookies: tuple[dict[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class ProfileArchive:
    """A saved profile's archive, by value: what a node unpacks into a new browser's profile
    (nodes never reach the API's blob store), or what it packed of a browser's state."""

    data: bytes = field(repr=False)
    limits: ArchiveLimits
