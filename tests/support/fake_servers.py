"""Run fake_server.py (the real app and uvicorn, the runtime fakes instead of Chromium) as a
child process: the fuzzing suite aims at one, the multi-process tests run several on one
database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SUPPORT = Path(__file__).resolve().parent
READY_TIMEOUT_S = 90.0  # generous: CI machines are shared; readiness is polled


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeServer:
    """One fake_server.py process: its data dir, port, log, and BROWSERFLEET_* settings."""

    def __init__(self, data_dir: Path, port: int, settings: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.port = port
        self.settings = settings
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> FakeServer:
        self.spawn()
        self.wait_ready()
        return self

    def spawn(self) -> None:
        """Start the process without waiting for it (start several, then wait_ready each)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERFLEET_")}
        env |= {"PYTHONPATH": str(SUPPORT), **self.settings}
        with open(self.data_dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    str(SUPPORT / "fake_server.py"),
                    str(self.data_dir),
                    str(self.port),
                    # Neighbours on this host tell a live server from a recycled pid by its
                    # command line naming browserfleet, as the real `browserfleet serve` does.
                    "browserfleet",
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"fake server exited {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake server not ready in {READY_TIMEOUT_S}s:\n{self.log()}")
            time.sleep(0.1)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (after SIGCONT, in case a test froze it) and wait; SIGKILL past 30 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)

    def log(self) -> str:
        try:
            return (self.data_dir / "server.log").read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def initial_key(self) -> str:
        return (self.data_dir / "initial-api-key").read_text().strip()

    def browsers_running(self) -> int:
        """This server's own count of the browsers it runs (its /metrics gauge)."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        for line in text.splitlines():
            if line.startswith("browserfleet_host_browsers_running "):
                return int(float(line.split()[1]))
        raise AssertionError("no browserfleet_host_browsers_running in /metrics")
