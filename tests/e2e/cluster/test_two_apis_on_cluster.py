"""Two API processes, each a Ray driver of its own, on one PostgreSQL and one cluster: a storm
of parallel creates split between them never takes a project past its limit, however the
creates race for the cluster's slots, and a session is stopped through either of them.

Its own cluster (neither API keeps a warm pool, so every create races for a slot): a head
without slots on 127.0.0.15 and one worker with two slots on .16.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_server import TOO_MANY, Server, base_env, free_port, start_server, wait_for
from postgres_cluster import PostgresCluster
from ray_cluster import Nodes, cluster_env, start_nodes, stop_processes

from browserfleet.cluster.nodes import read_nodes

pytestmark = pytest.mark.e2e

HEAD_IP = "127.0.0.15"
GCS_PORT = 6386
WORKER = "127.0.0.16"
SLOTS = 2
STORM = 12


@pytest.fixture(scope="module")
def nodes(suite_resources: Any) -> Iterator[Nodes]:
    temp_dir: Path = suite_resources.new_data_dir()
    cluster = start_nodes(
        temp_dir, HEAD_IP, GCS_PORT, {WORKER: (SLOTS, suite_resources.new_data_dir())}
    )
    try:
        yield cluster
    finally:
        stop_processes(temp_dir)


@pytest.fixture(scope="module")
def apis(
    nodes: Nodes, postgres: PostgresCluster, suite_resources: Any
) -> Iterator[tuple[Server, Server]]:
    database = asyncio.run(postgres.create_database())
    secret = secrets.token_hex(32)
    env = cluster_env(nodes, postgres.url(database), BROWSERFLEET_SERVER_SECRET=secret)
    first = start_server(suite_resources, **env)
    second: Server | None = None
    try:
        # The second finds the database set up: no key of its own; it is given the first's.
        second = Server(suite_resources.new_data_dir(), free_port(), base_env(**env))
        suite_resources.ports.add(second.port)
        (second.data_dir / "initial-api-key").write_text(first.key + "\n")
        second.start()
        yield first, second
    finally:
        if second is not None:
            second.close()
        first.close()
        asyncio.run(postgres.drop_database(database))


def free_slots(nodes: Nodes) -> int:
    return sum(n.slots_free for n in read_nodes(nodes.address) if n.alive and n.slots_total)


async def storm(apis: tuple[Server, Server], key: str) -> list[tuple[Server, httpx.Response]]:
    """STORM creates at once, every other one to each API process."""
    headers = {"X-Browser-Use-API-Key": key}
    async with (
        httpx.AsyncClient(base_url=apis[0].api(), headers=headers, timeout=120) as one,
        httpx.AsyncClient(base_url=apis[1].api(), headers=headers, timeout=120) as two,
    ):
        clients = [(apis[0], one), (apis[1], two)]
        answers = await asyncio.gather(
            *(clients[n % 2][1].post("/browsers", json={"timeout": 3}) for n in range(STORM))
        )
    return [(clients[n % 2][0], answer) for n, answer in enumerate(answers)]


@pytest.mark.parametrize("limit", [1, SLOTS])
def test_a_create_storm_through_two_api_processes_keeps_the_projects_limit(
    apis: tuple[Server, Server], nodes: Nodes, limit: int
) -> None:
    first, second = apis
    wait_for(lambda: free_slots(nodes) == SLOTS, 60, what="every slot free")
    _, key = first.new_project(concurrent_limit=limit)
    answers = asyncio.run(storm(apis, key))
    statuses = Counter(answer.status_code for _, answer in answers)
    assert statuses == {201: limit, 429: STORM - limit}, [
        (a.status_code, a.text[:80]) for _, a in answers
    ]
    for _, refused in answers:
        if refused.status_code == 429:
            assert refused.json() == {"detail": TOO_MANY}
    created = [(server, answer.json()["id"]) for server, answer in answers if answer.is_success]
    # One browser per session, nothing else (as soon as the head's view of the slots is new).
    wait_for(lambda: free_slots(nodes) == SLOTS - limit, 10, what="a slot per session")
    with first.http(key) as client:
        assert client.get("/billing/account").json()["activeSessionCount"] == limit

    # Each stopped through the API process that did not create it.
    for server, session_id in created:
        other = second if server is first else first
        with other.http(key) as client:
            stopped = client.patch(f"/browsers/{session_id}", json={"action": "stop"})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["status"] == "stopped"
    wait_for(lambda: free_slots(nodes) == SLOTS, 30, what="the slots back")
    with second.http(key) as client:
        account = client.get("/billing/account").json()
        assert account["activeSessionCount"] == 0
        again = client.post("/browsers", json={"timeout": 1})
        assert again.status_code == 201, again.text
        assert client.patch(f"/browsers/{again.json()['id']}", json={"action": "stop"}).is_success
