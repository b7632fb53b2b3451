"""Sandboxes in tests: one uid range per test run, and the runner built the way serve builds it.

Each pytest process takes its own block of sandbox uids, so the suite's leak check (which looks
for processes, mounts and cgroups of those uids) is not confused by anything else on the host.
"""

from __future__ import annotations

import os
from pathlib import Path

from browserfleet.sandbox.runner import SandboxConfig, SandboxRunner
from browserfleet.sandbox.spec import SandboxLimits
from browserfleet.sandbox.uids import UidRange
from browserfleet.settings import DEFAULT_UID_FIRST, MIB

CHROMIUM = Path("/usr/lib/chromium/chromium")
HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
BLOCK = 64
# Past the default range (0x70000000 + 1024), in systemd's unused range, and within 65536 uids of
# its start (CI's leak check looks there). A helper process the tests start (a server to kill,
# say) gets the run's block through the environment.
UID_FIRST_ENV = "BROWSERFLEET_TEST_UID_FIRST"
TEST_UIDS = UidRange(
    int(os.environ.get(UID_FIRST_ENV, DEFAULT_UID_FIRST + 4096 + BLOCK * (os.getpid() % 900))),
    BLOCK,
)
LIMITS = SandboxLimits(
    memory_bytes=2048 * MIB,
    pids=1024,
    disk_bytes=256 * MIB,
    tmp_bytes=64 * MIB,
    shm_bytes=512 * MIB,
)


SANDBOX_NICE = 7  # not the default (5), so a test sees the setting applied


def uid_env() -> dict[str, str]:
    """Settings that give a test server this run's uids."""
    return {
        "BROWSERFLEET_SANDBOX__UID_FIRST": str(TEST_UIDS.first),
        "BROWSERFLEET_SANDBOX__UID_COUNT": str(TEST_UIDS.count),
    }


def make_runner(limits: SandboxLimits = LIMITS) -> SandboxRunner:
    """A prepared runner as serve builds it, on this run's uids."""
    runner = SandboxRunner(
        SandboxConfig(
            bwrap=Path("/usr/bin/bwrap"),
            uids=TEST_UIDS,
            limits=limits,
            run_dir=Path("/run/browserfleet"),
            executables=(CHROMIUM, HEADLESS_SHELL),
            nice=SANDBOX_NICE,
        )
    )
    runner.prepare()
    return runner
