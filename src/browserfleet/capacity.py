"""What this host can carry: a probe of memory and CPU (cgroup v2 limits when present, else the
host's), and the pure admission decision taken from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
MIB = 1024 * 1024
OK_REASON = "ok"


@dataclass(frozen=True, slots=True)
class CgroupLimits:
    """The cgroup v2 values that bound us; None where the cgroup sets no limit."""

    memory_max_bytes: int | None
    # memory.current minus reclaimable page cache (inactive_file), as the kubelet counts it.
    memory_used_bytes: int | None
    cpus: float | None


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the operating system reports for the whole host (psutil, load average)."""

    memory_available_bytes: int
    cpu_count: int
    load_1m: float


@dataclass(frozen=True, slots=True)
class HostSnapshot:
    """Memory and CPU as this process sees them now, cgroup limits applied."""

    memory_available_bytes: int
    memory_limit_bytes: int | None
    cpus: float
    load_1m: float
    from_cgroup: bool

    @property
    def load_per_cpu(self) -> float:
        return self.load_1m / max(self.cpus, 1e-9)


@dataclass(frozen=True, slots=True)
class CapacityPolicy:
    """How much this host may carry. Pooled browsers count as running browsers."""

    max_browsers: int
    min_free_memory_bytes: int = 256 * MIB
    est_browser_memory_bytes: int = 200 * MIB
    # The 1-minute load average per CPU above which no browser starts. It lags by a minute and
    # counts our own launches (~2 CPU-seconds each), so only a badly overloaded host trips it.
    max_load_per_cpu: float = 8.0
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.max_browsers < 0 or self.min_free_memory_bytes < 0:
            raise ValueError("capacity limits must not be negative")
        if self.est_browser_memory_bytes <= 0 or self.max_load_per_cpu <= 0:
            raise ValueError("browser footprint and load ceiling must be positive")


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether one more browser may start; when not, why and when to ask again."""

    ok: bool
    reason: str
    retry_after_s: int


def admit(
    snapshot: HostSnapshot,
    running_browsers: int,
    policy: CapacityPolicy,
    *,
    check_load: bool = True,
) -> Decision:
    """May one more browser start on a host in `snapshot` already running `running_browsers`?

    Sessions are admitted on count and memory only (check_load=False): the load average lags
    by a minute and counts our own launches; it paces the pool's refill instead."""
    if running_browsers >= policy.max_browsers:
        return _refuse(
            f"{running_browsers} of at most {policy.max_browsers} browsers are running", policy
        )
    left = snapshot.memory_available_bytes - policy.est_browser_memory_bytes
    if left < policy.min_free_memory_bytes:
        return _refuse(
            f"{snapshot.memory_available_bytes // MIB} MiB of memory available; a browser needs"
            f" ~{policy.est_browser_memory_bytes // MIB} MiB and"
            f" {policy.min_free_memory_bytes // MIB} MiB must stay free",
            policy,
        )
    if check_load and snapshot.load_per_cpu > policy.max_load_per_cpu:
        return _refuse(
            f"load {snapshot.load_per_cpu:.2f} per CPU is above {policy.max_load_per_cpu:g}",
            policy,
        )
    return Decision(ok=True, reason=OK_REASON, retry_after_s=0)


def headroom(snapshot: HostSnapshot, running_browsers: int, policy: CapacityPolicy) -> int:
    """How many more browsers may start now (what a pool refill may use), never negative."""
    if snapshot.load_per_cpu > policy.max_load_per_cpu:
        return 0
    by_count = policy.max_browsers - running_browsers
    spare = snapshot.memory_available_bytes - policy.min_free_memory_bytes
    by_memory = spare // policy.est_browser_memory_bytes
    return max(0, min(by_count, by_memory))


def _refuse(reason: str, policy: CapacityPolicy) -> Decision:
    return Decision(ok=False, reason=reason, retry_after_s=policy.retry_after_s)


