"""The few reads of the cluster's state Ray offers without its dashboard (ray.util.state needs
the dashboard): straight from the GCS, blocking, so callers on an event loop run them in a
thread. Pinned to ray 2.60: `ray._private.state` is not a public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ray
from ray._private import state

SLOT = "browser_slots"  # the custom resource a node offers one of per browser it may run


def node_ip() -> str:
    """This process's node's address (in an actor: its node's)."""
    return str(ray.util.get_node_ip_address())


def node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def free_slots_per_node() -> dict[str, int]:
    """Browser slots free right now on each alive node that offers any (node id -> count)."""
    alive = {node["NodeID"] for node in ray.nodes() if node.get("Alive")}
    total: Mapping[str, Mapping[str, Any]] = state.total_resources_per_node()
    # A node none of whose slots is free may leave the resource out of its available ones.
    available: Mapping[str, Mapping[str, Any]] = state.available_resources_per_node()
    return {
        node_id: int(available.get(node_id, {}).get(SLOT, 0))
        for node_id, resources in total.items()
        if node_id in alive and resources.get(SLOT, 0) > 0
    }


def free_slots() -> int:
    return sum(free_slots_per_node().values())


def actor_states(class_name: str = "BrowserActor") -> dict[str, str]:
    """The state (PENDING_CREATION, ALIVE, DEAD, ...) of every actor of that class the GCS
    knows, by actor id."""
    table: Mapping[str, Mapping[str, Any]] = state.actors()
    return {
        actor_id: str(info.get("State"))
        for actor_id, info in table.items()
        if info.get("ActorClassName", "").endswith(class_name)
    }
