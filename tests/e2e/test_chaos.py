"""Chaos: kill -9 of the server mid-create and mid-stop, of a browser, SIGTERM during a launch
slower than uvicorn's graceful window, a full data disk, a database locked past its busy
timeout. After each, once the server has restarted or swept: no session in an intermediate
status, every charge settled exactly once, no process and no session directory left.

Each test has its own server. A slow launch is a real Chromium behind a wrapper that sleeps
first, so "mid-create" is a wide window rather than a race. Budget: about 90 s in CI.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fleet_server import Server, base_env, free_port, wait_for
from invariants import ledger_problems, statuses

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/lib/chromium/chromium"
LAUNCH_DELAY_S = 8  # longer than uvicorn's 5 s graceful-shutdown window


@pytest.fixture
def slow_chromium() -> Iterator[str]:
    """A Chromium that takes LAUNCH_DELAY_S longer to start (the sleep is in its group).

    The sandbox runs it as an unprivileged uid and binds the executable's directory read-only,
    so the wrapper lives in a directory of its own that uid may enter (pytest's tmp_path is
    private to its owner), and outside /tmp, which the sandbox replaces with a private tmpfs."""
    directory = Path(tempfile.mkdtemp(prefix="bf-slow-chromium-", dir="/var/tmp"))
    try:
        directory.chmod(0o755)
        wrapper = directory / "slow-chromium"
        wrapper.write_text(f'#!/bin/sh\nsleep {LAUNCH_DELAY_S}\nexec {CHROMIUM} "$@"\n')
        wrapper.chmod(0o755)
        yield str(wrapper)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def db(server: Server) -> Path:
    return server.data_dir / "browserfleet.db"


def assert_settled(server: Server, *, running: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """The books balance; only the sessions in `running` have a browser and files."""
    wait_for(lambda: not ledger_problems(db(server)), timeout=20, what="settled books")
    assert ledger_problems(db(server)) == []
    wait_for(
        lambda: server.browser_sessions_running() <= running,
        timeout=20,
        what="no browser but those of running sessions",
    )
    sessions_dir = server.data_dir / "sessions"
    wait_for(
        lambda: {p.name for p in sessions_dir.iterdir()} <= running,
        timeout=20,
        what="no session dir but those of running sessions",
    )


def in_background(server: Server, method: str, path: str, body: Any) -> threading.Thread:
    """A request that may never get its answer (the server is about to die)."""

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError), server.http() as client:
            client.request(method, path, json=body)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread


def create_in_background(server: Server, **body: Any) -> threading.Thread:
    return in_background(server, "POST", "/browsers", body)


def status_of(server: Server, wanted: str) -> Callable[[], str | None]:
    def find() -> str | None:
        return next((i for i, s in statuses(db(server)).items() if s == wanted), None)

    return find


def test_kill9_mid_create_fails_and_refunds_the_session_at_the_next_start(
    make_server: Callable[..., Server], slow_chromium: str
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__CHROMIUM_PATH=slow_chromium)
    create_in_background(server, timeout=30)
    starting = wait_for(status_of(server, "starting"), timeout=10, what="a STARTING row")
    server.kill9()
    assert statuses(db(server))[starting] == "starting"  # caught mid-create
    server.start()
    assert_settled(server)
    assert statuses(db(server))[starting] == "failed"
    with server.http() as client:
        assert client.get("/billing/account").json()["activeSessionCount"] == 0


def test_kill9_mid_stop_finishes_the_stop_at_the_next_start(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    for _attempt in range(5):  # a stop is quick: catch one in STOPPING
        with server.http() as client:
            session_id = client.post("/browsers", json={"timeout": 30}).json()["id"]
        stopper = in_background(server, "PATCH", f"/browsers/{session_id}", {"action": "stop"})

        def stop_begun(sid: str = session_id) -> bool:
            return statuses(db(server))[sid] in ("stopping", "stopped")

        wait_for(stop_begun, timeout=10, interval=0.002, what="the stop to begin")
        if statuses(db(server))[session_id] == "stopping":
            server.kill9()
            break
        stopper.join()
    else:
        pytest.fail("never caught a stop in STOPPING")
    server.start()
    assert_settled(server)
    assert statuses(db(server))[session_id] == "stopped"


def test_kill9_of_a_browser_ends_its_session_and_leaves_nothing(
    make_server: Callable[..., Server],
) -> None:
    server = make_server()
    with server.http() as client:
        session_id = client.post("/browsers", json={"timeout": 30}).json()["id"]
        other = client.post("/browsers", json={"timeout": 30}).json()["id"]
        server.browser_main_process(session_id).send_signal(signal.SIGKILL)
        wait_for(
            lambda: client.get(f"/browsers/{session_id}").json()["status"] == "stopped",
            what="the crashed session to stop",
        )
        assert_settled(server, running={other})
        assert client.get(f"/browsers/{other}").json()["status"] == "active"
        client.patch(f"/browsers/{other}", json={"action": "stop"})
    assert_settled(server)


def test_sigterm_during_a_launch_longer_than_the_graceful_window_fails_it_cleanly(
    make_server: Callable[..., Server], slow_chromium: str
) -> None:
    server = make_server(BROWSERFLEET_BROWSER__CHROMIUM_PATH=slow_chromium)
    with server.http() as client:
        client.post("/browsers", json={"timeout": 30})  # one running: stopped at shutdown
    create_in_background(server, timeout=30)
    starting = wait_for(status_of(server, "starting"), timeout=10, what="a STARTING row")
    # uvicorn re-raises the signal once it has shut down gracefully
    assert server.stop(signal.SIGTERM, timeout=60) in (0, -signal.SIGTERM)
    assert ledger_problems(db(server)) == []  # settled by the shutdown itself, no restart
    assert statuses(db(server))[starting] == "failed"
    assert not server.processes()
    assert not list((server.data_dir / "sessions").iterdir())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB tmpfs of our own, unmounted whatever happens."""
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m,mode=0700", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test: {mounted.stderr}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def fill(disk: Path) -> Path:
    ballast = disk / "ballast"
    with open(ballast, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 20))
    return ballast


