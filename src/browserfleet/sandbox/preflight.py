"""Can this host build sandboxes? One finding per layer (user, mounts, network, cgroups,
Chromium's own sandbox), each OK or missing with what to do about it.

`serve` refuses to start unless every layer is OK; `doctor` prints them. The decisive check is a
real trial: a sandbox built like a browser's (uid, tmpfs, cgroup, bubblewrap with every
namespace), running `true` after the server made a listener inside its network namespace.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from browserfleet.errors import BrowserLaunchFailed
from browserfleet.sandbox import spec
from browserfleet.sandbox.cgroups import CgroupUnavailable
from browserfleet.sandbox.runner import SandboxConfig, SandboxRunner

USER, MOUNTS, NETWORK, CGROUPS, CHROMIUM = (
    "user",
    "mounts",
    "network",
    "cgroups",
    "chromium sandbox",
)
LAYERS = (USER, MOUNTS, NETWORK, CGROUPS, CHROMIUM)
# Capability bits (linux/capability.h) the server needs to build sandboxes.
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SYS_ADMIN": 21,
}
# Options of bubblewrap the sandbox uses (some appeared only in recent versions).
BWRAP_OPTIONS = (
    "--args",
    "--info-fd",
    "--size",
    "--perms",
    "--ro-bind-data",
    "--remount-ro",
    "--die-with-parent",
)
TRIAL_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class LayerCheck:
    layer: str
    ok: bool
    detail: str
    fix: str = ""


class SandboxUnavailable(Exception):
    """The host cannot build sandboxes; the message names every missing layer."""

    def __init__(self, checks: list[LayerCheck]) -> None:
        missing = [c for c in checks if not c.ok]
        lines = [f"{c.layer}: {c.detail}" + (f" -> {c.fix}" if c.fix else "") for c in missing]
        super().__init__("cannot build browser sandboxes:\n  " + "\n  ".join(lines))
        self.checks = checks


async def check(config: SandboxConfig) -> list[LayerCheck]:
    """Every layer, static checks first; the trial runs only when they pass."""
    found = {USER: user_layer(config), MOUNTS: bwrap_layer(config.bwrap)}
    found[CHROMIUM] = userns_layer()
    runner: SandboxRunner | None = None
    try:
        runner = SandboxRunner(config)
        await asyncio.to_thread(runner.prepare)
        found[CGROUPS] = LayerCheck(CGROUPS, True, _describe(runner))
    except (CgroupUnavailable, OSError) as error:
        found[CGROUPS] = LayerCheck(
            CGROUPS, False, str(error), "mount cgroup v2 with memory and pids delegated to us"
        )
    if runner is not None and all(c.ok for c in found.values()):
        found.update(await _trial(runner))
    else:
        found.setdefault(NETWORK, LayerCheck(NETWORK, False, "not tried: fix the layers above"))
    return [found.get(layer) or LayerCheck(layer, True, "") for layer in LAYERS]


def user_layer(config: SandboxConfig) -> LayerCheck:
    missing = [name for name, bit in CAPABILITIES.items() if not _has_capability(bit)]
    if missing:
        return LayerCheck(
            USER,
            False,
            f"the server lacks {', '.join(missing)}",
            "run browserfleet as root (or grant those capabilities)",
        )
    for uid in (config.uids.first, config.uids.last):
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            continue
        return LayerCheck(
            USER,
            False,
            f"uid {uid} of the sandbox range {config.uids} belongs to user {name}",
            "choose a range no user has (BROWSERFLEET_SANDBOX__UID_FIRST)",
        )
    return LayerCheck(USER, True, f"sandboxes run as uids {config.uids}, none of them a user")


def bwrap_layer(bwrap: Path) -> LayerCheck:
    if not (bwrap.is_file() and os.access(bwrap, os.X_OK)):
        return LayerCheck(MOUNTS, False, f"{bwrap} not found", "apt install bubblewrap")
    try:
        done = subprocess.run(
            [str(bwrap), "--help"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return LayerCheck(MOUNTS, False, f"{bwrap} does not run: {error}", "reinstall bubblewrap")
    lacking = [option for option in BWRAP_OPTIONS if option not in done.stdout + done.stderr]
    if lacking:
        return LayerCheck(
            MOUNTS,
            False,
            f"{bwrap} is too old (no {', '.join(lacking)})",
            "install bubblewrap 0.8 or later",
        )
    return LayerCheck(MOUNTS, True, f"{bwrap} has every option needed")


def userns_layer() -> LayerCheck:
    """User namespaces, which bubblewrap needs and Chromium nests for its own sandbox."""
    limit = _read_int(Path("/proc/sys/user/max_user_namespaces"))
    if limit is not None and limit < 2:
        return LayerCheck(
            CHROMIUM,
            False,
            f"user.max_user_namespaces is {limit}",
            "sysctl -w user.max_user_namespaces=10000 (and persist it)",
        )
    if _read_int(Path("/proc/sys/kernel/unprivileged_userns_clone")) == 0:
        return LayerCheck(
            CHROMIUM,
            False,
            "kernel.unprivileged_userns_clone is 0",
            "sysctl -w kernel.unprivileged_userns_clone=1",
        )
    if _read_int(Path("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")) == 1:
        return LayerCheck(
            CHROMIUM,
            False,
            "AppArmor restricts unprivileged user namespaces",
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor "
            "profile that allows userns for bwrap and chromium",
        )
    return LayerCheck(
        CHROMIUM, True, "nested user namespaces allowed: renderers keep Chromium's own sandbox"
    )


async def _trial(runner: SandboxRunner) -> dict[str, LayerCheck]:
    """Build one sandbox for real and run `true` in it."""
    workdir = Path(tempfile.mkdtemp(prefix="preflight-", dir=runner.config.run_dir)) / "box"
    try:
        async with asyncio.timeout(TRIAL_TIMEOUT_S):
            return await _try(runner, workdir)
    except TimeoutError:
        return {NETWORK: LayerCheck(NETWORK, False, "the trial sandbox did not finish in time")}
    finally:
        shutil.rmtree(workdir.parent, ignore_errors=True)


async def _try(runner: SandboxRunner, workdir: Path) -> dict[str, LayerCheck]:
    try:
        sandbox = await runner.open(workdir)
    except BrowserLaunchFailed as error:
        return {MOUNTS: LayerCheck(MOUNTS, False, str(error), "the server needs CAP_SYS_ADMIN")}
    log_fd = os.memfd_create("trial-log", os.MFD_CLOEXEC)
    try:
        try:
            proc = await sandbox.spawn(["/usr/bin/true"], log_fd)
        except BrowserLaunchFailed:
            await sandbox.close()  # every process gone: what it said is all in the log
            return {MOUNTS: _bwrap_failure(log_fd)}
        try:
            listener = await sandbox.proxy_listener()
            listener.close()
        except OSError as error:
            return {
                NETWORK: LayerCheck(NETWORK, False, f"cannot enter the sandbox's netns: {error}")
            }
        finally:
            await sandbox.release()
        code = await proc.wait()
        if code != 0:
            return {MOUNTS: _bwrap_failure(log_fd)}
    finally:
        os.close(log_fd)
        await sandbox.close()
    return {
        MOUNTS: LayerCheck(
            MOUNTS, True, "bubblewrap built a sandbox (user, mount, pid namespaces)"
        ),
        NETWORK: LayerCheck(
            NETWORK, True, f"own network namespace; the server listened in it on {spec.PROXY_PORT}"
        ),
    }


def _bwrap_failure(log_fd: int) -> LayerCheck:
    said = os.pread(log_fd, 2000, 0).decode(errors="replace").strip() or "no message"
    return LayerCheck(
        MOUNTS,
        False,
        f"bubblewrap failed: {said}",
        "allow user namespaces and mounts (in a container: see the README's host requirements)",
    )


def _describe(runner: SandboxRunner) -> str:
    plan = runner.plan
    where = ", ".join(str(p) for p in plan.parents)
    return f"cgroup v{plan.version}, memory and pids caps under {where}"


def _has_capability(bit: int) -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return False


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
