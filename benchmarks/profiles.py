"""Persistent profiles: what a profile costs a create, what a stop costs, and how long a save takes.

Run: python -m benchmarks.profiles [-n 10] [--sizes 5,50] [--no-s3]

1. One server (local store, its default warm pool). Runs alternate (A B C A B C ...), so machine
   drift weighs on all alike: a create the pool serves (the speed any "apply the state to a pooled
   browser" design could at best reach), a cold create (a screen no pooled browser has: a fresh
   launch, no profile), and a create with a saved profile (a fresh launch from an unpacked copy of
   its state). p50/p99 of each, and the profile's cost against the other two. Each run's stop is
   timed too: it answers once the session is stopped and billed, before the browser is gone.
2. Save time at stop for a profile holding N MB of incompressible IndexedDB data, on the local
   store and on an S3-compatible server (moto, on loopback): from the stop's answer until the
   new version is current (the profile's updatedAt moves), as a client sees it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/profiles.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness

KINDS = ("pooled", "cold", "profile")
SUPPORT = Path(__file__).resolve().parent.parent / "tests" / "support"  # the S3 test server
SAVE_DEADLINE_S = 300.0
FILL_PAGE = b"<!doctype html><title>fill</title><p>fill</p>"
# Writes `mb` MiB of random bytes (incompressible, like real site data) into IndexedDB.
FILL_SCRIPT = """async (mb) => {
  const db = await new Promise((ok, bad) => {
    const open = indexedDB.open("bench", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("blobs");
    open.onsuccess = () => ok(open.result); open.onerror = () => bad(open.error);
  });
  for (let i = 0; i < mb; i++) {
    const chunk = new Uint8Array(1024 * 1024);
    for (let at = 0; at < chunk.length; at += 65536) {
      crypto.getRandomValues(chunk.subarray(at, at + 65536));
    }
    await new Promise((ok, bad) => {
      const tx = db.transaction("blobs", "readwrite");
      tx.objectStore("blobs").put(chunk, i);
      tx.oncomplete = ok; tx.onerror = () => bad(tx.error);
    });
  }
  return mb;
}"""


async def _profile(client: httpx.AsyncClient, fleet: harness.Fleet) -> str:
    answer = await client.post(f"{fleet.api_url}/profiles", json={}, headers=fleet.headers)
    answer.raise_for_status()
    return str(answer.json()["id"])


async def _updated_at(client: httpx.AsyncClient, fleet: harness.Fleet, profile: str) -> str:
    answer = await client.get(f"{fleet.api_url}/profiles/{profile}", headers=fleet.headers)
    answer.raise_for_status()
    return str(answer.json()["updatedAt"])


async def _saved_after(
    client: httpx.AsyncClient, fleet: harness.Fleet, profile: str, before: str
) -> None:
    """Until the profile's updatedAt moves past `before` (its new version is current)."""
    deadline = time.monotonic() + SAVE_DEADLINE_S
    while await _updated_at(client, fleet, profile) == before:
        if time.monotonic() > deadline:
            raise RuntimeError(f"profile {profile} not saved within {SAVE_DEADLINE_S:.0f} s")
        await asyncio.sleep(0.02)


async def _fill(view: dict[str, object], site: str, mb: int) -> None:
    async with async_playwright() as pw:
        browser = await pw.chromium.connect_over_cdp(str(view["cdpUrl"]))
        try:
            page = browser.contexts[0].pages[0]
            await page.goto(f"{site}/fill")
            await page.evaluate(FILL_SCRIPT, mb)
        finally:
            await browser.close()


async def _pool_ready(client: httpx.AsyncClient, fleet: harness.Fleet) -> None:
    """Until the warm pool holds a ready browser again (it refills after each take)."""
    deadline = time.monotonic() + SAVE_DEADLINE_S
    while time.monotonic() < deadline:
        text = (await client.get(f"{fleet.base_url}/metrics")).text
        for line in text.splitlines():
            if line.startswith("browserfleet_pool_ready ") and float(line.split()[1]) >= 1:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError("the warm pool did not refill")


async def _timed_create(
    client: httpx.AsyncClient, fleet: harness.Fleet, body: dict[str, object]
) -> tuple[float, float]:
    """(create seconds, stop seconds) of one session."""
    began = time.perf_counter()
    view = await harness.create_session(client, fleet, body)
    created = time.perf_counter()
    await harness.stop_session(client, fleet, view["id"])
    return created - began, time.perf_counter() - created


async def creates(args: argparse.Namespace, site: str) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {k: {"create": [], "stop": []} for k in KINDS}
    async with harness.running_fleet() as fleet, httpx.AsyncClient(timeout=120) as client:
        profile = await _profile(client, fleet)
        seeded = await harness.create_session(client, fleet, {"profileId": profile})
        before = await _updated_at(client, fleet, profile)
        await _fill(seeded, site, 1)  # a small real state: 1 MB of site data and its stores
        await harness.stop_session(client, fleet, seeded["id"])
        await _saved_after(client, fleet, profile, before)
        bodies: dict[str, dict[str, object]] = {
            "pooled": {},
            "cold": {"browserScreenWidth": 1280, "browserScreenHeight": 800},
            "profile": {"profileId": profile},
        }
        for run in range(args.warmup + args.runs):
            for kind in KINDS:
                before = await _updated_at(client, fleet, profile)
                create_s, stop_s = await _timed_create(client, fleet, bodies[kind])
                if kind == "profile":  # the next run must not wait for this save
                    await _saved_after(client, fleet, profile, before)
                if run >= args.warmup:
                    times[kind]["create"].append(create_s)
                    times[kind]["stop"].append(stop_s)
            await _pool_ready(client, fleet)  # the next pooled create must find one
    return times


@contextlib.asynccontextmanager
async def _s3_env() -> AsyncIterator[dict[str, str]]:
    sys.path.insert(0, str(SUPPORT))
    s3: Any = importlib.import_module("s3_server").S3TestServer()
    s3.start()
    try:
        s3.create_bucket("bench-profiles")
        yield {
            "BROWSERFLEET_STORAGE__BACKEND": "s3",
            "BROWSERFLEET_STORAGE__BUCKET": "bench-profiles",
            "BROWSERFLEET_STORAGE__ENDPOINT_URL": s3.url,
            "BROWSERFLEET_STORAGE__ACCESS_KEY_ID": s3.access_key_id,
            "BROWSERFLEET_STORAGE__SECRET_ACCESS_KEY": s3.secret_access_key,
            "BROWSERFLEET_STORAGE__ADDRESSING_STYLE": "path",
        }
        s3.remove_bucket("bench-profiles")
    finally:
        s3.stop()


async def saves(args: argparse.Namespace, site: str, env: dict[str, str]) -> dict[int, float]:
    """Seconds from the stop's answer to the new version being current, per size in MB."""
    found: dict[int, float] = {}
    async with harness.running_fleet(env) as fleet, httpx.AsyncClient(timeout=120) as client:
        for mb in args.sizes:
            profile = await _profile(client, fleet)
            view = await harness.create_session(client, fleet, {"profileId": profile})
            await _fill(view, site, mb)
            before = await _updated_at(client, fleet, profile)
            await harness.stop_session(client, fleet, view["id"])
            stopped = time.perf_counter()
            await _saved_after(client, fleet, profile, before)
            found[mb] = time.perf_counter() - stopped
    return found


def report(times: dict[str, dict[str, list[float]]], saved: dict[str, dict[int, float]]) -> None:
    p = harness.percentile
    rows: list[list[str]] = []
    for kind in KINDS:
        c, s = times[kind]["create"], times[kind]["stop"]
        rows.append(
            [kind, f"{p(c, 50) * 1000:.0f}", f"{p(c, 99) * 1000:.0f}", f"{p(s, 50) * 1000:.0f}"]
        )
    harness.print_table("create and stop (ms)", ["create", "p50", "p99", "stop p50"], rows)
    profile_p50 = p(times["profile"]["create"], 50)
    pooled_p50, cold_p50 = p(times["pooled"]["create"], 50), p(times["cold"]["create"], 50)
    print(
        f"profile/pooled create p50: {harness.ratio(profile_p50, pooled_p50):.1f}x; "
        f"profile/cold: {harness.ratio(profile_p50, cold_p50):.2f}x"
    )
    save_rows = [
        [store, f"{mb} MB", f"{seconds * 1000:.0f}"]
        for store, by_size in saved.items()
        for mb, seconds in by_size.items()
    ]
    harness.print_table(
        "save at stop (ms, stop answer -> version current)", ["store", "size", "ms"], save_rows
    )
    print(harness.machine_line())


async def run(args: argparse.Namespace) -> None:
    pages = {"/": harness.simple_page(), "/fill": FILL_PAGE}
    with harness.loopback_site(pages) as site:
        times = await creates(args, site)
        saved = {"local": await saves(args, site, {})}
        if not args.no_s3:
            async with _s3_env() as env:
                saved["s3"] = await saves(args, site, env)
    report(times, saved)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=10, help="measured runs of each (10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs first (1)")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[5, 50],
        help="profile sizes to save, MB of site data (5,50)",
    )
    parser.add_argument("--no-s3", action="store_true", help="skip the S3-compatible store")
    args: Any = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
