"""What a node builds for one browser from its own settings (its environment at `ray start`):
the launcher stack a single server would build, and the egress guard with the node's own
addresses. Nothing of it comes from the API process: no secret ever travels through Ray.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from browserfleet.browsers.egress import EgressedLauncher
from browserfleet.browsers.enclosure import Enclosures
from browserfleet.proxy import EgressGuard
from browserfleet.sandbox.runner import SandboxRunner
from browserfleet.settings import Settings


@dataclass(frozen=True, slots=True)
class NodeLauncher:
    launcher: EgressedLauncher
    enclosures: Enclosures  # never closed by an actor: its cgroup parents are the node's
    guard: EgressGuard
    sessions_dir: Path


async def node_launcher(settings: Settings) -> NodeLauncher:
    """The node's launcher for one browser (blocking parts in a thread). Raises
    CgroupUnavailable or OSError when its sandboxes cannot be prepared."""
    # The composition root's own builders, so a node runs browsers exactly as a single server
    # does; imported here because the composition root imports this package.
    from browserfleet.bootstrap import build_enclosures, egress_guard, real_launcher

    enclosures = await asyncio.to_thread(build_enclosures, settings)
    settings.sessions_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return NodeLauncher(
        real_launcher(settings, enclosures),
        enclosures,
        egress_guard(settings),
        settings.sessions_dir,
    )


def sweep_dead(node: NodeLauncher) -> None:
    """What browsers of dead actors left on this node (their worker killed, their raylet gone):
    their sandboxes' processes, mounts and cgroups, and their workdirs. A node has no database
    to say which workdirs are live: a live one's sandbox uid is locked by its actor. Blocking.
    (Without sandboxes, nothing is recorded: `leftovers` and a node restart are the remedy.)"""
    if isinstance(node.enclosures, SandboxRunner):
        node.enclosures.sweep(node.sessions_dir, frozenset(), remove_workdirs=True)