def test_a_full_data_disk_is_503_not_ready_and_settles_once_freed(
    small_disk: Path, suite_resources: Any
) -> None:
    data_dir = small_disk / f"{suite_resources.prefix}data"  # the leak check knows the prefix
    data_dir.mkdir()
    suite_resources.data_dirs.append(data_dir)
    server = Server(data_dir, free_port(), base_env())
    suite_resources.ports.add(server.port)
    server.start()
    try:
        _fill_the_disk_then_free_it(server, small_disk)
    finally:
        server.close()


def _fill_the_disk_then_free_it(server: Server, small_disk: Path) -> None:
    with server.http() as client:
        running = client.post("/browsers", json={"timeout": 30}).json()["id"]
        ballast = fill(small_disk)
        refused = client.post("/browsers", json={"timeout": 30})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"] == "5" and "detail" in refused.json()
        ready = httpx.get(f"{server.url}/readyz", timeout=10)
        assert ready.status_code == 503
        assert "data directory not writable" in ready.json()["detail"]
        stop = client.patch(f"/browsers/{running}", json={"action": "stop"})
        # Whether the stop's write still fits on the full disk is up to SQLite's free pages:
        # either the stop is done, or it is refused as retryable (503 + Retry-After).
        if stop.status_code != 200:
            assert stop.status_code == 503, stop.text
            assert stop.headers["retry-after"] == "5" and "detail" in stop.json()
        ballast.unlink()
        wait_for(
            lambda: httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200,
            what="ready again",
        )
        wait_for(
            lambda: (
                client.patch(f"/browsers/{running}", json={"action": "stop"}).status_code == 200
            ),
            what="the stop to succeed, retried as a client would",
        )
        assert client.get(f"/browsers/{running}").json()["status"] == "stopped"
    assert_settled(server)


def test_a_database_locked_past_the_busy_timeout_is_503_and_nothing_is_lost(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(BROWSERFLEET_DATABASE_BUSY_TIMEOUT_S="1")
    with server.http() as client:
        running = client.post("/browsers", json={"timeout": 30}).json()["id"]
        locker = sqlite3.connect(db(server), timeout=5, isolation_level=None)
        try:
            locker.execute("BEGIN IMMEDIATE")  # the write lock, held
            refused = client.post("/browsers", json={"timeout": 30})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "5"
            assert refused.json()["detail"].startswith("The database is unavailable")
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
            listed = client.get("/browsers")  # reads go on beside the writer (WAL)
            assert listed.status_code == 200 and listed.json()["totalItems"] == 1
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        assert client.post("/browsers", json={"timeout": 30}).status_code == 201
        for view in client.get("/browsers").json()["items"]:
            client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
        assert client.get(f"/browsers/{running}").json()["status"] == "stopped"
    assert_settled(server)
    assert not any(p.is_running() for p in server.processes() if isinstance(p, psutil.Process))
