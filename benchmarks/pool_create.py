"""Warm-pool create latency: POST /api/v3/browsers from the pool against cold launches.

Run: python -m benchmarks.pool_create [-n 15] [--burst 20]. Two servers run side by side, one
with a warm pool and one with POOL_SIZE=0 (the cold baseline, same request body); pool and cold
measurements alternate, and each one waits until the pool is full again and has settled, so
refill launches never overlap a measurement. Each pool measurement is checked to be a pool hit
through the server's create histogram (browserfleet_session_create_seconds_count{source}).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from playwright.async_api import Browser, Playwright, async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/pool_create.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes
from benchmarks.session_lifecycle import navigate

POOL_P50_TARGET_S = 0.050
POOL_P99_TARGET_S = 0.150
CREATE_RATIO_TARGET = 0.1
FIRST_PAGE_RATIO_TARGET = 0.3
SMALL_SCREEN = {"browserScreenWidth": 1280, "browserScreenHeight": 720}


@dataclass(slots=True)
class Series:
    """Client-side latencies of one kind of measurement, with the server's own view of them."""

    client_s: list[float] = field(default_factory=list)
    server_s: list[float] = field(default_factory=list)  # create histogram sum deltas
    hits: int = 0  # creates counted under the expected histogram source

    def p(self, q: float) -> float:
        return harness.percentile(self.client_s, q)


@dataclass(slots=True)
class Scenario:
    name: str
    body: dict[str, object]
    create: dict[str, Series] = field(default_factory=lambda: {"pool": Series(), "cold": Series()})
    first_page: dict[str, Series] = field(
        default_factory=lambda: {"pool": Series(), "cold": Series()}
    )


@dataclass(slots=True)
class Bench:
    """The two servers and the clients every measurement shares."""

    pooled: harness.Fleet
    cold: harness.Fleet
    pool_size: int
    settle_s: float
    client: httpx.AsyncClient
    pw: Playwright
    url: str

    def fleet(self, source: str) -> harness.Fleet:
        return self.pooled if source == "pool" else self.cold

    async def quiesce(self) -> None:
        """Wait for a full, settled pool before any measurement, pool or cold alike."""
        await probes.wait_pool_ready(self.client, self.pooled, self.pool_size, self.settle_s)


async def measured_create(
    bench: Bench,
    source: str,
    body: dict[str, object],
    series: Series | None,
    after_create: Callable[[dict[str, object]], Awaitable[None]] | None = None,
) -> None:
    """One create (plus `after_create`, timed with it), checked against the histogram, stopped."""
    fleet = bench.fleet(source)
    await bench.quiesce()
    before = await probes.scrape(bench.client, fleet)
    started = time.perf_counter()
    view = await harness.create_session(bench.client, fleet, body)
    try:
        if after_create is not None:
            await after_create(view)
        elapsed = time.perf_counter() - started
    finally:
        await harness.stop_session(bench.client, fleet, view["id"])
    after = await probes.scrape(bench.client, fleet)
    if series is None:
        return
    series.client_s.append(elapsed)
    series.server_s.append(after.create_seconds(source) - before.create_seconds(source))
    other = "cold" if source == "pool" else "pool"
    if after.creates(source) - before.creates(source) == 1 and after.creates(other) == (
        before.creates(other)
    ):
        series.hits += 1
    else:
        harness.log(f"WARNING: a {source} measurement was not served as {source}")


def first_page(
    bench: Bench, body: dict[str, object]
) -> Callable[[dict[str, object]], Awaitable[None]]:
    """connect_over_cdp(cdpUrl) and load the loopback page; check the screen size asked for
    (the window is the screen less its taskbar, the viewport the window less its toolbar)."""

    async def connect_and_navigate(view: dict[str, object]) -> None:
        browser: Browser = await bench.pw.chromium.connect_over_cdp(str(view["cdpUrl"]))
        try:
            await navigate(browser, bench.url)
            want = [body.get("browserScreenWidth", 1920), body.get("browserScreenHeight", 1080)]
            page = browser.contexts[0].pages[0]
            got = await page.evaluate("[screen.width, screen.height]")
            if got != want:
                raise RuntimeError(f"screen {got}, asked for {want}")
        finally:
            with contextlib.suppress(Exception):
                await browser.close()

    return connect_and_navigate


