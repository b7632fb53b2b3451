"""Finding and killing Chromium processes by the --user-data-dir on their command line.

Used after a crash (browsers of a previous server run) and as a last sweep when closing one.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

USER_DATA_DIR = "--user-data-dir="
GROUP_POLL_INTERVAL_S = 0.01


def kill_strays(root: Path, keep: frozenset[int]) -> int:
    """SIGKILL the process group of every browser whose user-data-dir lies under root, unless
    its pid or its group leader is in keep; returns how many groups were killed."""
    root = root.resolve()
    groups: dict[int, list[int]] = {}
    for pid, user_data_dir in _browsers():
        if not user_data_dir.is_relative_to(root):
            continue
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            continue
        if pid not in keep and group not in keep:
            groups.setdefault(group, []).append(pid)
    killed = sum(1 for group, pids in groups.items() if _kill_group(group, pids))
    if killed:
        log.warning("killed %d stray browser process group(s) under %s", killed, root)
    return killed


def kill_naming(path: Path) -> int:
    """SIGKILL every process (not group) with an argument naming a file under path, such as
    --user-data-dir or crashpad's --database; returns how many."""
    needle = f"{path.resolve()}/"
    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline: list[str] = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if any(needle in arg for arg in cmdline) and _kill(proc.pid):
            killed += 1
    return killed


def _browsers() -> Iterator[tuple[int, Path]]:
    """(pid, resolved user-data-dir) of every live process that names one."""
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmdline: list[str] = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for arg in cmdline:
            if arg.startswith(USER_DATA_DIR):
                yield proc.pid, Path(arg.removeprefix(USER_DATA_DIR)).resolve()
                break


def _kill_group(group: int, pids: list[int]) -> bool:
    # A browser started without a session of its own shares its group with someone else
    # (maybe us): then kill its processes one by one, never the group.
    if group <= 1 or group == os.getpgrp():
        return sum(1 for pid in pids if _kill(pid)) > 0
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def _kill(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def kill_group_members(group: int, timeout_s: float) -> bool:
    """SIGKILL, one by one, every live member of the group until none is left; False on timeout.

    Safe once the group leader is reaped (its pgid may then be reused: no killpg). SIGKILL is
    asynchronous, so members may linger a moment. Zombies do not count: init reaps those.
    """
    deadline = time.monotonic() + timeout_s
    while members := _live_members(group):
        if time.monotonic() > deadline:
            return False
        for pid in members:
            _kill(pid)
        time.sleep(GROUP_POLL_INTERVAL_S)
    return True


def _live_members(group: int) -> list[int]:
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.pid) == group:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members
