"""Soak: hours of ordinary use must leave the server where it started.

Run: python -m benchmarks.soak [--minutes 30] [--clients 4] [--cdp-clients 50]. One server
(warm pool as configured by default); `--clients` loops that each create a session, use it
over CDP (discovery, a websocket, a few commands), and stop it, as fast as they can; beside
them one long session with `--cdp-clients` websockets sending commands round and round. Server
RSS, open fds, thread count and the number of Chromium processes are printed at the start,
every `--report-every` seconds and at the end (with the same idle state: every loop between
cycles), with the cycle count, errors and create/stop latencies. PASS when the last sample is
within the slack of the first and nothing failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import websockets

if __package__ in (None, ""):  # run as a file: python benchmarks/soak.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes

# What "flat" allows: RSS may grow by this much (allocator arenas, caches warming up), fds by
# a few, threads by asyncio's default executor (created lazily, up to CPUs + 4, then reused),
# browsers by nothing (both samples are taken with the warm pool full), Chromium processes by
# a few helpers a browser starts lazily once used (the long session's utility processes).
RSS_SLACK_BYTES = 32 * 2**20
FD_SLACK = 8
THREAD_SLACK = (os.cpu_count() or 1) + 4
BROWSER_SLACK = 0  # stray browsers (not pooled, not a live session) allowed at the end
PROCESS_SLACK = 4
POOL_SIZE = 2


@dataclass(slots=True)
class Sample:
    at_s: float
    rss: int
    fds: int
    threads: int
    browsers: int  # Chromium main processes: one per session or pooled browser
    pooled: int  # browsers the warm pool holds or is launching (from /metrics)
    chromium: int  # every Chromium process, helpers included

    @property
    def stray_browsers(self) -> int:
        """Browsers that are neither pooled nor the one long session: leaks."""
        return self.browsers - self.pooled - 1


@dataclass(slots=True)
class Tally:
    cycles: int = 0
    cdp_commands: int = 0
    errors: list[str] = field(default_factory=list)
    create_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)


async def sample(client: httpx.AsyncClient, fleet: harness.Fleet, started: float) -> Sample:
    pooled = int((await probes.scrape(client, fleet)).value("browserfleet_pool_size"))
    server = probes.server_process(fleet)
    chromium = probes.chromium_processes(fleet.data_dir)
    with server.oneshot():
        return Sample(
            at_s=time.monotonic() - started,
            rss=server.memory_info().rss,
            fds=server.num_fds(),
            threads=server.num_threads(),
            browsers=sum(1 for p in chromium if probes.process_kind(p) == "browser"),
            pooled=pooled,
            chromium=len(chromium),
        )


async def cdp_round(ws_url: str, commands: int) -> int:
    async with websockets.connect(ws_url, max_size=None, open_timeout=20) as ws:
        for n in range(1, commands + 1):
            await ws.send(json.dumps({"id": n, "method": "Target.getTargets"}))
            while json.loads(await ws.recv()).get("id") != n:
                pass
    return commands


async def websocket_url(client: httpx.AsyncClient, cdp_url: str) -> str:
    version = (await client.get(f"{cdp_url}/json/version")).json()
    return str(version["webSocketDebuggerUrl"])


async def client_loop(
    client: httpx.AsyncClient, fleet: harness.Fleet, deadline: float, tally: Tally
) -> None:
    while time.monotonic() < deadline:
        try:
            began = time.monotonic()
            view = await harness.create_session(client, fleet, {"timeout": 10})
            tally.create_s.append(time.monotonic() - began)
            ws_url = await websocket_url(client, str(view["cdpUrl"]))
            tally.cdp_commands += await cdp_round(ws_url, 5)
            began = time.monotonic()
            await harness.stop_session(client, fleet, view["id"])
            tally.stop_s.append(time.monotonic() - began)
            tally.cycles += 1
        except Exception as error:  # counted and reported; the soak goes on
            tally.errors.append(f"{type(error).__name__}: {error}"[:300])
            await asyncio.sleep(1)


async def cdp_swarm(ws_url: str, clients: int, deadline: float, tally: Tally) -> None:
    async def one() -> None:
        while time.monotonic() < deadline:
            try:
                tally.cdp_commands += await cdp_round(ws_url, 20)
            except Exception as error:
                tally.errors.append(f"cdp: {type(error).__name__}: {error}"[:300])
                await asyncio.sleep(1)

    await asyncio.gather(*(one() for _ in range(clients)))


async def settle(client: httpx.AsyncClient, fleet: harness.Fleet, rest_s: float) -> None:
    try:
        await probes.wait_pool_ready(client, fleet, POOL_SIZE, rest_s)
    except RuntimeError as busy:  # the server pauses refill under load: sample anyway
        harness.log(f"pool not full: {busy}")
        await asyncio.sleep(rest_s)


def report(label: str, s: Sample, tally: Tally) -> None:
    harness.log(
        f"{label} t={s.at_s:6.0f}s  rss {probes.mib(s.rss)} MiB  fds {s.fds}  "
        f"threads {s.threads}  browsers {s.browsers} ({s.pooled} pooled)  chromium {s.chromium}  "
        f"cycles {tally.cycles}  "
        f"cdp {tally.cdp_commands}  errors {len(tally.errors)}"
    )


async def soak(args: argparse.Namespace) -> bool:
    settings = {
        "BROWSERFLEET_BROWSER__POOL_SIZE": str(POOL_SIZE),
        # The gateway admits 32 websockets per session by default; the swarm needs its own.
        "BROWSERFLEET_CDP__MAX_WEBSOCKETS": str(max(32, args.cdp_clients)),
    }
    async with harness.running_fleet(settings) as fleet, httpx.AsyncClient(timeout=60) as client:
        started = time.monotonic()
        tally = Tally()
        long_lived = await harness.create_session(client, fleet, {"timeout": 240})
        swarm_url = await websocket_url(client, str(long_lived["cdpUrl"]))
        # Both samples in the same idle state: the pool full (if the load lets it refill), then
        # a rest.
        await settle(client, fleet, args.settle)
        first = await sample(client, fleet, started)
        report("first", first, tally)
        deadline = time.monotonic() + args.minutes * 60
        work = asyncio.gather(
            *(client_loop(client, fleet, deadline, tally) for _ in range(args.clients)),
            cdp_swarm(swarm_url, args.cdp_clients, deadline, tally),
        )
        while not work.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(work), args.report_every)
            if not work.done():
                report("     ", await sample(client, fleet, started), tally)
                if tally.errors:  # show what goes wrong while it runs, not only at the end
                    harness.log(f"latest error: {tally.errors[-1]}")
        await work
        await settle(client, fleet, args.settle)
        last = await sample(client, fleet, started)
        report("last ", last, tally)
        await harness.stop_session(client, fleet, long_lived["id"])
    return verdicts(first, last, tally)


def verdicts(first: Sample, last: Sample, tally: Tally) -> bool:
    checks = [
        (
            "server RSS",
            probes.mib(first.rss),
            probes.mib(last.rss),
            last.rss - first.rss <= RSS_SLACK_BYTES,
        ),
        ("server fds", str(first.fds), str(last.fds), last.fds - first.fds <= FD_SLACK),
        (
            "server threads",
            str(first.threads),
            str(last.threads),
            last.threads - first.threads <= THREAD_SLACK,
        ),
        (
            "stray browsers",
            str(first.stray_browsers),
            str(last.stray_browsers),
            last.stray_browsers <= BROWSER_SLACK,
        ),
        (
            "chromium processes",
            str(first.chromium),
            str(last.chromium),
            last.chromium - first.chromium <= PROCESS_SLACK,
        ),
        ("errors", "0", str(len(tally.errors)), not tally.errors),
    ]
    rows = [[name, a, b, harness.verdict(ok)] for name, a, b, ok in checks]
    harness.print_table("soak: first and last sample", ["figure", "first", "last", ""], rows)
    harness.print_table(
        "soak: work done",
        ["cycles", "CDP commands", "create p50/p95/p99 ms", "stop p50/p95/p99 ms"],
        [
            [
                str(tally.cycles),
                str(tally.cdp_commands),
                "/".join(probes.percentiles_ms(tally.create_s)) if tally.create_s else "-",
                "/".join(probes.percentiles_ms(tally.stop_s)) if tally.stop_s else "-",
            ]
        ],
    )
    for error in tally.errors[:10]:
        harness.log(f"error: {error}")
    return all(ok for *_, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cdp-clients", type=int, default=50)
    parser.add_argument("--report-every", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle before samples")
    args = parser.parse_args()
    harness.log(harness.machine_line())
    return 0 if asyncio.run(soak(args)) else 1


if __name__ == "__main__":
    sys.exit(main())