async def run_scenario(bench: Bench, scenario: Scenario, runs: int, warmup: int) -> None:
    for i in range(warmup + runs):
        measured = i >= warmup
        for source in ("pool", "cold"):
            series = scenario.create[source] if measured else None
            await measured_create(bench, source, scenario.body, series)
        for source in ("pool", "cold"):
            series = scenario.first_page[source] if measured else None
            check = first_page(bench, scenario.body)
            await measured_create(bench, source, scenario.body, series, check)
        if measured:
            c, f = scenario.create, scenario.first_page
            harness.log(
                f"{scenario.name} {i + 1 - warmup}/{runs}: create pool "
                f"{probes.ms(c['pool'].client_s[-1])} cold {probes.ms(c['cold'].client_s[-1])} ms; "
                f"first page pool "
                f"{probes.ms(f['pool'].client_s[-1])} cold {probes.ms(f['cold'].client_s[-1])} ms"
            )


@dataclass(slots=True)
class Burst:
    latencies_s: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pool_hits: float = 0
    cold: float = 0
    wall_s: float = 0.0


async def run_burst(bench: Bench, count: int) -> Burst:
    """`count` creates at once against a full pool; every session is stopped afterwards."""
    burst = Burst()
    await bench.quiesce()
    before = await probes.scrape(bench.client, bench.pooled)
    limits = httpx.Limits(max_connections=count + 4, max_keepalive_connections=count + 4)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:

        async def one() -> object | None:
            started = time.perf_counter()
            try:
                view = await harness.create_session(client, bench.pooled, {})
            except (RuntimeError, httpx.HTTPError) as error:
                burst.failures.append(str(error)[:200])
                return None
            burst.latencies_s.append(time.perf_counter() - started)
            return view["id"]

        started = time.perf_counter()
        ids = await asyncio.gather(*(one() for _ in range(count)))
        burst.wall_s = time.perf_counter() - started
        after = await probes.scrape(client, bench.pooled)
        burst.pool_hits = after.creates("pool") - before.creates("pool")
        burst.cold = after.creates("cold") - before.creates("cold")
        await asyncio.gather(
            *(harness.stop_session(client, bench.pooled, i) for i in ids if i is not None)
        )
    return burst


def scenario_rows(scenario: Scenario) -> list[list[str]]:
    rows = []
    for kind, table in (
        ("create (201)", scenario.create),
        ("create+connect+goto", scenario.first_page),
    ):
        for source in ("pool", "cold"):
            s = table[source]
            server = harness.percentile(s.server_s, 50)
            rows.append(
                [
                    f"{scenario.name}: {kind}",
                    source,
                    f"{s.hits}/{len(s.client_s)}",
                    *probes.percentiles_ms(s.client_s),
                    probes.ms(server),
                ]
            )
    return rows


def target_rows(scenario: Scenario) -> list[list[str]]:
    pool, cold = scenario.create["pool"], scenario.create["cold"]
    fp_pool, fp_cold = scenario.first_page["pool"], scenario.first_page["cold"]
    all_hits = pool.hits == len(pool.client_s) and fp_pool.hits == len(fp_pool.client_s)
    create_ratio = harness.ratio(pool.p(50), cold.p(50))
    page_ratio = harness.ratio(fp_pool.p(50), fp_cold.p(50))
    checks = [
        (
            "pool measurements that were pool hits",
            f"{pool.hits + fp_pool.hits}/{len(pool.client_s) + len(fp_pool.client_s)}",
            "all",
            all_hits,
        ),
        (
            "create p50 (pool)",
            f"{pool.p(50) * 1000:.1f} ms",
            "<= 50 ms",
            pool.p(50) <= POOL_P50_TARGET_S,
        ),
        (
            "create p99 (pool)",
            f"{pool.p(99) * 1000:.1f} ms",
            "<= 150 ms",
            pool.p(99) <= POOL_P99_TARGET_S,
        ),
        (
            "create p50 pool/cold",
            f"{create_ratio:.3f}x",
            "<= 0.1x",
            create_ratio <= CREATE_RATIO_TARGET,
        ),
        (
            "create+connect+goto p50 pool/cold",
            f"{page_ratio:.3f}x",
            "<= 0.3x",
            page_ratio <= FIRST_PAGE_RATIO_TARGET,
        ),
    ]
    return [
        [f"{scenario.name}: {what}", value, target, harness.verdict(ok)]
        for what, value, target, ok in checks
    ]


