"""Runs the Node CDP clients of tests/support/js (Puppeteer, chrome-remote-interface).

Tests that need them skip, saying why, when Node.js or the packages are missing (`make setup`
installs them with npm) — except where `BROWSERFLEET_TESTS_REQUIRE_NODE=1` (CI sets it: its
machine reaches the npm registry), where a missing package fails the test: a skip there would
pass the Puppeteer, chrome-remote-interface and botd tests off as coverage. Host names ending
in one of `loopback` resolve to 127.0.0.1 in the client's process (resolve_loopback.cjs), as a
wildcard DNS name would point them at the server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).resolve().parent / "js"
CLIENTS = JS_DIR / "clients.mjs"
PRELOAD = JS_DIR / "resolve_loopback.cjs"
PACKAGES = ("puppeteer-core", "chrome-remote-interface", "@fingerprintjs/botd")


def needs_node() -> None:
    """Skip (or, where Node is required, fail) unless node and every package are there."""
    missing = [p for p in PACKAGES if not (JS_DIR / "node_modules" / p).is_dir()]
    if shutil.which("node") is None or missing:
        why = (
            f"Node.js or {', '.join(missing) or 'node'} in {JS_DIR}/node_modules is missing: "
            "run `make setup` with npm"
        )
        if os.environ.get("BROWSERFLEET_TESTS_REQUIRE_NODE") == "1":
            pytest.fail(why)
        pytest.skip(why)


def loopback_env(*suffixes: str) -> dict[str, str]:
    """The environment of a Node process (a client, or Playwright's driver) in which names
    ending in `suffixes` resolve to 127.0.0.1."""
    options = f"{os.environ.get('NODE_OPTIONS', '')} --require {PRELOAD}".strip()
    return {"NODE_OPTIONS": options, "LOOPBACK_SUFFIXES": ",".join(suffixes)}


def run_client(mode: str, *args: str, loopback: tuple[str, ...] = (), timeout: float = 180) -> Any:
    """Run one mode of clients.mjs; its JSON answer, or fail with its stderr."""
    needs_node()
    env = {**os.environ, **(loopback_env(*loopback) if loopback else {})}
    done = subprocess.run(
        ["node", str(CLIENTS), mode, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=JS_DIR,
        env=env,
    )
    assert done.returncode == 0, f"{mode} exited {done.returncode}: {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
