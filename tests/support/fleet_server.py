"""The server-process harness of the e2e tests and the benchmarks: one `browserfleet serve`
subprocess with its own data dir, port and log, its CLI, its clients and its sandbox processes.

Also what e2e tests share about the server they drive: the environment a test server gets
(`base_env`), polling with a deadline (`wait_for`), and checks of the API's time and money
strings. tests/e2e/conftest.py builds its fixtures on this module and re-exports its names.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import psutil
import pytest
from api_checks import cost6, money, parse_time
from browser_use_sdk.v3 import BrowserUse
from loopback import RESOLVER_RULES, free_port
from prometheus_client.parser import text_string_to_metric_families
from sandboxes import TEST_UIDS, uid_env

from browserfleet.sandbox.reach import browser_pid, processes
from browserfleet.sandbox.uids import UidRange

__all__ = [
    "BIN",
    "POOL_SIZE",
    "READY_TIMEOUT_S",
    "REPO",
    "RESOLVER_RULES",
    "TOO_MANY",
    "Janitor",
    "Server",
    "base_env",
    "cost6",
    "free_port",
    "money",
    "parse_time",
    "start_server",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin" / "browserfleet"
READY_TIMEOUT_S = 60.0
POOL_SIZE = 0
TOO_MANY = (
    "Too many concurrent active sessions. Please wait for one to finish, kill one, "
    "or upgrade your plan."
)

T = TypeVar("T")


def base_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERFLEET_")}
    env.update(
        {
            "BROWSERFLEET_BROWSER__EXTRA_ARGS": json.dumps([RESOLVER_RULES]),
            "BROWSERFLEET_LIMITS__DEFAULT_CONCURRENT_SESSIONS": "6",
            "BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS": "12",
            "BROWSERFLEET_REAPER_INTERVAL_S": "0.25",
            # Short, for takeovers within seconds; not shorter: a server whose event loop
            # stalls for two intervals on a loaded machine fences its own browsers.
            "BROWSERFLEET_HEARTBEAT_INTERVAL_S": "1.0",
            # The egress guard blocks loopback by default; our pages live there.
            "BROWSERFLEET_EGRESS__ALLOW_NETWORKS": json.dumps(["127.0.0.0/8"]),
            # No warm pool: a pooled browser's workdir is not sessions/<session id>, and the
            # tests find a session's processes by that path.
            "BROWSERFLEET_BROWSER__POOL_SIZE": str(POOL_SIZE),
            **uid_env(),
        }
    )
    env.update(overrides)
    return env


def wait_for(
    check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.2, what: str = ""
) -> T:
    """Poll until check() is truthy; return its value or fail with what we waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)