def combine(cgroup: CgroupLimits | None, host: HostFacts) -> HostSnapshot:
    """The tighter of the cgroup's limits and the host's figures."""
    available = host.memory_available_bytes
    cpus = float(max(host.cpu_count, 1))
    limit = None
    if cgroup is not None:
        limit = cgroup.memory_max_bytes
        if limit is not None and cgroup.memory_used_bytes is not None:
            available = min(available, max(0, limit - cgroup.memory_used_bytes))
        if cgroup.cpus is not None:
            cpus = min(cpus, cgroup.cpus)
    return HostSnapshot(
        memory_available_bytes=available,
        memory_limit_bytes=limit,
        cpus=cpus,
        load_1m=host.load_1m,
        from_cgroup=cgroup is not None,
    )


def parse_memory_max(text: str) -> int | None:
    """`memory.max`: a byte count, or "max" for no limit."""
    value = text.strip()
    return None if value == "max" else int(value)


def parse_cpu_max(text: str) -> float | None:
    """`cpu.max`: "$QUOTA $PERIOD" in microseconds, QUOTA "max" for no limit; in CPUs."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or "100000")


def parse_memory_stat(text: str) -> dict[str, int]:
    """`memory.stat`: one "key value" per line."""
    stats: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stats[key] = int(value)
    return stats


def own_cgroup_dir(root: Path, proc_self_cgroup: str) -> Path:
    """Our cgroup v2 directory under `root`, from /proc/self/cgroup's "0::/path" line.

    Inside a container with its own cgroup namespace the path is "/" and `root` is ours.
    """
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            candidate = root / line[3:].strip().lstrip("/")
            if candidate.is_dir():
                return candidate
    return root


def read_cgroup(directory: Path) -> CgroupLimits | None:
    """The limits of the cgroup v2 at `directory`; None when it is not a cgroup v2."""
    if not (directory / "cgroup.controllers").is_file():
        return None
    memory_max = _read(directory / "memory.max")
    current = _read(directory / "memory.current")
    cpu_max = _read(directory / "cpu.max")
    used = None
    if current is not None:
        stat = parse_memory_stat(_read(directory / "memory.stat") or "")
        used = max(0, int(current) - stat.get("inactive_file", 0))
    return CgroupLimits(
        memory_max_bytes=parse_memory_max(memory_max) if memory_max is not None else None,
        memory_used_bytes=used,
        cpus=parse_cpu_max(cpu_max) if cpu_max is not None else None,
    )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def host_facts() -> HostFacts:
    """The host's own figures: available memory, the CPUs we may run on, the load average."""
    return HostFacts(
        memory_available_bytes=int(psutil.virtual_memory().available),
        cpu_count=len(os.sched_getaffinity(0)),
        load_1m=os.getloadavg()[0],
    )


class HostProbe:
    """Takes a HostSnapshot on demand (a few small file reads: cheap enough per create)."""

    def __init__(self, cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP):
        self._cgroup_root = cgroup_root
        self._proc_self_cgroup = proc_self_cgroup

    def snapshot(self) -> HostSnapshot:
        membership = _read(self._proc_self_cgroup) or ""
        cgroup = read_cgroup(own_cgroup_dir(self._cgroup_root, membership))
        return combine(cgroup, host_facts())


class HostAdmission:
    """The host's answer to "may another browser start?", for sessions and for the pool."""

    def __init__(self, probe: HostProbe, policy: CapacityPolicy) -> None:
        self._probe = probe
        self._policy = policy

    @property
    def policy(self) -> CapacityPolicy:
        return self._policy

    def session_refusal(self, running_sessions: int) -> str | None:
        """None when one more session browser fits (pooled ones make way), else why not."""
        decision = admit(self._probe.snapshot(), running_sessions, self._policy, check_load=False)
        return None if decision.ok else decision.reason

    def pool_may_grow(self, running_browsers: int) -> bool:
        return headroom(self._probe.snapshot(), running_browsers, self._policy) > 0
