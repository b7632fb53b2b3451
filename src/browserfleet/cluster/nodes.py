"""The cluster's nodes and their browser slots, read from the head's GCS directly: no driver,
no job, no dashboard, and no Ray node needed on the machine that asks. Ray is imported only
when a cluster is read: the values here work without the cluster extra.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from browserfleet.cluster.node_commands import SLOT_RESOURCE
from browserfleet.settings import split_host_port

REACH_TIMEOUT_S = 2.0


class ClusterUnreachable(Exception):
    """No GCS answers at the address."""


@dataclass(frozen=True, slots=True)
class NodeSlots:
    node_id: str
    ip: str
    alive: bool
    slots_total: int
    slots_free: int  # 0 for a dead node


def reach(address: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Fail at once when nothing listens at address (Ray's client would retry for 15 s)."""
    host, port = split_host_port(address)
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as error:
        why = error.strerror or error
        raise ClusterUnreachable(f"no Ray head answers at {address} ({why})") from None


def read_nodes(address: str) -> list[NodeSlots]:
    """Every node the GCS knows (dead ones too, until it forgets them), head first by IP."""
    from ray._private.state import GlobalState
    from ray._raylet import GcsClientOptions  # type: ignore[attr-defined]  # not in its .pyi

    reach(address)
    # Ray's own way to read the node table without ray.init (services.wait_for_node);
    # these methods carry no annotations.
    state = GlobalState()  # type: ignore[no-untyped-call]
    options = GcsClientOptions.create(
        address, None, allow_cluster_id_nil=True, fetch_cluster_id_if_nil=False
    )
    state._initialize_global_state(options)
    try:
        table = state.node_table()  # type: ignore[no-untyped-call]
        free = state.available_resources_per_node()  # type: ignore[no-untyped-call]
    except Exception as error:  # RaySystemError, whatever the cause: Ray logs the cause
        raise ClusterUnreachable(
            f"the Ray head at {address} accepts connections but refused the query ({error}); "
            "if it uses token authentication, check BROWSERFLEET_CLUSTER__AUTH_TOKEN"
        ) from error
    finally:
        state.disconnect()  # type: ignore[no-untyped-call]
    nodes = [_node(entry, free) for entry in table]
    return sorted(nodes, key=lambda n: (not n.alive, n.ip, n.node_id))


def _node(entry: dict[str, object], free: dict[str, dict[str, float]]) -> NodeSlots:
    node_id = str(entry["NodeID"])
    alive = bool(entry["Alive"])
    resources = entry.get("Resources") or {}
    total = resources.get(SLOT_RESOURCE, 0) if isinstance(resources, dict) else 0
    available = free.get(node_id, {}).get(SLOT_RESOURCE, 0) if alive else 0
    return NodeSlots(node_id, str(entry["NodeManagerAddress"]), alive, int(total), int(available))
