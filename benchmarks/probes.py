"""What the pool and scale benchmarks read from a running fleet: /metrics samples, the warm
pool's readiness, and the processes (server, Chromium trees) behind a data dir.

Like harness.py this treats browserfleet as a black box: HTTP, /proc and the data dir only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from benchmarks import harness
from browserfleet.sandbox.reach import browser_pid, processes, sandbox_uid
from browserfleet.sandbox.residue import find_residue

POOL_READY_TIMEOUT_S = 120.0
CREATE_COUNT = "browserfleet_session_create_seconds_count"
CREATE_SUM = "browserfleet_session_create_seconds_sum"


# ---------------------------------------------------------------- /metrics


@dataclass(frozen=True, slots=True)
class Scrape:
    """One parsed GET /metrics: (sample name, sorted labels) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named `name` whose labels include `labels` (0 when absent)."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= set(ls))

    def creates(self, source: str) -> float:
        return self.value(CREATE_COUNT, source=source)

    def create_seconds(self, source: str) -> float:
        return self.value(CREATE_SUM, source=source)


async def scrape(client: httpx.AsyncClient, fleet: harness.Fleet) -> Scrape:
    response = await client.get(f"{fleet.base_url}/metrics", timeout=10.0)
    response.raise_for_status()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return Scrape(samples)


async def wait_pool_ready(
    client: httpx.AsyncClient, fleet: harness.Fleet, size: int, settle_s: float = 0.0
) -> float:
    """Poll browserfleet_pool_ready until it reaches `size`; then rest `settle_s` so the new
    browser's start-up work is not charged to the next measurement. Returns seconds waited."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(POOL_READY_TIMEOUT_S):
            # Polling is the point: the server is a black box we can only scrape.
            while (await scrape(client, fleet)).value("browserfleet_pool_ready") < size:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise RuntimeError(
            f"the pool did not refill to {size} in {POOL_READY_TIMEOUT_S:.0f} s "
            f"(the server pauses refill while the load per CPU is high; {harness.machine_line()})"
        ) from None
    waited = time.perf_counter() - started
    if settle_s > 0:
        await asyncio.sleep(settle_s)
    return waited


# ---------------------------------------------------------------- processes


def server_process(fleet: harness.Fleet) -> psutil.Process:
    """The `browserfleet serve` process of this fleet (found by its --data-dir argument)."""
    marker = str(fleet.data_dir)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "serve" in cmdline and marker in cmdline:
            return proc
    raise RuntimeError(f"no browserfleet server process for {fleet.data_dir}")


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return list(proc.cmdline())
    except psutil.Error:
        return []


def chromium_processes(directory: Path) -> list[psutil.Process]:
    """Live processes of the browsers under `directory` (a data dir or one workdir): those of
    their sandboxes (bubblewrap, Chromium and its helpers, found by the workdirs' owner uids),
    and Chromium processes whose command line names `directory` (browsers without a sandbox)."""
    marker = str(directory)
    found: dict[int, psutil.Process] = {}
    for uid in _sandbox_uids(directory):
        for pid in processes(uid):
            with contextlib.suppress(psutil.Error):
                found[pid] = psutil.Process(pid)
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmdline = proc.info["cmdline"] or []
        if cmdline and "chrom" in cmdline[0] and any(marker in part for part in cmdline):
            found[proc.pid] = proc
    return list(found.values())


def _sandbox_uids(directory: Path) -> set[int]:
    workdirs = [directory, *(directory / "sessions").glob("*")]
    return {uid for w in workdirs if (uid := sandbox_uid(w)) is not None}


def main_browser(directory: Path) -> psutil.Process:
    """The browser process (not a --type= helper) of the workdir `directory`."""
    uid = sandbox_uid(directory)
    if uid is not None and (pid := browser_pid(uid)) is not None:
        return psutil.Process(pid)
    prefix = f"--user-data-dir={directory}"
    for proc in chromium_processes(directory):
        cmdline = _cmdline(proc)
        if any(p.startswith("--type=") for p in cmdline):
            continue
        if any(p.startswith(prefix) for p in cmdline):
            return proc
    raise RuntimeError(f"no Chromium browser process with a profile under {directory}")


def browser_tree(main: psutil.Process, directory: Path) -> list[psutil.Process]:
    """Every process of one browser: its sandbox's (bubblewrap and the gate included), or its
    descendants, its process group (crashpad handlers re-parent away but keep the group) and
    anything naming its directory."""
    if (uid := sandbox_uid(directory)) is not None:
        return [psutil.Process(pid) for pid in processes(uid) if psutil.pid_exists(pid)]
    members = {main.pid: main}
    with contextlib.suppress(psutil.Error):
        for child in main.children(recursive=True):
            members[child.pid] = child
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(proc.pid) == main.pid:
                members[proc.pid] = proc
    for proc in chromium_processes(directory):
        members[proc.pid] = proc
    return list(members.values())


def pss_bytes(processes: Iterable[psutil.Process]) -> int:
    """Summed proportional set size; processes that exit meanwhile count 0."""
    total = 0
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_full_info().pss
    return total


def cpu_seconds(processes: Iterable[psutil.Process]) -> dict[int, float]:
    """user+system CPU seconds per pid (children's reaped time excluded)."""
    times = {}
    for proc in processes:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            times[proc.pid] = t.user + t.system
    return times


def process_kind(proc: psutil.Process) -> str:
    """'browser', 'crashpad', or the --type= of a Chromium helper (renderer, gpu-process, ...)."""
    cmdline = _cmdline(proc)
    if cmdline and "crashpad" in cmdline[0]:
        return "crashpad"
    for part in cmdline:
        if part.startswith("--type="):
            kind = part.removeprefix("--type=")
            sub = next((p for p in cmdline if p.startswith("--utility-sub-type=")), "")
            return f"{kind}:{sub.rsplit('.', 1)[-1]}" if sub else kind
    return "browser" if cmdline and "chrom" in cmdline[0] else "server"


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two readings; a process born in between counts from zero."""
    return sum(max(0.0, t - before.get(pid, 0.0)) for pid, t in after.items())


# ---------------------------------------------------------------- formatting


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f}"


def percentiles_ms(samples: Sequence[float]) -> list[str]:
    return [ms(harness.percentile(samples, p)) for p in (50, 95, 99)]


def sandbox_residue() -> tuple[int, int, int]:
    """Processes, mounts and cgroups of the sandbox uid range the benchmarks' servers use."""
    found = find_residue(harness.FLEET_UIDS)
    return len(found.processes), len(found.mounts), len(found.cgroups)
