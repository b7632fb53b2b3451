"""proxy.py (PyPI) as a real authenticated HTTP upstream on loopback, for proxy and e2e tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def proxy_py(
    username: str, password: str, workdir: Path, *, log_level: str = "INFO"
) -> Iterator[tuple[int, Path]]:
    """proxy.py with --basic-auth; yields (its port, its log: requests show at INFO)."""
    port_file, log_path = workdir / "proxy.port", workdir / "proxy.log"
    args = [
        *(sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0"),
        *("--port-file", str(port_file), "--basic-auth", f"{username}:{password}"),
        *("--num-workers", "1", "--num-acceptors", "1", "--log-level", log_level),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield _wait_for_port(port_file, process), log_path
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_for_port(port_file: Path, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.py exited with {process.returncode}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text.isdigit():
            port = int(text)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                return port
        time.sleep(0.05)
    raise RuntimeError("proxy.py did not start listening")
