"""PostgreSQL going away under a running server: every request that needs it is the same 503
JSON with Retry-After as SQLite's locked database, nothing is lost, and the server recovers by
itself when the database is back. The test owns its PostgreSQL (the suite's is shared)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import running_api
from postgres_cluster import PostgresCluster, started_cluster

DETAIL = "The database is unavailable (busy, unreachable or out of space); retry shortly."


@pytest.fixture
def own_postgres(suite_resources: Any) -> Iterator[PostgresCluster]:
    cluster = started_cluster(suite_resources.new_data_dir())
    suite_resources.ports.add(cluster.port)
    try:
        yield cluster
    finally:
        cluster.remove()


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.json() == {"detail": DETAIL}
    assert resp.headers["retry-after"] == "5"


async def test_a_database_that_goes_away_is_503_with_retry_after_and_comes_back(
    own_postgres: PostgresCluster, tmp_path: Path
) -> None:
    database = await own_postgres.create_database()
    async with running_api(tmp_path, own_postgres.url(database)) as api:
        created = await api.call("POST", "/browsers", json={"timeout": 5})
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]

        await asyncio.to_thread(own_postgres.stop)
        _assert_unavailable(await api.call("POST", "/browsers", json={"timeout": 5}))
        _assert_unavailable(await api.call("GET", "/browsers"))
        _assert_unavailable(await api.call("GET", f"/browsers/{session_id}"))
        _assert_unavailable(
            await api.call("PATCH", f"/browsers/{session_id}", json={"action": "stop"})
        )
        assert len(api.launcher.running) == 1  # the refused create launched nothing

        await asyncio.to_thread(own_postgres.start)
        # The pool's dead connections are replaced (pre-ping): the first request succeeds.
        view = (await api.call("GET", f"/browsers/{session_id}")).json()
        assert view["status"] == "active"
        listed = (await api.call("GET", "/browsers")).json()
        assert listed["totalItems"] == 1  # the refused create left no row
        stopped = await api.call("PATCH", f"/browsers/{session_id}", json={"action": "stop"})
        assert stopped.json()["status"] == "stopped"
        account = (await api.call("GET", "/billing/account")).json()
        assert account["activeSessionCount"] == 0