def report(scenarios: list[Scenario], burst: Burst | None, args: argparse.Namespace) -> None:
    print()
    print(
        f"warm-pool create: {args.runs} measured runs per row (+{args.warmup} warm-up), pool and"
        f" cold interleaved; pool server POOL_SIZE={args.pool_size}, cold server POOL_SIZE=0"
    )
    print(
        "  before every measurement: pool full (browserfleet_pool_ready) and "
        f"{args.settle:.1f} s of rest; after it: PATCH stop (not timed)"
    )
    print(
        "  served as = creates the server counted under that source; server p50 = the server's own "
        "create histogram (request in -> CDP ready)"
    )
    harness.print_table(
        "latency, ms",
        ["measurement", "source", "served as", "p50", "p95", "p99", "server p50"],
        [row for s in scenarios for row in scenario_rows(s)],
    )
    rows = [row for s in scenarios for row in target_rows(s)]
    if burst is not None:
        ok = not burst.failures and len(burst.latencies_s) == args.burst
        rows += [
            [
                f"burst of {args.burst} at once, pool {args.pool_size}: succeeded",
                f"{len(burst.latencies_s)}/{args.burst}",
                "all",
                harness.verdict(ok),
            ],
            [
                f"burst: p50 / p99 (wall {burst.wall_s:.1f} s)",
                f"{probes.ms(harness.percentile(burst.latencies_s, 50))} / "
                f"{probes.ms(harness.percentile(burst.latencies_s, 99))} ms",
                "reported",
                "-",
            ],
            [
                "burst: pool hits / cold launches",
                f"{burst.pool_hits:.0f} / {burst.cold:.0f}",
                "reported",
                "-",
            ],
        ]
    harness.print_table("targets (issue 3)", ["check", "measured", "target", "verdict"], rows)
    if burst is not None and burst.failures:
        print("burst failures:")
        for failure in burst.failures:
            print(f"  {failure}")
    print(f"p99 of {args.runs} samples is close to their maximum.")
    print(harness.machine_line())


def server_env(pool_size: int, burst: int) -> dict[str, str]:
    return {
        "BROWSERFLEET_BROWSER__POOL_SIZE": str(pool_size),
        "BROWSERFLEET_LIMITS__DEFAULT_CONCURRENT_SESSIONS": str(burst + 2),
        "BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS": str(burst + pool_size + 2),
    }


async def run(args: argparse.Namespace) -> None:
    scenarios = [Scenario("1920x1080", {}), Scenario("1280x720", dict(SMALL_SCREEN))]
    if args.only_default:
        scenarios = scenarios[:1]
    burst = None
    with harness.loopback_site({"/": harness.simple_page()}) as site:
        async with (
            harness.running_fleet(server_env(args.pool_size, args.burst)) as pooled,
            harness.running_fleet(server_env(0, args.burst)) as cold,
            async_playwright() as pw,
            httpx.AsyncClient(timeout=60.0) as client,
        ):
            bench = Bench(pooled, cold, args.pool_size, args.settle, client, pw, f"{site}/")
            for scenario in scenarios:
                await run_scenario(bench, scenario, args.runs, args.warmup)
            if args.burst > 0:
                burst = await run_burst(bench, args.burst)
                harness.log(f"burst: {len(burst.latencies_s)}/{args.burst} created")
    report(scenarios, burst, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=10, help="measured runs per row (10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (1)")
    parser.add_argument("--pool-size", type=int, default=4, help="warm pool size (4)")
    parser.add_argument("--burst", type=int, default=20, help="creates at once; 0 skips (20)")
    parser.add_argument("--settle", type=float, default=0.5, help="rest after refill, s (0.5)")
    parser.add_argument("--only-default", action="store_true", help="skip the 1280x720 rows")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.pool_size < 1:
        parser.error("--runs and --pool-size must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
