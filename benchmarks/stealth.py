"""What stealth costs: pooled create latency and the whole session lifecycle, stealth on vs off.

Run: python -m benchmarks.stealth [-n 15] [--pool-size 2]. Two servers run side by side with
the same warm pool, one with stealth (the default) and one with BROWSERFLEET_STEALTH__ENABLED=
false (plain Chromium). Runs alternate between them, and each waits for a full, settled pool:
  - create: POST /api/v3/browsers (a pool hit: hand-over, region, CDP ready) -> 201;
  - lifecycle: create -> Playwright connect_over_cdp -> navigate a loopback page -> stop.
Targets: stealth create p50 <= 50 ms; lifecycle p50 stealth/plain <= 1.05x.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
from playwright.async_api import async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/stealth.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes
from benchmarks.session_lifecycle import fleet_run

CREATE_P50_TARGET_S = 0.050
LIFECYCLE_RATIO_TARGET = 1.05
MODES = ("stealth", "plain")
STEPS = ("create", "connect", "navigate", "stop")


def server_env(stealth: bool, pool_size: int) -> dict[str, str]:
    return {
        "BROWSERFLEET_BROWSER__POOL_SIZE": str(pool_size),
        "BROWSERFLEET_STEALTH__ENABLED": "true" if stealth else "false",
        "BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS": str(pool_size + 4),
    }


async def run(args: argparse.Namespace) -> None:
    creates: dict[str, list[float]] = {m: [] for m in MODES}
    totals: dict[str, list[float]] = {m: [] for m in MODES}
    steps: dict[tuple[str, str], list[float]] = {(m, s): [] for m in MODES for s in STEPS}
    async with (
        harness.running_fleet(server_env(True, args.pool_size)) as stealthy,
        harness.running_fleet(server_env(False, args.pool_size)) as plain,
        httpx.AsyncClient(timeout=60) as client,
        async_playwright() as pw,
    ):
        fleets = {"stealth": stealthy, "plain": plain}
        with harness.loopback_site({"/": harness.simple_page()}) as url:
            for index in range(args.warmup + args.runs):
                for mode in MODES if index % 2 == 0 else reversed(MODES):
                    fleet = fleets[mode]
                    await probes.wait_pool_ready(client, fleet, args.pool_size, args.settle)
                    started = time.perf_counter()
                    view = await harness.create_session(client, fleet, {})
                    created = time.perf_counter() - started
                    await harness.stop_session(client, fleet, view["id"])
                    await probes.wait_pool_ready(client, fleet, args.pool_size, args.settle)
                    marks = await fleet_run(pw, client, fleet, {}, url)
                    if index >= args.warmup:
                        creates[mode].append(created)
                        totals[mode].append(marks[-1] - marks[0])
                        for step, begin, end in zip(STEPS, marks[:-1], marks[1:], strict=True):
                            steps[mode, step].append(end - begin)
    report(creates, totals, steps, args)


def report(
    creates: dict[str, list[float]],
    totals: dict[str, list[float]],
    steps: dict[tuple[str, str], list[float]],
    args: argparse.Namespace,
) -> None:
    print()
    print(
        f"stealth on vs off: {args.runs} measured runs each (+{args.warmup} warm-up), alternating"
    )
    print(harness.machine_line())
    rows = [
        [
            mode,
            f"{harness.percentile(creates[mode], 50) * 1000:.1f} ms",
            f"{harness.percentile(creates[mode], 95) * 1000:.1f} ms",
            f"{harness.percentile(totals[mode], 50) * 1000:.1f} ms",
            f"{harness.percentile(totals[mode], 95) * 1000:.1f} ms",
        ]
        for mode in MODES
    ]
    harness.print_table(
        "pooled sessions", ["mode", "create p50", "create p95", "lifecycle p50", "p95"], rows
    )
    step_rows = [
        [mode, *(f"{harness.percentile(steps[mode, step], 50) * 1000:.1f} ms" for step in STEPS)]
        for mode in MODES
    ]
    harness.print_table("lifecycle steps, p50", ["mode", *STEPS], step_rows)
    create_p50 = harness.percentile(creates["stealth"], 50)
    ratio = harness.ratio(
        harness.percentile(totals["stealth"], 50), harness.percentile(totals["plain"], 50)
    )
    harness.print_table(
        "targets",
        ["check", "value", "target", ""],
        [
            [
                "stealth create p50 (pool)",
                f"{create_p50 * 1000:.1f} ms",
                "<= 50 ms",
                harness.verdict(create_p50 <= CREATE_P50_TARGET_S),
            ],
            [
                "lifecycle p50 stealth/plain",
                f"{ratio:.3f}x",
                f"<= {LIFECYCLE_RATIO_TARGET}x",
                harness.verdict(ratio <= LIFECYCLE_RATIO_TARGET),
            ],
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=15, help="measured runs of each (15)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (2)")
    parser.add_argument("--pool-size", type=int, default=2, help="warm pool of each server (2)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds to rest once the pool is full (1.0)"
    )
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
