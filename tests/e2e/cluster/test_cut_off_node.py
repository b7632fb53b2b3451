"""A browser node cut off from the cluster, and so from its API process: Ray cannot end what
runs on it, but each browser's lease does. The node's actor ends its browser (sandbox and all)
once no renewal came for the lease's TTL, while the node is still cut off; the API process
stops and bills the session.

The node is a "machine" of the test's own: a network namespace joined to the host by one veth
pair (10.231.17.0/30); the head and the API process are on the host's end, the worker inside.
Cutting it off is that link going down.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fleet_server import Server, wait_for
from netns_link import Link, linked_namespace
from postgres_cluster import PostgresCluster
from ray_cluster import Nodes, cluster_api, start_nodes, stop_processes

from browserfleet.cluster.nodes import read_nodes
from browserfleet.sandbox.reach import browser_pid, processes

pytestmark = pytest.mark.e2e

SUBNET = 17
GCS_PORT = 6388
LEASE_TTL_S = 3.0


@pytest.fixture(scope="module")
def link() -> Iterator[Link]:
    with linked_namespace(SUBNET) as made:
        yield made


@pytest.fixture(scope="module")
def nodes(link: Link, suite_resources: Any) -> Iterator[Nodes]:
    temp_dir: Path = suite_resources.new_data_dir()
    workers = {link.far_ip: (1, suite_resources.new_data_dir())}
    cluster = start_nodes(temp_dir, link.host_ip, GCS_PORT, workers, link.prefix())
    try:
        yield cluster
    finally:
        stop_processes(temp_dir)


@pytest.fixture(scope="module")
def api(nodes: Nodes, postgres: PostgresCluster, suite_resources: Any) -> Iterator[Server]:
    with cluster_api(
        suite_resources,
        postgres,
        nodes,
        BROWSERFLEET_CLUSTER__LEASE_TTL_S=str(LEASE_TTL_S),
        BROWSERFLEET_CLUSTER__LEASE_RENEW_S="0.5",
    ) as server:
        yield server


def read(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        return dict(client.get(f"/browsers/{session_id}").json())


def sandbox_uid(nodes: Nodes, session_id: str) -> int:
    (data_dir,) = nodes.worker_dirs.values()
    return (data_dir / "sessions" / session_id).stat().st_uid


def test_a_node_cut_off_ends_its_own_browsers_when_their_leases_run_out(
    api: Server, nodes: Nodes, link: Link
) -> None:
    wait_for(
        lambda: any(n.slots_free for n in read_nodes(nodes.address) if n.alive),
        60,
        what="the node's free slot",
    )
    with api.http() as client:
        created = client.post("/browsers", json={"timeout": 5})
    assert created.status_code == 201, f"{created.text}\n{api.log_tail(30)}"
    session_id = created.json()["id"]
    uid = sandbox_uid(nodes, session_id)
    assert browser_pid(uid) is not None

    link.cut()
    cut_at = time.monotonic()
    try:
        # The node ends the browser itself, everything of its sandbox, while still cut off.
        wait_for(lambda: not processes(uid), 15, what="the cut-off node to end its browser")
        ended_after = time.monotonic() - cut_at
        # Its API process has counted it lost (its renewals failed as long): stopped, billed.
        session = wait_for(
            lambda: (v := read(api, session_id))["status"] == "stopped" and v,
            10,
            what="the session stopped",
        )
        assert session["finishedAt"]
        assert Decimal(session["browserCost"]) == Decimal("0.000333")  # its one minute
    finally:
        link.restore()
    # No sooner than its lease allowed: a lease of a live link is never cut short.
    assert ended_after >= LEASE_TTL_S - 1.0, ended_after
