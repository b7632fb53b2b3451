"""Schemathesis against a real server with the real launcher: every operation of /api/v3 and
the probes, zero 5xx, every answer as documented. A small budget (each accepted create starts
a Chromium): the fuzzing phase only, 4 examples per operation, about a minute. The large pass
runs over the fakes (tests/integration/api/test_api_fuzz.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fleet_server import Server
from fuzzing import run_schemathesis

pytestmark = pytest.mark.e2e


def test_schemathesis_finds_no_server_error_with_real_browsers(
    make_server: Callable[..., Server], tmp_path: Path
) -> None:
    server = make_server(
        BROWSERFLEET_LIMITS__DEFAULT_CONCURRENT_SESSIONS="4",
        BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS="4",
    )
    code, output, seconds = run_schemathesis(
        server.url,
        server.key,
        max_examples=4,
        phases="fuzzing",
        report_dir=tmp_path,
        extra=["--include-path-regex", "^/(api/v3/|healthz|readyz)"],
    )
    assert code == 0, output[-20_000:]
    assert "Tested: 14" in output, output[-5000:]  # 12 operations of /api/v3, healthz, readyz
    print(f"schemathesis with Chromium: {seconds:.0f} s")
