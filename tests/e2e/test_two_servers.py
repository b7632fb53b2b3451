"""Two real `browserfleet serve` processes with real sandboxed Chromium on one PostgreSQL:
a server frozen past the orphan timeout is taken over, billed at its last heartbeat, and closes
its own browser when it wakes (fencing); a server killed with SIGKILL is settled by the other,
which also removes what its sandbox left. tests/integration/multiprocess covers the same rules
(and the create storm) with the runtime fakes."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_checks import parse_time
from fleet_server import Server, base_env, wait_for
from loopback import free_port
from postgres_cluster import PostgresCluster

from browserfleet.sandbox.residue import find_residue

pytestmark = pytest.mark.e2e


def _stopped(server: Server, session_id: str) -> dict[str, Any] | None:
    with server.http() as client:
        view: dict[str, Any] = client.get(f"/browsers/{session_id}").json()
    return view if view["status"] == "stopped" else None


def test_two_servers_on_postgresql_fence_a_frozen_one_and_settle_a_killed_one(
    postgres: PostgresCluster, make_server: Callable[..., Server], suite_resources: Any
) -> None:
    database = asyncio.run(postgres.create_database())
    b: Server | None = None
    try:
        env = {
            "BROWSERFLEET_DATABASE_URL": postgres.url(database),
            "BROWSERFLEET_SERVER_SECRET": secrets.token_hex(32),
        }
        a = make_server(**env)
        # The second finds the database set up: no key of its own; it is given A's.
        b = Server(suite_resources.new_data_dir(), free_port(), base_env(**env))
        suite_resources.ports.add(b.port)
        (b.data_dir / "initial-api-key").write_text(a.key + "\n")
        b.start()
        _frozen_server_is_fenced(a, b)
        _killed_server_is_settled(a, b)
    finally:
        if b is not None:
            b.close()
        asyncio.run(postgres.drop_database(database))


def _frozen_server_is_fenced(a: Server, b: Server) -> None:
    with a.http() as client:
        view = client.post("/browsers", json={"timeout": 5}).json()
    browser = a.browser_main_process(view["id"])
    assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 200
    frozen_at = datetime.now(UTC)
    a.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        settled = wait_for(lambda: _stopped(b, view["id"]), 20, what="B to take the session")
        # Billed up to A's last heartbeat (a second apart), not up to the takeover.
        finished = parse_time(settled["finishedAt"])
        assert frozen_at - timedelta(seconds=2) <= finished <= frozen_at
        assert browser.is_running(), "a frozen server's browser runs on: only A can fence it"
    finally:
        a.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    wait_for(lambda: not browser.is_running(), 20, what="A to close the browser taken from it")
    assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 404
    seen_on_a = _stopped(a, view["id"])
    assert seen_on_a is not None
    assert _without_urls(seen_on_a) == _without_urls(settled)  # A left B's settlement alone


def _without_urls(view: dict[str, Any]) -> dict[str, Any]:
    """Each server names itself in the URLs it hands out."""
    return {k: v for k, v in view.items() if k not in ("cdpUrl", "liveUrl", "viewOnlyLiveUrl")}


def _created_once_serving(server: Server) -> dict[str, Any]:
    """A create on a server just woken from a freeze: refused (503) until a heartbeat of
    its own reaches the database again, then served."""

    def create() -> dict[str, Any] | None:
        with server.http() as client:
            answer = client.post("/browsers", json={"timeout": 5})
        if answer.status_code == 503:
            assert "Retry-After" in answer.headers
            return None
        assert answer.status_code == 201, answer.text
        created: dict[str, Any] = answer.json()
        return created

    return wait_for(create, 10, what="the woken server to serve creates again")


def _killed_server_is_settled(a: Server, b: Server) -> None:
    view = _created_once_serving(a)
    uids = {uid for sid, uid in a.session_uids().items() if sid == view["id"]}
    assert uids
    killed_at = datetime.now(UTC)
    a.kill9()
    settled = wait_for(lambda: _stopped(b, view["id"]), 20, what="B to settle the dead server")
    finished = parse_time(settled["finishedAt"])
    # Billed up to A's last heartbeat; one that came before the session started
    # bills it from its start (a heartbeat is a second apart, the create is faster).
    assert parse_time(settled["startedAt"]) <= finished <= killed_at
    assert finished >= killed_at - timedelta(seconds=2)
    wait_for(lambda: not find_residue(uids), 20, what="B to remove the dead sandbox's mounts")
    with b.http() as client:
        assert client.get("/billing/account").json()["activeSessionCount"] == 0
