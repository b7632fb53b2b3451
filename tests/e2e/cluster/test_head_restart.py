"""The head's failure, with Ray's GCS fault tolerance (the GCS backed by Redis): the head
killed (its GCS, its raylet, every helper of either) and started again at the same address.
A session's browser on a worker runs on throughout and is driven through the gateway after,
the restarted head places new browsers, and stops end them.

Its own cluster and Redis: the head on 127.0.0.18, a worker of two slots on .19, and a node
without slots on .20 for the API process (as in production, never the head's: a driver whose
node goes down goes down with it).
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from fleet_server import Server, free_port, wait_for
from pages import PageServer
from postgres_cluster import PostgresCluster
from ray_cluster import (
    Nodes,
    cluster_api,
    head_processes,
    start_head,
    start_nodes,
    stop_processes,
)

from browserfleet.cluster.nodes import read_nodes
from browserfleet.sandbox.reach import browser_pid, processes

pytestmark = pytest.mark.e2e

HEAD_IP = "127.0.0.18"
GCS_PORT = 6392
WORKER = "127.0.0.19"
API_NODE = "127.0.0.20"
SLOTS = 2
REDIS = "/usr/bin/redis-server"


@pytest.fixture(scope="module")
def redis(suite_resources: Any) -> Iterator[str]:
    """A Redis of the test's own, on the head's address: where the GCS keeps its state."""
    port = free_port()
    suite_resources.ports.add(port)
    data_dir: Path = suite_resources.new_data_dir()
    argv = [REDIS, "--bind", HEAD_IP, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(
        [*argv, "--dir", str(data_dir), "--protected-mode", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answers() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((HEAD_IP, port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
            return False

        wait_for(answers, 20, what="redis to answer")
        yield f"{HEAD_IP}:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def head_env(redis: str) -> dict[str, str]:
    return {
        "RAY_REDIS_ADDRESS": redis,
        "RAY_external_storage_namespace": f"browserfleet-{secrets.token_hex(4)}",
    }


@pytest.fixture(scope="module")
def nodes(suite_resources: Any, head_env: dict[str, str]) -> Iterator[Nodes]:
    temp_dir: Path = suite_resources.new_data_dir()
    workers = {
        WORKER: (SLOTS, suite_resources.new_data_dir()),
        API_NODE: (0, suite_resources.new_data_dir()),
    }
    cluster = start_nodes(temp_dir, HEAD_IP, GCS_PORT, workers, head_env=head_env)
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
        BROWSERFLEET_CLUSTER__NODE_IP=API_NODE,
        BROWSERFLEET_CLUSTER__PLACEMENT_TIMEOUT_S="30",
    ) as server:
        yield server


def free_slots(nodes: Nodes) -> int | None:
    """The cluster's free slots as the head sees them (None while it does not answer)."""
    try:
        listed = read_nodes(nodes.address)
    except Exception:
        return None
    return sum(n.slots_free for n in listed if n.alive and n.slots_total)


def create(server: Server) -> str:
    with server.http() as client:
        answer = client.post("/browsers", json={"timeout": 5})
    assert answer.status_code == 201, f"{answer.text}\n{server.log_tail(40)}"
    return str(answer.json()["id"])


def read(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        return dict(client.get(f"/browsers/{session_id}").json())


def test_a_head_restarted_from_redis_keeps_its_cluster_and_the_sessions_on_it(
    api: Server, nodes: Nodes, head_env: dict[str, str], playwright: Any
) -> None:
    wait_for(lambda: free_slots(nodes) == SLOTS, 60, what="the worker's slots")
    first = create(api)
    uid = (nodes.worker_dirs[WORKER] / "sessions" / first).stat().st_uid
    assert browser_pid(uid) is not None

    head = head_processes(nodes)
    assert any(p.name() == "gcs_server" for p in head)
    for proc in head:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(head, timeout=15)
    assert free_slots(nodes) is None  # no head
    # `ray start --head` refuses an address its temp dir names while any process on this
    # machine names it (every worker here does): a head restarted on its own machine, as in
    # production, finds no such file.
    (nodes.temp_dir / "ray_current_cluster").unlink()
    start_head(nodes, head_env)
    # The worker finds the new head; its browser ran on throughout.
    wait_for(lambda: free_slots(nodes) == SLOTS - 1, 90, what="the worker back with the head")
    assert browser_pid(uid) is not None
    assert read(api, first)["status"] == "active"
    with PageServer() as pages:
        browser = playwright.chromium.connect_over_cdp(read(api, first)["cdpUrl"], timeout=20_000)
        try:
            context = browser.contexts[0]
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(pages.url("/"))
            assert page.inner_text("#greeting") == "Hello from loopback"
        finally:
            browser.close()

    second = create(api)  # placed by the restarted head
    assert free_slots(nodes) is not None
    for session_id in (first, second):
        with api.http() as client:
            assert client.patch(f"/browsers/{session_id}", json={"action": "stop"}).is_success
    wait_for(lambda: not processes(uid), 20, what="the first browser to go")
    wait_for(lambda: free_slots(nodes) == SLOTS, 30, what="both slots back")
