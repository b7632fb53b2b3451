"""`serve`'s and `doctor`'s sandbox checks on this host, including the real trial sandbox."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sandboxes import CHROMIUM, HEADLESS_SHELL, LIMITS, TEST_UIDS

from browserfleet.sandbox.preflight import LAYERS, SandboxUnavailable, check
from browserfleet.sandbox.residue import find_residue
from browserfleet.sandbox.runner import SandboxConfig

CONFIG = SandboxConfig(
    bwrap=Path("/usr/bin/bwrap"),
    uids=TEST_UIDS,
    limits=LIMITS,
    run_dir=Path("/run/browserfleet"),
    executables=(CHROMIUM, HEADLESS_SHELL),
)


async def test_this_host_has_every_layer_and_the_trial_leaves_nothing() -> None:
    checks = await check(CONFIG)
    assert [c.layer for c in checks] == list(LAYERS)
    assert all(c.ok for c in checks), checks
    assert "own network namespace" in checks[2].detail
    assert not find_residue(TEST_UIDS)
    assert not _trial_dirs()


async def test_a_missing_bwrap_is_named_and_nothing_is_tried() -> None:
    checks = {c.layer: c for c in await check(replace(CONFIG, bwrap=Path("/nonexistent/bwrap")))}
    assert not checks["mounts"].ok
    assert checks["mounts"].detail == "/nonexistent/bwrap not found"
    assert checks["mounts"].fix == "apt install bubblewrap"
    assert not checks["network"].ok and "not tried" in checks["network"].detail
    assert checks["user"].ok and checks["cgroups"].ok
    message = str(SandboxUnavailable(list(checks.values())))
    assert "mounts: /nonexistent/bwrap not found -> apt install bubblewrap" in message


async def test_a_run_dir_the_sandbox_uid_cannot_reach_fails_the_trial(tmp_path: Path) -> None:
    closed = tmp_path / "closed"  # pytest's tmp dirs are 0700: no other uid gets through
    checks = {c.layer: c for c in await check(replace(CONFIG, run_dir=closed / "run"))}
    assert not checks["mounts"].ok
    assert "bubblewrap failed" in checks["mounts"].detail
    assert "Permission denied" in checks["mounts"].detail
    assert not find_residue(TEST_UIDS)


def _trial_dirs() -> list[Path]:
    return list(Path("/run/browserfleet").glob("preflight-*"))
