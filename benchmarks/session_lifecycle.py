"""Session lifecycle latency: create -> CDP connect -> navigate -> stop, against a bare Chromium.

Run: python -m benchmarks.session_lifecycle [-n 20]. Fleet and bare runs alternate (A B A B ...)
so machine drift weighs on both alike; the table shows p50/p95/p99 per step and fleet/bare ratios.
With a warm pool, each run (fleet and bare alike) starts once the pool is full again and has
settled (`--settle`), as in pool_create and stealth: a refill's Chromium launch, which the pool
makes after a hand-out, never overlaps a measurement, neither the fleet's nor the baseline's.
`--no-wait` measures back to back instead (refills then overlap the next runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.async_api import Browser, Playwright, async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/session_lifecycle.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes

STEPS = ("create", "connect", "navigate", "stop", "total")
NAVIGATE_TIMEOUT_MS = 30_000


@dataclass(slots=True)
class Timings:
    """Seconds per step, one list entry per measured run."""

    steps: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STEPS})

    def add(self, marks: list[float]) -> None:
        for step, start, end in zip(STEPS, marks, marks[1:], strict=False):
            self.steps[step].append(end - start)
        self.steps["total"].append(marks[-1] - marks[0])


async def navigate(browser: Browser, url: str) -> None:
    context = browser.contexts[0] if browser.contexts else await browser.new_context()
    page = context.pages[0] if context.pages else await context.new_page()
    response = await page.goto(url, wait_until="load", timeout=NAVIGATE_TIMEOUT_MS)
    if response is None or response.status != 200:
        raise RuntimeError(f"navigation to {url} failed: {response and response.status}")


async def fleet_run(
    pw: Playwright,
    client: httpx.AsyncClient,
    fleet: harness.Fleet,
    body: dict[str, object],
    url: str,
) -> list[float]:
    marks = [time.perf_counter()]
    view = await harness.create_session(client, fleet, body)
    marks.append(time.perf_counter())
    browser: Browser | None = None
    stopped = False
    try:
        browser = await pw.chromium.connect_over_cdp(str(view["cdpUrl"]))
        marks.append(time.perf_counter())
        await navigate(browser, url)
        marks.append(time.perf_counter())
        await harness.stop_session(client, fleet, view["id"])
        stopped = True
        marks.append(time.perf_counter())
    finally:
        if not stopped:
            with contextlib.suppress(Exception):
                await harness.stop_session(client, fleet, view["id"])
        if browser is not None:
            # The session is stopped; this only drops Playwright's side of the socket.
            with contextlib.suppress(Exception):
                await browser.close()
    return marks


async def bare_run(pw: Playwright, chromium: Path, url: str) -> list[float]:
    marks = [time.perf_counter()]
    bare = await harness.BareChromium.launch(chromium)
    browser: Browser | None = None
    try:
        marks.append(time.perf_counter())
        browser = await pw.chromium.connect_over_cdp(bare.http_url)
        marks.append(time.perf_counter())
        await navigate(browser, url)
        marks.append(time.perf_counter())
    finally:
        await bare.stop()
        marks.append(time.perf_counter())
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()
    return marks


def report(fleet: Timings, bare: Timings, args: argparse.Namespace) -> None:
    rows = []
    for step in STEPS:
        f, b = fleet.steps[step], bare.steps[step]
        fp = [harness.percentile(f, p) * 1000 for p in (50, 95, 99)]
        bp = [harness.percentile(b, p) * 1000 for p in (50, 95, 99)]
        rows.append(
            [
                step,
                *(f"{v:.0f}" for v in fp),
                *(f"{v:.0f}" for v in bp),
                f"{harness.ratio(fp[0], bp[0]):.2f}x",
                f"{harness.ratio(fp[1], bp[1]):.2f}x",
            ]
        )
    pool = str(args.pool_size) + (", back to back" if args.no_wait else ", settled before each run")
    print()
    print(f"session lifecycle: {args.runs} runs of each, fleet and bare interleaved, times in ms")
    print(
        "  fleet: POST /api/v3/browsers -> connect_over_cdp(cdpUrl) -> goto -> PATCH stop"
        f"  (warm pool size: {pool})"
    )
    print(
        "  bare:  launch Chromium until its first page is listed -> connect_over_cdp -> goto"
        " -> SIGTERM, exit, rm profile"
    )
    harness.print_table(
        "",
        [
            "step",
            "fleet p50",
            "fleet p95",
            "fleet p99",
            "bare p50",
            "bare p95",
            "bare p99",
            "ratio p50",
            "ratio p95",
        ],
        rows,
    )
    print("ratio = fleet / bare (below 1.00x: the fleet is faster)")
    print(harness.machine_line())


def server_env(args: argparse.Namespace) -> dict[str, str]:
    if args.pool_size is None:  # not reached: main() sets it
        return {}
    return {"BROWSERFLEET_BROWSER__POOL_SIZE": str(args.pool_size)}


async def interleave(
    args: argparse.Namespace, body: dict[str, object], url: str
) -> tuple[Timings, Timings]:
    """Fleet run, bare run, fleet run, ...; the first `args.warmup` pairs are not measured."""
    fleet_t, bare_t = Timings(), Timings()
    total = args.warmup + args.runs
    async with (
        harness.running_fleet(server_env(args)) as fleet,
        async_playwright() as pw,
        httpx.AsyncClient(timeout=60.0) as client,
    ):
        settled = args.pool_size > 0 and not args.no_wait
        for i in range(total):
            if settled:
                await probes.wait_pool_ready(client, fleet, args.pool_size, args.settle)
            fleet_marks = await fleet_run(pw, client, fleet, body, url)
            if settled:
                await probes.wait_pool_ready(client, fleet, args.pool_size, args.settle)
            bare_marks = await bare_run(pw, args.chromium, url)
            measured = i >= args.warmup
            if measured:
                fleet_t.add(fleet_marks)
                bare_t.add(bare_marks)
            harness.log(
                f"{'run' if measured else 'warm-up'} {i + 1}/{total}: "
                f"fleet {fleet_marks[-1] - fleet_marks[0]:.3f}s, "
                f"bare {bare_marks[-1] - bare_marks[0]:.3f}s"
            )
    return fleet_t, bare_t


async def run(args: argparse.Namespace) -> None:
    body: dict[str, object] = {"proxyCountryCode": None} if args.no_proxy else {}
    with harness.loopback_site({"/": harness.simple_page()}) as site:
        fleet_t, bare_t = await interleave(args, body, f"{site}/")
    print(f"create body: {json.dumps(body)}; page: a loopback HTTP page")
    report(fleet_t, bare_t, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=20, help="measured runs of each (20)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs first (2)")
    parser.add_argument("--chromium", type=Path, default=harness.DEFAULT_CHROMIUM)
    parser.add_argument(
        "--pool-size",
        type=int,
        default=2,
        help="the server's warm pool size (2; 0 = launch on create)",
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="rest once the pool is full, s (1.0)"
    )
    parser.add_argument(
        "--no-wait", action="store_true", help="do not wait for a full pool between runs"
    )
    parser.add_argument(
        "--no-proxy",
        action="store_true",
        help='create with {"proxyCountryCode": null} instead of the SDK default body {}',
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
