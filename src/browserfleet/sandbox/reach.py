"""Reaching a running sandbox from outside the server (tests, benchmarks, an operator's
debugging): its uid from its workdir, its processes, and a dialer for its browser's DevTools.

A sandbox's workdir is a tmpfs owned by the sandbox's uid, and every process inside runs as that
uid, so the workdir alone leads to everything. Entering its network namespace needs root.
"""

from __future__ import annotations

import os
from pathlib import Path

from browserfleet.browsers.devtools_endpoint import PORT_FILE
from browserfleet.sandbox.netns import Netns, NetnsDialer
from browserfleet.sandbox.residue import uid_processes


def sandbox_uid(workdir: Path) -> int | None:
    """The uid a workdir's sandbox runs as (None: not a sandbox's workdir, e.g. root-owned)."""
    try:
        uid = workdir.stat().st_uid
    except FileNotFoundError:
        return None
    return uid if uid != os.getuid() else None


def processes(uid: int) -> list[int]:
    return sorted(uid_processes({uid}))


def browser_pid(uid: int) -> int | None:
    """The Chromium browser process (not a --type= helper) running as uid."""
    for pid in processes(uid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_chromium = bool(args) and args[0].endswith((b"chromium", b"chromium-headless-shell"))
        if is_chromium and not any(a.startswith(b"--type=") for a in args):
            return pid
    return None


def devtools_dialer(workdir: Path) -> NetnsDialer:
    """A dialer for the DevTools server of the browser whose workdir this is; close it after
    use (it holds the namespace open)."""
    uid = sandbox_uid(workdir)
    pid = browser_pid(uid) if uid is not None else None
    if uid is None or pid is None:
        raise LookupError(f"no sandboxed browser runs for {workdir}")
    lines = (workdir / "profile" / PORT_FILE).read_text().splitlines()
    netns = Netns.of_pid(pid)
    if browser_pid(uid) != pid:  # it exited: the pid may name another process by now
        netns.close()
        raise LookupError(f"the browser of {workdir} exited")
    return NetnsDialer(netns, int(lines[0]), owns_netns=True)
