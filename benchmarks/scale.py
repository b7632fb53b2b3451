"""Scale: memory and CPU of idle sessions against bare Chromium, and leaks over create/stop cycles.

Run: python -m benchmarks.scale [--idle 20] [--bare 5] [--cycles 200] (--cycles 1000 for the
issue's full target). Part 1 holds `--idle` sessions (server POOL_SIZE=0, so each browser's
profile is sessions/<session id>/) and `--bare` Chromiums launched by hand with the very command
line and environment of a session's browser (minus its egress proxy), all alive together so
shared pages split the same way; it sums PSS over each browser's process tree and CPU time over
a quiet window. Part 2 runs create/stop cycles against a pool of one (every `--cold-every`th
request asks for something the pool cannot serve) and samples server RSS, server fds and the
Chromium process count whenever the pool is full again, i.e. in the same state after each cycle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

if __package__ in (None, ""):  # run as a file: python benchmarks/scale.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes

MEMORY_RATIO_TARGET = 1.1
# Flags that point a session's browser at its own egress proxy: a bare browser has none.
PROXY_FLAGS = ("--proxy-server=", "--proxy-bypass-list=")


# ---------------------------------------------------------------- part 1: idle sessions


@dataclass(slots=True)
class Twin:
    """A hand-launched Chromium with a session browser's command line and environment."""

    process: asyncio.subprocess.Process
    root: Path

    @classmethod
    async def launch_like(cls, session_browser: psutil.Process) -> Twin:
        root = Path(tempfile.mkdtemp(prefix="bfb-"))
        profile, scratch, config, home = (
            root / "profile",
            root / "tmp",
            root / "config",
            root / "home",
        )
        for directory in (profile, scratch, config, home):
            directory.mkdir()
        executable, *flags = session_browser.cmdline()
        args = [
            f"--user-data-dir={profile}" if f.startswith("--user-data-dir=") else f
            for f in flags
            if not f.startswith(PROXY_FLAGS)
        ]
        # A sandboxed session keeps Chromium's own sandbox; bare Chromium as root cannot.
        if os.geteuid() == 0 and "--no-sandbox" not in args:
            args.insert(0, "--no-sandbox")
        env = {
            **session_browser.environ(),
            "TMPDIR": str(scratch),
            "XDG_CONFIG_HOME": str(config),
            "XDG_CACHE_HOME": str(root / "cache"),
            "HOME": str(home),
        }
        process = await asyncio.create_subprocess_exec(
            executable,
            *args,
            env=env,
            cwd=root,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        twin = cls(process, root)
        try:
            async with asyncio.timeout(harness.BROWSER_START_TIMEOUT_S):
                while harness.read_devtools_port(profile) is None:
                    if process.returncode is not None:
                        raise RuntimeError(f"bare chromium exited with {process.returncode}")
                    await asyncio.sleep(0.02)
        except BaseException:
            await twin.stop()
            raise
        return twin

    def processes(self) -> list[psutil.Process]:
        return probes.browser_tree(psutil.Process(self.process.pid), self.root)

    async def stop(self) -> None:
        await harness.stop_process(self.process, 10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        harness.kill_pids(harness.chromium_pids_under(self.root))
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(slots=True)
class Idle:
    session_pss: list[int] = field(default_factory=list)
    bare_pss: list[int] = field(default_factory=list)
    session_procs: list[int] = field(default_factory=list)
    bare_procs: list[int] = field(default_factory=list)
    server_pss_before: int = 0
    server_pss_after: int = 0
    fleet_cpu_s: float = 0.0  # every Chromium of the data dir plus the server
    server_cpu_s: float = 0.0
    bare_cpu_s: float = 0.0
    window_s: float = 0.0
    # CPU seconds in the window by process kind (browser, renderer, gpu-process, ...).
    session_cpu_by_kind: dict[str, float] = field(default_factory=dict)
    bare_cpu_by_kind: dict[str, float] = field(default_factory=dict)


def session_tree(fleet: harness.Fleet, session_id: object) -> list[psutil.Process]:
    directory = fleet.data_dir / "sessions" / str(session_id)
    return probes.browser_tree(probes.main_browser(directory), directory)


async def measure_idle(
    fleet: harness.Fleet, ids: list[object], twins: list[Twin], args: argparse.Namespace
) -> Idle:
    idle = Idle()
    server = probes.server_process(fleet)
    for session_id in ids:
        tree = session_tree(fleet, session_id)
        idle.session_pss.append(probes.pss_bytes(tree))
        idle.session_procs.append(len(tree))
    for twin in twins:
        tree = twin.processes()
        idle.bare_pss.append(probes.pss_bytes(tree))
        idle.bare_procs.append(len(tree))
    idle.server_pss_after = probes.pss_bytes([server])
    fleet_procs = [server, *probes.chromium_processes(fleet.data_dir)]
    bare_procs = [p for twin in twins for p in twin.processes()]
    started = time.perf_counter()
    fleet_before, bare_before = probes.cpu_seconds(fleet_procs), probes.cpu_seconds(bare_procs)
    await asyncio.sleep(args.window)
    fleet_after, bare_after = probes.cpu_seconds(fleet_procs), probes.cpu_seconds(bare_procs)
    idle.window_s = time.perf_counter() - started
    idle.fleet_cpu_s = probes.cpu_delta(fleet_before, fleet_after)
    idle.server_cpu_s = fleet_after.get(server.pid, 0.0) - fleet_before.get(server.pid, 0.0)
    idle.bare_cpu_s = probes.cpu_delta(bare_before, bare_after)
    idle.session_cpu_by_kind = by_kind(fleet_procs, fleet_before, fleet_after)
    idle.bare_cpu_by_kind = by_kind(bare_procs, bare_before, bare_after)
    return idle


def by_kind(
    procs: list[psutil.Process], before: dict[int, float], after: dict[int, float]
) -> dict[str, float]:
    kinds: dict[str, float] = {}
    for proc in procs:
        if proc.pid in after:
            kind = probes.process_kind(proc)
            used = max(0.0, after[proc.pid] - before.get(proc.pid, 0.0))
            kinds[kind] = kinds.get(kind, 0.0) + used
    return kinds


async def run_idle(args: argparse.Namespace) -> Idle:
    env = {
        "BROWSERFLEET_BROWSER__POOL_SIZE": "0",
        "BROWSERFLEET_LIMITS__DEFAULT_CONCURRENT_SESSIONS": str(args.idle + 2),
        "BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS": str(args.idle + 2),
    }
    ids: list[object] = []
    twins: list[Twin] = []
    async with harness.running_fleet(env) as fleet, httpx.AsyncClient(timeout=120.0) as client:
        try:
            # One unmeasured session first, so the server's one-time allocations are not
            # charged to the idle sessions.
            warm = await harness.create_session(client, fleet, {})
            await harness.stop_session(client, fleet, warm["id"])
            server_pss_before = probes.pss_bytes([probes.server_process(fleet)])
            for i in range(args.idle):
                ids.append((await harness.create_session(client, fleet, {}))["id"])
                if i < args.bare:  # launches alternate while both groups grow
                    twins.append(
                        await Twin.launch_like(
                            probes.main_browser(fleet.data_dir / "sessions" / str(ids[0]))
                        )
                    )
            harness.log(
                f"{len(ids)} sessions and {len(twins)} bare browsers up; "
                f"settling {args.settle:.0f} s"
            )
            await asyncio.sleep(args.settle)
            idle = await measure_idle(fleet, ids, twins, args)
            idle.server_pss_before = server_pss_before
        finally:
            for twin in twins:
                await twin.stop()
            for session_id in ids:
                with contextlib.suppress(RuntimeError, httpx.HTTPError):
                    await harness.stop_session(client, fleet, session_id)
    return idle


def idle_rows(idle: Idle, args: argparse.Namespace) -> tuple[list[list[str]], list[list[str]]]:
    n, b = len(idle.session_pss), len(idle.bare_pss)
    session_mean = sum(idle.session_pss) / n
    bare_mean = sum(idle.bare_pss) / b
    server_share = (idle.server_pss_after - idle.server_pss_before) / n
    cpu_per_session = idle.fleet_cpu_s / n
    cpu_per_bare = idle.bare_cpu_s / b
    core = 100 / idle.window_s
    rows = [
        [
            "browser tree PSS, MiB (mean)",
            probes.mib(session_mean),
            probes.mib(bare_mean),
            f"{harness.ratio(session_mean, bare_mean):.2f}x",
        ],
        [
            "browser tree PSS, MiB (max)",
            probes.mib(max(idle.session_pss)),
            probes.mib(max(idle.bare_pss)),
            "",
        ],
        [
            "processes per browser (mean)",
            f"{sum(idle.session_procs) / n:.1f}",
            f"{sum(idle.bare_procs) / b:.1f}",
            "",
        ],
        [
            f"+ server PSS growth / session, MiB ({probes.mib(idle.server_pss_before)}"
            f" -> {probes.mib(idle.server_pss_after)})",
            probes.mib(server_share),
            "-",
            "",
        ],
        [
            "= memory per idle session, MiB",
            probes.mib(session_mean + server_share),
            probes.mib(bare_mean),
            f"{harness.ratio(session_mean + server_share, bare_mean):.2f}x",
        ],
        [
            f"idle CPU over {idle.window_s:.1f} s, all {n} / all {b}, CPU-s",
            f"{idle.fleet_cpu_s:.2f}",
            f"{idle.bare_cpu_s:.2f}",
            "",
        ],
        ["  of which the server, CPU-s", f"{idle.server_cpu_s:.2f}", "-", ""],
        [
            "idle CPU per browser, % of a core",
            f"{cpu_per_session * core:.2f}",
            f"{cpu_per_bare * core:.2f}",
            f"{harness.ratio(cpu_per_session, cpu_per_bare):.2f}x",
        ],
        [
            f"idle CPU of {n} sessions, % of a core",
            f"{idle.fleet_cpu_s * core:.1f}",
            f"{cpu_per_bare * n * core:.1f} (x{n})",
            "",
        ],
    ]
    for kind in sorted(set(idle.session_cpu_by_kind) | set(idle.bare_cpu_by_kind)):
        rows.append(
            [
                f"  idle CPU per session / bare: {kind}, ms",
                f"{idle.session_cpu_by_kind.get(kind, 0.0) / n * 1000:.1f}",
                f"{idle.bare_cpu_by_kind.get(kind, 0.0) / b * 1000:.1f}",
                "",
            ]
        )
    memory_ratio = harness.ratio(session_mean + server_share, bare_mean)
    targets = [
        [
            "memory per idle session / bare Chromium (PSS)",
            f"{memory_ratio:.2f}x",
            "<= 1.1x",
            harness.verdict(memory_ratio <= MEMORY_RATIO_TARGET),
        ],
        [
            f"idle CPU of {n} idle sessions",
            f"{idle.fleet_cpu_s * core:.1f}% of a core",
            "reported",
            "-",
        ],
    ]
    return rows, targets


# ---------------------------------------------------------------- part 2: cycles


@dataclass(frozen=True, slots=True)
class Sample:
    cycle: int
    rss: int
    fds: int
    chromium: int  # processes of browsers (sandboxed: everything in the sandboxes)
    mounts: int  # sandbox mounts (workdir tmpfs and its staging bind)
    cgroups: int  # sandbox cgroup leaves


@dataclass(slots=True)
class Cycles:
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pool_hits: float = 0
    cold: float = 0
    launch_failures: float = 0
    wall_s: float = 0.0


def sample(fleet: harness.Fleet, server: psutil.Process, cycle: int) -> Sample:
    processes, mounts, cgroups = probes.sandbox_residue()
    return Sample(
        cycle,
        server.memory_info().rss,
        server.num_fds(),
        max(processes, len(probes.chromium_processes(fleet.data_dir))),
        mounts,
        cgroups,
    )


async def one_cycle(
    client: httpx.AsyncClient, fleet: harness.Fleet, body: dict[str, object]
) -> None:
    view = await harness.create_session(client, fleet, body)
    await harness.stop_session(client, fleet, view["id"])


async def run_cycles(args: argparse.Namespace) -> Cycles:
    env = {"BROWSERFLEET_BROWSER__POOL_SIZE": "1"}
    result = Cycles()
    async with harness.running_fleet(env) as fleet, httpx.AsyncClient(timeout=120.0) as client:
        server = probes.server_process(fleet)
        await probes.wait_pool_ready(client, fleet, 1, args.cycle_settle)
        before = await probes.scrape(client, fleet)
        result.samples.append(sample(fleet, server, 0))
        started = time.perf_counter()
        for cycle in range(1, args.cycles + 1):
            cold = args.cold_every > 0 and cycle % args.cold_every == 0
            # pdfRendererEnabled=false needs another launch spec: no pooled browser fits it.
            body: dict[str, object] = {"pdfRendererEnabled": False} if cold else {}
            try:
                await one_cycle(client, fleet, body)
            except (RuntimeError, httpx.HTTPError) as error:
                result.errors.append(f"cycle {cycle}: {str(error)[:200]}")
            await probes.wait_pool_ready(client, fleet, 1, args.cycle_settle)
            result.samples.append(sample(fleet, server, cycle))
            if cycle % max(1, args.cycles // 10) == 0:
                s = result.samples[-1]
                harness.log(
                    f"cycle {cycle}/{args.cycles}: rss {probes.mib(s.rss)} MiB, "
                    f"fds {s.fds}, chromium processes {s.chromium}, "
                    f"errors {len(result.errors)}"
                )
        result.wall_s = time.perf_counter() - started
        after = await probes.scrape(client, fleet)
        result.pool_hits = after.creates("pool") - before.creates("pool")
        result.cold = after.creates("cold") - before.creates("cold")
        result.launch_failures = after.value(
            "browserfleet_browser_launch_failures_total"
        ) - before.value("browserfleet_browser_launch_failures_total")
    return result


def cycle_rows(cycles: Cycles, args: argparse.Namespace) -> tuple[list[list[str]], list[list[str]]]:
    start, first, last = cycles.samples[0], cycles.samples[1], cycles.samples[-1]
    fields = ("rss", "fds", "chromium", "mounts", "cgroups")
    peak = Sample(-1, *(max(getattr(s, f) for s in cycles.samples[1:]) for f in fields))
    rows = [
        [
            "server RSS, MiB",
            probes.mib(start.rss),
            probes.mib(first.rss),
            probes.mib(last.rss),
            probes.mib(peak.rss),
            f"{probes.mib(args.rss_tolerance_mib * 2**20)}",
        ],
        [
            "server open fds",
            str(start.fds),
            str(first.fds),
            str(last.fds),
            str(peak.fds),
            str(args.fd_tolerance),
        ],
        [
            "Chromium processes of the data dir",
            str(start.chromium),
            str(first.chromium),
            str(last.chromium),
            str(peak.chromium),
            str(args.process_tolerance),
        ],
        [
            "sandbox mounts",
            str(start.mounts),
            str(first.mounts),
            str(last.mounts),
            str(peak.mounts),
            "0",
        ],
        [
            "sandbox cgroups",
            str(start.cgroups),
            str(first.cgroups),
            str(last.cgroups),
            str(peak.cgroups),
            "0",
        ],
    ]
    flat = [
        (
            "server RSS flat",
            last.rss <= first.rss + args.rss_tolerance_mib * 2**20,
            f"{probes.mib(last.rss - first.rss)} MiB",
        ),
        (
            "server fds flat",
            last.fds <= first.fds + args.fd_tolerance,
            f"{last.fds - first.fds:+d}",
        ),
        (
            "Chromium processes flat",
            last.chromium <= first.chromium + args.process_tolerance,
            f"{last.chromium - first.chromium:+d}",
        ),
        ("sandbox mounts flat", last.mounts <= first.mounts, f"{last.mounts - first.mounts:+d}"),
        (
            "sandbox cgroups flat",
            last.cgroups <= first.cgroups,
            f"{last.cgroups - first.cgroups:+d}",
        ),
    ]
    targets = [
        [
            f"{len(cycles.samples) - 1} cycles: {what} (last - first)",
            value,
            "<= tolerance",
            harness.verdict(ok),
        ]
        for what, ok, value in flat
    ]
    failures = len(cycles.errors) + int(cycles.launch_failures)
    targets.append(
        [
            f"{len(cycles.samples) - 1} cycles: errors + launch failures",
            str(failures),
            "0",
            harness.verdict(failures == 0),
        ]
    )
    return rows, targets


# ---------------------------------------------------------------- report


def report(idle: Idle | None, cycles: Cycles | None, args: argparse.Namespace) -> None:
    targets: list[list[str]] = []
    if idle is not None:
        rows, checks = idle_rows(idle, args)
        targets += checks
        print()
        print(
            f"idle sessions: {len(idle.session_pss)} sessions (POOL_SIZE=0) and "
            f"{len(idle.bare_pss)} bare Chromiums alive together, measured after "
            f"{args.settle:.0f} s of rest"
        )
        print(
            "  bare = the session browser's own command line and environment, own profile, "
            "no --proxy-server; PSS summed over descendants + process group + processes "
            "naming the profile dir"
        )
        harness.print_table("", ["measurement", "session", "bare", "ratio"], rows)
    if cycles is not None:
        rows, checks = cycle_rows(cycles, args)
        targets += checks
        print()
        print(
            f"create/stop cycles: {len(cycles.samples) - 1} in {cycles.wall_s:.0f} s against a "
            f"pool of 1; {cycles.pool_hits:.0f} pool hits, {cycles.cold:.0f} cold launches "
            f"(every {args.cold_every}th asks pdfRendererEnabled=false)"
        )
        print(
            "  each sample is taken once the pool is full again (+"
            f"{args.cycle_settle:.1f} s), so every sample sees the same state"
        )
        harness.print_table(
            "", ["measurement", "before", "after 1st", "after last", "max", "tolerance"], rows
        )
        for error in cycles.errors[:10]:
            print(f"  error: {error}")
    harness.print_table("targets (issue 3)", ["check", "measured", "target", "verdict"], targets)
    print(harness.machine_line())


async def run(args: argparse.Namespace) -> None:
    idle = await run_idle(args) if args.idle > 0 else None
    cycles = await run_cycles(args) if args.cycles > 0 else None
    report(idle, cycles, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--idle", type=int, default=20, help="idle sessions; 0 skips (20)")
    parser.add_argument("--bare", type=int, default=5, help="bare Chromiums alongside (5)")
    parser.add_argument("--settle", type=float, default=5.0, help="rest before measuring, s (5)")
    parser.add_argument("--window", type=float, default=10.0, help="idle CPU window, s (10)")
    parser.add_argument("--cycles", type=int, default=200, help="create/stop cycles; 0 skips")
    parser.add_argument("--cold-every", type=int, default=10, help="every Nth cycle cold (10)")
    parser.add_argument("--cycle-settle", type=float, default=0.3, help="rest after refill, s")
    parser.add_argument("--rss-tolerance-mib", type=float, default=10.0)
    parser.add_argument("--fd-tolerance", type=int, default=3)
    parser.add_argument("--process-tolerance", type=int, default=1)
    args = parser.parse_args(argv)
    if args.idle > 0 and not 1 <= args.bare <= args.idle:
        parser.error("--bare must be between 1 and --idle")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
