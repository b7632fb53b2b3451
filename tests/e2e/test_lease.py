"""A server cut off from its database (PostgreSQL frozen) loses its lease: it ends its own
browsers before any other server could judge it dead, and settles their sessions as of its
last heartbeat once the database answers again; then it serves on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psutil
import pytest
from api_checks import parse_time
from fleet_server import Server, wait_for
from postgres_cluster import started_cluster

pytestmark = pytest.mark.e2e

HEARTBEAT_S = 0.5


def _stopped(server: Server, session_id: str) -> dict[str, Any] | None:
    with server.http() as client:
        view: dict[str, Any] = client.get(f"/browsers/{session_id}").json()
    return view if view["status"] == "stopped" else None


def test_a_server_cut_off_from_postgresql_ends_its_browsers_and_settles_them_after(
    make_server: Callable[..., Server], suite_resources: Any
) -> None:
    # A PostgreSQL of its own: freezing it must not stall any other test's database.
    cluster = started_cluster(suite_resources.new_data_dir())
    suite_resources.ports.add(cluster.port)
    try:
        database = asyncio.run(cluster.create_database())
        server = make_server(
            BROWSERFLEET_DATABASE_URL=cluster.url(database),
            BROWSERFLEET_HEARTBEAT_INTERVAL_S=str(HEARTBEAT_S),
        )
        with server.http() as client:
            view = client.post("/browsers", json={"timeout": 5}).json()
        browser = server.browser_main_process(view["id"])
        version = f"{view['cdpUrl']}/json/version"
        assert httpx.get(version, timeout=10).status_code == 200

        assert cluster.proc is not None
        postmaster = psutil.Process(cluster.proc.pid)
        frozen = [postmaster, *postmaster.children(recursive=True)]
        cut_at = datetime.now(UTC)
        for process in frozen:
            process.suspend()
        try:
            wait_for(lambda: not browser.is_running(), 20, what="the server to end its browser")
            assert httpx.get(version, timeout=10).status_code == 404
            assert _still_serving(server)
        finally:
            for process in frozen:
                process.resume()

        settled = wait_for(lambda: _stopped(server, view["id"]), 30, what="the settlement")
        finished = parse_time(settled["finishedAt"])
        # Billed up to its last heartbeat before the cut (they are half a second apart).
        assert cut_at - timedelta(seconds=3) <= finished <= cut_at
        assert "no heartbeat reached the database" in server.log_tail(200)
        with server.http() as client:
            assert client.get("/billing/account").json()["activeSessionCount"] == 0
            # The lease holds again: the server serves on, and its new sessions run.
            again = client.post("/browsers", json={"timeout": 5})
            assert again.status_code == 201, again.text
            assert client.get(f"/browsers/{again.json()['id']}").json()["status"] == "active"
            stopped = client.patch(f"/browsers/{again.json()['id']}", json={"action": "stop"})
            assert stopped.json()["status"] == "stopped"
    finally:
        cluster.remove()


def _still_serving(server: Server) -> bool:
    """While the database is frozen the server has written nothing: it is still up, and its
    health check (no database) answers."""
    return httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