class Server:
    """One `browserfleet serve` subprocess with its own data dir, port and log."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        env: dict[str, str],
        *,
        command: Sequence[str] = (str(BIN),),
        log_path: Path | None = None,
        ready_timeout: float = READY_TIMEOUT_S,
        uids: UidRange = TEST_UIDS,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.env = env
        self.command = list(command)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = log_path or data_dir / "server.log"
        self.ready_timeout = ready_timeout
        self.uids = uids
        self.key = ""
        self.seen_uids: set[int] = set()

    # ---- process control -------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, version: str = "v3") -> str:
        return f"{self.url}/api/{version}"

    def start(self) -> Server:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--public-url",
                    self.url,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready()
        self.key = (self.data_dir / "initial-api-key").read_text().strip()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.close()
        raise RuntimeError(f"server not ready in {self.ready_timeout}s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server process (not its group) and return its exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group()
            raise

    def kill9(self) -> int:
        return self.stop(signal.SIGKILL, timeout=10)

    def restart(self) -> Server:
        if self.running():
            self.stop()
        return self.start()

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def close(self) -> int | None:
        """Stop the server if it runs; return its exit code (None if it never started, or if it
        would not stop and its group was killed)."""
        if self.proc is None:
            return None
        code: int | None = None
        if self.proc.poll() is None:
            # On timeout stop() kills the group; the leak check reports whatever is left.
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.stop(signal.SIGTERM, timeout=30)
        else:
            code = self.proc.returncode
        self.proc = None
        return code

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- CLI -------------------------------------------------------------
    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [*self.command, *args, "--data-dir", str(self.data_dir)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(
                f"browserfleet {' '.join(args)} exited {done.returncode}\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done.stdout

    def new_project(
        self, *, concurrent_limit: int | None = None, credits: str | None = None
    ) -> tuple[str, str]:
        """Create a uniquely named project and a key for it; return (name, key)."""
        name = f"e2e-{uuid.uuid4().hex[:10]}"
        args = ["projects", "create", name]
        if concurrent_limit is not None:
            args += ["--concurrent-limit", str(concurrent_limit)]
        if credits is not None:
            args += ["--credits", credits]
        self.cli(*args)
        key = self.cli("keys", "create", "--project", name).strip().splitlines()[-1].strip()
        return name, key

    # ---- clients ---------------------------------------------------------
    def http(self, key: str | None = None, version: str = "v3", **kw: Any) -> httpx.Client:
        headers = {} if key == "" else {"X-Browser-Use-API-Key": key or self.key}
        return httpx.Client(base_url=self.api(version), headers=headers, timeout=60, **kw)

    def sdk(self, key: str | None = None) -> BrowserUse:
        return BrowserUse(api_key=key or self.key, base_url=self.api("v3"), timeout=60)

    # ---- processes -------------------------------------------------------
    def session_uids(self) -> dict[str, int]:
        """Sandbox uid of each workdir (session or warm-pool browser) of this server."""
        uids = {}
        sessions = self.data_dir / "sessions"
        for workdir in sessions.iterdir() if sessions.is_dir() else []:
            try:
                uid = workdir.stat().st_uid
            except FileNotFoundError:
                continue
            if uid in self.uids:
                uids[workdir.name] = uid
        self.seen_uids.update(uids.values())
        return uids

    def processes(self) -> list[psutil.Process]:
        """Every process (bubblewrap, Chromium and helpers) of this server's sandboxes, those
        gone with their workdir included (every uid this test saw it use)."""
        found = []
        for uid in self.seen_uids | set(self.session_uids().values()):
            for pid in processes(uid):
                with contextlib.suppress(psutil.NoSuchProcess):
                    found.append(psutil.Process(pid))
        return found

    def browser_sessions_running(self) -> set[str]:
        """Workdir names (session ids, or warm-pool browsers) whose Chromium runs."""
        return {name for name, uid in self.session_uids().items() if browser_pid(uid) is not None}

    def browser_main_process(self, session_id: str) -> psutil.Process:
        uid = self.session_uids().get(session_id)
        pid = browser_pid(uid) if uid is not None else None
        if pid is None:
            raise AssertionError(f"no Chromium main process for session {session_id}")
        return psutil.Process(pid)


class Janitor:
    """Stops every session a test created, whatever happened in the test."""

    def __init__(self) -> None:
        self.created: list[tuple[Server, str, str]] = []

    def track(self, server: Server, key: str, session_id: str) -> str:
        self.created.append((server, key, str(session_id)))
        return str(session_id)

    def create(self, server: Server, key: str | None = None, **body: Any) -> dict[str, Any]:
        key = key or server.key
        with server.http(key) as client:
            resp = client.post("/browsers", json=body)
        assert resp.status_code == 201, f"create {body} -> {resp.status_code} {resp.text}"
        view: dict[str, Any] = resp.json()
        self.track(server, key, view["id"])
        return view

    def stop_all(self) -> None:
        for server, key, session_id in self.created:
            if not server.running():
                continue
            try:
                with server.http(key) as client:
                    client.patch(f"/browsers/{session_id}", json={"action": "stop"})
            except httpx.HTTPError:
                pass


class Resources(Protocol):
    """Where a server's data dir comes from and where its port is registered: the suite's
    leak-checked resources (tests/conftest.py)."""

    ports: set[int]

    def new_data_dir(self) -> Path: ...


def start_server(suite_resources: Resources, **env: str) -> Server:
    server = Server(suite_resources.new_data_dir(), free_port(), base_env(**env))
    suite_resources.ports.add(server.port)
    return server.start()


def metric(server: Server, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def creates(server: Server, source: str) -> float:
    """Creates the server has answered from `source` ("pool" or "cold")."""
    return metric(server, "browserfleet_session_create_seconds_count", source=source)
