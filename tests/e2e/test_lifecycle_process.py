"""Process lifecycle: a browser killed from outside; the server stopped by SIGTERM or SIGKILL."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psutil
import pytest
from fleet_server import BIN, Janitor, Server, cost6, parse_time, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from browserfleet.sandbox.residue import find_residue

pytestmark = pytest.mark.e2e

ONE_MINUTE_COST = Decimal("0.000333")


def kill_browser_from_outside(server: Server, session_id: str) -> None:
    """SIGKILL the session's Chromium and everything in its process group."""
    main = server.browser_main_process(session_id)
    pgid = os.getpgid(main.pid)
    if pgid not in (os.getpgid(server.pid), os.getpgrp()):
        os.killpg(pgid, signal.SIGKILL)
        return
    # The browser shares the server's group: kill its tree only, never the server.
    for proc in [main, *main.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def assert_stopped_and_billed(view: dict[str, Any], *, not_after: datetime) -> None:
    assert view["status"] == "stopped", view
    finished = parse_time(view["finishedAt"])
    assert parse_time(view["startedAt"]) < finished <= not_after, view
    assert cost6(view["browserCost"]) == ONE_MINUTE_COST, view


def test_a_browser_killed_from_outside_ends_its_session_and_frees_its_slot(
    server: Server, janitor: Janitor, tag: str
) -> None:
    _, key = server.new_project(concurrent_limit=1)
    view = janitor.create(server, key, timeout=5, metadata={"suite": tag})
    kill_browser_from_outside(server, view["id"])
    killed_at = datetime.now(UTC)

    with server.http(key) as client:

        def stopped() -> dict[str, Any] | None:
            body = client.get(f"/browsers/{view['id']}").json()
            return body if body["status"] == "stopped" else None

        final = wait_for(stopped, 15, what="the dead browser's session to stop")
        assert_stopped_and_billed(final, not_after=killed_at + timedelta(seconds=15))
        assert parse_time(final["finishedAt"]) >= killed_at - timedelta(seconds=1)
        assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 404
        assert client.get("/billing/account").json()["activeSessionCount"] == 0
        again = client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert again.status_code == 201, again.text
        janitor.track(server, key, again.json()["id"])
        client.patch(f"/browsers/{again.json()['id']}", json={"action": "stop"})
    wait_for(
        lambda: view["id"] not in server.browser_sessions_running(),
        10,
        what="every process of the killed browser to be gone",
    )


def test_sigterm_stops_every_session_bills_it_and_leaves_no_process(
    make_server: Callable[..., Server],
) -> None:
    server: Server = make_server()
    views = []
    with server.http() as client:
        for _ in range(2):
            resp = client.post("/browsers", json={"timeout": 30})
            assert resp.status_code == 201, resp.text
            views.append(resp.json())
    ws_url = httpx.get(f"{views[0]['cdpUrl']}/json/version", timeout=10).json()[
        "webSocketDebuggerUrl"
    ]
    assert {v["id"] for v in views} <= server.browser_sessions_running()

    with connect(ws_url, open_timeout=10) as ws:
        sent_at = time.monotonic()
        term_at = datetime.now(UTC)
        exit_code = server.stop(signal.SIGTERM, timeout=20)
        # uvicorn re-raises the signal after a clean shutdown; both mean "exited on request".
        assert exit_code in (0, -signal.SIGTERM), server.log_tail()
        assert time.monotonic() - sent_at < 15
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    wait_for(lambda: not server.processes(), 5, what="every Chromium of the server to exit")
    assert not any(
        c.laddr.port == server.port
        for c in psutil.net_connections("inet")
        if c.status == psutil.CONN_LISTEN and c.laddr
    )

    restarted_at = datetime.now(UTC)
    server.start()
    with server.http() as client:
        for view in views:
            after = client.get(f"/browsers/{view['id']}").json()
            # stopped by the shutdown itself, not discovered dead at restart
            assert_stopped_and_billed(after, not_after=restarted_at)
            assert parse_time(after["finishedAt"]) >= term_at - timedelta(seconds=1)
        assert client.get("/billing/account").json()["activeSessionCount"] == 0
    assert not server.browser_sessions_running() & {v["id"] for v in views}


def last_heartbeat(server: Server) -> datetime:
    """The newest heartbeat any instance wrote to this server's database (UTC)."""
    with sqlite3.connect(f"file:{server.data_dir / 'browserfleet.db'}?mode=ro", uri=True) as db:
        (newest,) = db.execute("SELECT max(heartbeat_at) FROM instances").fetchone()
    return (
        datetime.fromisoformat(newest).replace(tzinfo=UTC)
        if newest
        else datetime.min.replace(tzinfo=UTC)
    )


def leftovers(server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "leftovers", "--data-dir", str(server.data_dir)],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_server_killed_with_sigkill_is_cleaned_up_and_billed_by_its_restart(
    make_server: Callable[..., Server], janitor: Janitor
) -> None:
    server: Server = make_server()
    views = []
    with server.http() as client:
        for _ in range(2):
            resp = client.post("/browsers", json={"timeout": 30})
            assert resp.status_code == 201, resp.text
            views.append(resp.json())
    browser_pids = [server.browser_main_process(v["id"]).pid for v in views]
    uids = set(server.session_uids().values())
    started = max(parse_time(v["startedAt"]) for v in views)
    wait_for(lambda: last_heartbeat(server) > started, what="a heartbeat after the creates")
    killed_at = datetime.now(UTC)
    server.kill9()
    # The sandboxes die with the server, before any restart; their mounts and cgroups wait.
    wait_for(
        lambda: not find_residue(uids).processes, 10, what="the sandboxes to die with the server"
    )
    assert not any(alive(pid) for pid in browser_pids)
    left = leftovers(server)
    assert left.returncode == 1 and "sandbox mount" in left.stdout, left.stdout

    server.start()  # same data dir, same port
    # The restart kills what is left and ends the adopted sessions; each end reads its
    # session's files (a profile, downloads), then removes them with their mount.
    wait_for(lambda: not find_residue(uids), 30, what="the restart to remove every mount, cgroup")
    assert leftovers(server).returncode == 0
    assert not server.browser_sessions_running() & {v["id"] for v in views}
    with server.http() as client:

        def all_stopped() -> list[dict[str, Any]] | None:
            got = [client.get(f"/browsers/{v['id']}").json() for v in views]
            return got if all(g["status"] == "stopped" for g in got) else None

        after = wait_for(all_stopped, 15, what="the restart to stop the orphaned sessions")
        for view in after:
            # Billed up to the dead server's last heartbeat, not up to the restart.
            assert_stopped_and_billed(view, not_after=killed_at)
            assert parse_time(view["finishedAt"]) >= killed_at - timedelta(seconds=3)
        for view in views:
            assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 404
        assert client.get("/billing/account").json()["activeSessionCount"] == 0

    # The restarted server works normally.
    fresh = janitor.create(server, timeout=1)
    assert httpx.get(f"{fresh['cdpUrl']}/json/version", timeout=10).status_code == 200
    with server.http() as client:
        client.patch(f"/browsers/{fresh['id']}", json={"action": "stop"})
