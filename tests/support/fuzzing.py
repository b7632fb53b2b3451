"""Running schemathesis against a served OpenAPI, with a bounded budget, from a test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

SUPPORT = Path(__file__).resolve().parent
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Every check schemathesis has, but positive_data_acceptance: a valid create may rightly be a
# 402, 404 (profile), 429 or 503, which that check takes for a bug.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
]


def run_schemathesis(
    base_url: str,
    key: str,
    *,
    max_examples: int,
    phases: str,
    report_dir: Path,
    extra: list[str] | None = None,
    timeout_s: float = 600,
) -> tuple[int, str, float]:
    """Run the CLI over every operation of base_url's /openapi.json; (exit code, output, s)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SUPPORT), os.environ.get("PYTHONPATH")])),
        "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
        "NO_COLOR": "1",
    }
    args = [
        str(SCHEMATHESIS),
        "run",
        f"{base_url}/openapi.json",
        "--header",
        f"X-Browser-Use-API-Key: {key}",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        str(max_examples),
        "--phases",
        phases,
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--report",
        "junit",
        "--report-dir",
        str(report_dir),
        *(extra or []),
    ]
    started = time.monotonic()
    done = subprocess.run(  # in report_dir: schemathesis keeps its cache in its cwd
        args,
        env=env,
        cwd=report_dir,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started
