"""Schemathesis over the served OpenAPI: every operation on all three mounts, zero 5xx, every
answer in its documented status, content type, headers and schema.

The server is a real uvicorn process running the real app with the runtime fakes, so the
fuzzer can create thousands of sessions. Budget: FUZZ_EXAMPLES examples per operation and
phase (about 30 s in CI); tests/e2e/test_api_fuzz.py runs a smaller pass with Chromium.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fuzzing import SUPPORT, run_schemathesis
from loopback import free_port

FUZZ_EXAMPLES = int(os.environ.get("BROWSERFLEET_FUZZ_EXAMPLES", "10"))


@pytest.fixture
def fake_server(suite_resources: Any, database_url: str) -> Iterator[tuple[str, str]]:
    data_dir: Path = suite_resources.new_data_dir()
    port = free_port()
    suite_resources.ports.add(port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERFLEET_")} | {
        "PYTHONPATH": str(SUPPORT),
        "BROWSERFLEET_DATABASE_URL": database_url,
    }
    with open(data_dir / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(SUPPORT / "fake_server.py"), str(data_dir), str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # a loaded machine starts it slowly
        while True:
            assert proc.poll() is None, (data_dir / "server.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the fake server did not become ready"
            time.sleep(0.1)
        yield url, (data_dir / "initial-api-key").read_text().strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    fake_server: tuple[str, str], tmp_path: Path
) -> None:
    url, key = fake_server
    code, output, seconds = run_schemathesis(
        url,
        key,
        max_examples=FUZZ_EXAMPLES,
        phases="examples,coverage,fuzzing,stateful",
        report_dir=tmp_path,
    )
    assert code == 0, output[-20_000:]
    assert "Tested: 38" in output, output[-5000:]  # 12 operations x 3 mounts, healthz, readyz
    generated = next(line for line in output.splitlines() if "generated" in line)
    print(f"schemathesis: {generated.strip()} in {seconds:.0f} s")
