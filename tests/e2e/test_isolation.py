"""`serve` and the sandbox: it refuses to start when sandboxes cannot be built, naming what is
missing; `--isolation none` runs without them, warning at start and in /readyz."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fleet_server import BIN, Server, base_env, free_port

pytestmark = pytest.mark.e2e
READY = 60


def refused_start(suite_resources: Any, **env: str) -> subprocess.CompletedProcess[str]:
    data_dir: Path = suite_resources.new_data_dir()
    port = free_port()
    done = subprocess.run(
        [str(BIN), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=base_env(**env),
        capture_output=True,
        text=True,
        timeout=READY,
        check=False,
    )
    with httpx.Client() as client:
        try:
            client.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            listening = True
        except httpx.TransportError:
            listening = False
    assert not listening
    assert not (data_dir / "sessions").exists() or not any((data_dir / "sessions").iterdir())
    return done


def test_serve_refuses_to_start_without_bubblewrap_and_says_so(suite_resources: Any) -> None:
    done = refused_start(suite_resources, BROWSERFLEET_SANDBOX__BWRAP_PATH="/nonexistent/bwrap")
    assert done.returncode == 2
    assert "error: cannot build browser sandboxes:" in done.stderr
    assert "mounts: /nonexistent/bwrap not found -> apt install bubblewrap" in done.stderr
    assert "--isolation none" in done.stderr


def test_serve_refuses_to_start_when_the_sandbox_uid_cannot_reach_its_files(
    suite_resources: Any, tmp_path: Path
) -> None:
    closed = tmp_path / "closed" / "run"  # under a 0700 directory: no other uid gets in
    done = refused_start(suite_resources, BROWSERFLEET_SANDBOX__RUN_DIR=str(closed))
    assert done.returncode == 2
    assert "mounts: bubblewrap failed" in done.stderr
    assert "Permission denied" in done.stderr


def test_readyz_says_the_browsers_are_sandboxed(server: Server) -> None:
    assert httpx.get(f"{server.url}/readyz", timeout=10).json() == {
        "status": "ready",
        "problems": [],
        "isolation": "sandbox",
        "warnings": [],
    }


def test_isolation_none_warns_at_start_and_in_readyz_and_runs_unsandboxed_browsers(
    make_server: Callable[..., Server],
) -> None:
    server = make_server(BROWSERFLEET_SANDBOX__ISOLATION="none")
    assert "WARNING: isolation is 'none'" in server.log_path.read_text()
    ready = httpx.get(f"{server.url}/readyz", timeout=10)
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["isolation"]) == ("ready", "none")
    assert body["warnings"] and "without an OS sandbox" in body["warnings"][0]
    with server.http() as client:
        view = client.post("/browsers", json={"timeout": 5}).json()
        try:
            browsers = [
                p
                for p in psutil.process_iter(["cmdline", "uids"])
                if any(str(server.data_dir) in a for a in p.info["cmdline"] or [])
            ]
            assert browsers and all(p.info["uids"].real == os.getuid() for p in browsers)
        finally:
            client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
