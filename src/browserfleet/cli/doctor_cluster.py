"""`doctor`'s cluster check, when a cluster address is configured: the head answers, and at
least one live node has browser slots for the API to place browsers on.
"""

from __future__ import annotations

import asyncio

from browserfleet.cli.cluster import ClusterCommandFailed, read_cluster
from browserfleet.cli.findings import Finding, Status
from browserfleet.settings import ClusterSettings

CHECK = "cluster"
CLUSTER_TIMEOUT_S = 30.0  # Ray's client retries an unanswering head for ~15 s


async def check_cluster(cluster: ClusterSettings) -> Finding | None:
    """None without a cluster address (a single host: nothing to check)."""
    address = cluster.address
    if address is None:
        return None
    try:
        async with asyncio.timeout(CLUSTER_TIMEOUT_S):
            nodes = await asyncio.to_thread(read_cluster, cluster, address)
    except TimeoutError:
        fix = "check the head runs and this machine reaches it"
        return Finding(
            Status.FAIL, CHECK, f"{address}: no answer in {CLUSTER_TIMEOUT_S:.0f} s", fix
        )
    except ClusterCommandFailed as error:
        fix = (
            "start it (browserfleet cluster up --head IP --port PORT) "
            "or fix BROWSERFLEET_CLUSTER__ADDRESS"
        )
        return Finding(Status.FAIL, CHECK, str(error), fix)
    alive = [node for node in nodes if node.alive]
    slotted = [node for node in alive if node.slots_total > 0]
    free = sum(node.slots_free for node in slotted)
    total = sum(node.slots_total for node in slotted)
    detail = (
        f"{address}: {len(alive)} node(s) alive, {len(slotted)} with browser slots "
        f"({free} free of {total})"
    )
    if not slotted:
        fix = f"join a worker: browserfleet cluster up --join {address} --node-ip IP --slots N"
        return Finding(Status.FAIL, CHECK, detail, fix)
    return Finding(Status.OK, CHECK, detail)
