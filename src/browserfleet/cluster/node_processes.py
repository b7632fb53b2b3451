"""The Ray processes running on this machine, the cluster and node each belongs to, and ending
them. `ray stop` knows only "every Ray process here"; this also tells Ray's python helpers (log
monitor, autoscaler monitor, dashboard, which outlive a killed raylet) by their scripts, checks
that none is left after `ray stop`, and can end one cluster's or one node's processes while
another cluster runs on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import psutil

from browserfleet.settings import join_host_port, split_host_port

# Scripts of Ray's python processes, as their command lines name them.
HELPER_SCRIPTS = (
    "ray/_private/log_monitor.py",
    "ray/autoscaler/_private/monitor.py",
    "ray/dashboard/dashboard.py",
    "ray/dashboard/agent.py",
    "ray/_private/runtime_env/agent/main.py",
    "ray/_private/workers/default_worker.py",
    "ray/_private/workers/setup_worker.py",
    "ray/_private/ray_process_reaper.py",
)
WORKER_TITLE = "ray::"  # workers and agents retitle themselves "ray::<what they run>"


class RayRole(StrEnum):
    RAYLET = "raylet"
    GCS = "gcs_server"
    WORKER = "worker"  # a worker or agent process under a raylet
    HELPER = "helper"  # a python helper: log monitor, autoscaler monitor, dashboard...


@dataclass(frozen=True, slots=True)
class RayProcess:
    pid: int
    ppid: int
    role: RayRole
    gcs_address: str | None  # the cluster it serves, when its command line says
    node_ip: str | None
    title: str  # its command line, shortened, for messages
    started: float = 0.0  # its start time (psutil's create_time): a reused pid is not it

    def line(self) -> str:
        return f"{self.pid} {self.role.value}: {self.title}"


def classify(
    pid: int, ppid: int, name: str, cmdline: Sequence[str], started: float = 0.0
) -> RayProcess | None:
    """The Ray process behind this process table entry, or None when it is not one."""
    joined = " ".join(cmdline)
    role = _role(name, cmdline, joined)
    if role is None:
        return None
    options = _options(cmdline)
    address = options.get("gcs-address")
    if role is RayRole.GCS and "gcs_server_port" in options and "node-ip-address" in options:
        address = join_host_port(options["node-ip-address"], int(options["gcs_server_port"]))
    node_ip = options.get("node-ip-address") or options.get("node_ip_address")
    return RayProcess(pid, ppid, role, address, node_ip, joined[:160], started)


def _role(name: str, cmdline: Sequence[str], joined: str) -> RayRole | None:
    program = os.path.basename(cmdline[0]) if cmdline else name
    if program == "raylet":
        return RayRole.RAYLET
    if program == "gcs_server":
        return RayRole.GCS
    if name.startswith(WORKER_TITLE) or joined.startswith(WORKER_TITLE):
        return RayRole.WORKER
    if any(script in joined for script in HELPER_SCRIPTS):
        return RayRole.HELPER
    return None


def _options(cmdline: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in cmdline:
        key, sep, value = part.partition("=")
        if sep and key.startswith("--"):
            found.setdefault(key.removeprefix("--"), value)
    return found


def select(
    processes: Iterable[RayProcess], address: str | None = None, node_ip: str | None = None
) -> list[RayProcess]:
    """The processes of the cluster at `address` and/or of the node at `node_ip` (both None:
    all). A worker belongs to its raylet's node; a helper that names only its cluster belongs
    to the head's node."""
    every = list(processes)
    if address is None and node_ip is None:
        return every
    chosen = [p for p in every if p.role is not RayRole.WORKER and _matches(p, address, node_ip)]
    raylets = {p.pid for p in chosen if p.role is RayRole.RAYLET}
    return chosen + [p for p in every if p.role is RayRole.WORKER and p.ppid in raylets]


def _matches(process: RayProcess, address: str | None, node_ip: str | None) -> bool:
    if address is not None and process.gcs_address != address:
        return False
    if node_ip is None:
        return True
    if process.node_ip is not None:
        return process.node_ip == node_ip
    return process.gcs_address is not None and _host(process.gcs_address) == node_ip


def _host(address: str) -> str | None:
    try:
        return split_host_port(address)[0]
    except ValueError:
        return None


def kill_order(processes: Iterable[RayProcess]) -> list[RayProcess]:
    """Raylets first (so their workers stop asking for more), the GCS last, as `ray stop`."""
    rank = {RayRole.RAYLET: 0, RayRole.WORKER: 1, RayRole.HELPER: 1, RayRole.GCS: 2}
    return sorted(processes, key=lambda p: rank[p.role])


def find() -> list[RayProcess]:
    """Every live Ray process of this machine (never this process)."""
    found = []
    fields = ["pid", "ppid", "name", "cmdline", "status", "create_time"]
    for proc in psutil.process_iter(fields):
        info = proc.info
        if proc.pid == os.getpid() or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        process = classify(
            proc.pid,
            info["ppid"] or 0,
            info["name"] or "",
            info["cmdline"] or [],
            info["create_time"] or 0.0,
        )
        if process is not None:
            found.append(process)
    return found


def kill(processes: Sequence[RayProcess], timeout_s: float) -> list[RayProcess]:
    """SIGKILL them in kill_order; the ones still alive after timeout_s (normally none)."""
    killed = []
    for process in kill_order(processes):
        handle = _same_process(process)
        if handle is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                handle.kill()
                killed.append((process, handle))
    deadline = time.monotonic() + timeout_s
    alive = [(p, h) for p, h in killed if _alive(h)]
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [(p, h) for p, h in alive if _alive(h)]
    return [p for p, _ in alive]


def _same_process(process: RayProcess) -> psutil.Process | None:
    try:
        handle = psutil.Process(process.pid)
        same = not process.started or handle.create_time() == process.started
    except psutil.NoSuchProcess:
        return None
    return handle if same else None


def _alive(handle: psutil.Process) -> bool:
    """Running and not a zombie (a zombie is dead, it only waits for its parent to reap it)."""
    try:
        return bool(handle.is_running() and handle.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
