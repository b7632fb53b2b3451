"""What recording and watching cost: CPU of a session with vs without recording, on an animated
and on a still page, and the view-only live view's frame rate and CPU at 1280x720.

Run: python -m benchmarks.recording [--seconds 8] [--viewers 2]. One server; every case is a
fresh 1280x720 session on a loopback page, measured over the same window in the same run:
  - CPU: the server process plus every process of the session's sandbox uid (Chromium and its
    helpers, and the recorder's ffmpeg, which runs as that uid), in % of one core;
  - live view: N view-only viewers (pages in a local Chromium), frames each one drew a second,
    and the CPU of the server and the session (the viewers' own Chromium is the watcher's cost,
    shown apart).
Targets: recording a still page adds <= 5% of a core; an animated page adds <= 60% of a core;
each viewer gets <= the 30 fps cap; N viewers cost the session no more than one viewer x 1.3.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import psutil
from playwright.async_api import async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/recording.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness, probes
from browserfleet.sandbox.reach import processes, sandbox_uid

CHROMIUM = "/usr/lib/chromium/chromium"
STILL_ADDS_TARGET = 5.0  # % of one core
ANIMATED_ADDS_TARGET = 60.0
VIEWER_FPS_CAP = 30.0
VIEWERS_RATIO_TARGET = 1.3
ANIMATED = (
    b"<!doctype html><title>animated</title><style>@keyframes s{to{transform:rotate(360deg)}}"
    b"div{width:300px;height:300px;background:linear-gradient(#c33,#33c);"
    b"animation:s 1s linear infinite;margin:100px}</style><div></div>"
)


def cpu_seconds(procs: Iterable[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def session_processes(fleet: harness.Fleet, session_id: str) -> list[psutil.Process]:
    found = [probes.server_process(fleet)]
    uid = sandbox_uid(fleet.data_dir / "sessions" / session_id)
    for pid in processes(uid) if uid is not None else []:
        try:
            found.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return found


async def measure_cpu(fleet: harness.Fleet, session_id: str, seconds: float) -> float:
    """% of one core used by the server and the session over `seconds` (processes that start
    meanwhile, like ffmpeg, are counted from the start of the window: they are new)."""
    before_procs = session_processes(fleet, session_id)
    before = {p.pid: cpu_seconds([p]) for p in before_procs}
    started = time.perf_counter()
    await asyncio.sleep(seconds)  # the measured window itself
    elapsed = time.perf_counter() - started
    used = 0.0
    for proc in session_processes(fleet, session_id):
        used += cpu_seconds([proc]) - before.get(proc.pid, 0.0)
    return 100.0 * used / elapsed


async def recording_case(
    pw: Any, client: httpx.AsyncClient, fleet: harness.Fleet, url: str, record: bool, s: float
) -> float:
    body: dict[str, object] = {
        "browserScreenWidth": 1280,
        "browserScreenHeight": 720,
        "enableRecording": record,
    }
    view = await harness.create_session(client, fleet, body)
    try:
        browser = await pw.chromium.connect_over_cdp(str(view["cdpUrl"]))
        try:
            page = browser.contexts[0].pages[0]
            await page.goto(url)
            await asyncio.sleep(1.0)  # let the recorder start and the page settle
            return await measure_cpu(fleet, str(view["id"]), s)
        finally:
            await browser.close()
    finally:
        await harness.stop_session(client, fleet, view["id"])


async def viewers_case(
    pw: Any,
    viewer: Any,
    client: httpx.AsyncClient,
    fleet: harness.Fleet,
    url: str,
    count: int,
    seconds: float,
) -> tuple[float, float, float]:
    """(fps per viewer, CPU % of server + session, CPU % of the viewers' Chromium)."""
    body: dict[str, object] = {"browserScreenWidth": 1280, "browserScreenHeight": 720}
    view = await harness.create_session(client, fleet, body)
    contexts = []
    try:
        browser = await pw.chromium.connect_over_cdp(str(view["cdpUrl"]))
        try:
            await browser.contexts[0].pages[0].goto(url)
            pages = []
            for _ in range(count):
                context = await viewer.new_context(viewport={"width": 1280, "height": 720})
                contexts.append(context)
                page = await context.new_page()
                await page.goto(str(view["viewOnlyLiveUrl"]))
                await page.locator("html[data-state='live']").wait_for(state="attached")
                pages.append(page)
            viewer_procs = [psutil.Process(p.pid) for p in _viewer_processes()]
            drawn = [await p.evaluate("window.__framesDrawn || 0") for p in pages]
            viewer_before = cpu_seconds(viewer_procs)
            started = time.perf_counter()
            cpu = await measure_cpu(fleet, str(view["id"]), seconds)
            elapsed = time.perf_counter() - started
            viewer_cpu = 100.0 * (cpu_seconds(viewer_procs) - viewer_before) / elapsed
            after = [await p.evaluate("window.__framesDrawn || 0") for p in pages]
            fps = sum(a - b for a, b in zip(after, drawn, strict=True)) / count / elapsed
            return fps, cpu, viewer_cpu
        finally:
            await browser.close()
    finally:
        for context in contexts:
            await context.close()
        await harness.stop_session(client, fleet, view["id"])


def _viewer_processes() -> list[psutil.Process]:
    me = psutil.Process()
    return [p for p in me.children(recursive=True) if "chrom" in (p.name() or "")]


async def run(args: argparse.Namespace) -> None:
    rec: dict[tuple[str, bool], list[float]] = {}
    live: dict[int, tuple[float, float, float]] = {}
    pages = {"/animated": ANIMATED, "/still": harness.simple_page()}
    async with (
        harness.running_fleet({"BROWSERFLEET_BROWSER__POOL_SIZE": "0"}) as fleet,
        httpx.AsyncClient(timeout=60, headers=fleet.headers) as client,
        async_playwright() as pw,
    ):
        viewer = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            with harness.loopback_site(pages) as base:
                for _ in range(args.repeat):
                    for name in ("still", "animated"):
                        for record in (False, True):
                            url = f"{base.rstrip('/')}/{name}"
                            cpu = await recording_case(pw, client, fleet, url, record, args.seconds)
                            rec.setdefault((name, record), []).append(cpu)
                            harness.log(f"{name} record={record}: {cpu:.1f}% of a core")
                for count in sorted({1, args.viewers}):
                    url = f"{base.rstrip('/')}/animated"
                    live[count] = await viewers_case(
                        pw, viewer, client, fleet, url, count, args.seconds
                    )
                    harness.log(f"{count} viewer(s): {live[count]}")
        finally:
            await viewer.close()
    report(rec, live, args)


def report(
    rec: dict[tuple[str, bool], list[float]],
    live: dict[int, tuple[float, float, float]],
    args: argparse.Namespace,
) -> None:
    print()
    print(f"recording and live view: {args.seconds:.0f} s windows, 1280x720, {args.repeat} run(s)")
    print(harness.machine_line())
    rows = []
    added: dict[str, float] = {}
    for name in ("still", "animated"):
        off = harness.percentile(rec[name, False], 50)
        on = harness.percentile(rec[name, True], 50)
        added[name] = on - off
        rows.append([name, f"{off:.1f}%", f"{on:.1f}%", f"{on - off:+.1f}%"])
    harness.print_table(
        "CPU of server + session (% of one core, p50)",
        ["page", "no recording", "recording", "added"],
        rows,
    )
    live_rows = [
        [str(n), f"{fps:.1f}", f"{cpu:.1f}%", f"{vcpu:.1f}%"]
        for n, (fps, cpu, vcpu) in sorted(live.items())
    ]
    harness.print_table(
        "view-only live view of an animated page",
        ["viewers", "fps each", "server + session CPU", "viewers' Chromium CPU"],
        live_rows,
    )
    one, many = live[min(live)], live[max(live)]
    shared = harness.ratio(many[1], one[1])
    harness.print_table(
        "targets",
        ["check", "value", "target", ""],
        [
            [
                "recording adds, still page",
                f"{added['still']:.1f}%",
                f"<= {STILL_ADDS_TARGET:.0f}%",
                harness.verdict(added["still"] <= STILL_ADDS_TARGET),
            ],
            [
                "recording adds, animated page",
                f"{added['animated']:.1f}%",
                f"<= {ANIMATED_ADDS_TARGET:.0f}%",
                harness.verdict(added["animated"] <= ANIMATED_ADDS_TARGET),
            ],
            [
                "fps per viewer",
                f"{max(v[0] for v in live.values()):.1f}",
                f"<= {VIEWER_FPS_CAP:.0f}",
                harness.verdict(all(v[0] <= VIEWER_FPS_CAP * 1.05 for v in live.values())),
            ],
            [
                f"{max(live)} viewers / 1 viewer, session CPU",
                f"{shared:.2f}x",
                f"<= {VIEWERS_RATIO_TARGET}x",
                harness.verdict(shared <= VIEWERS_RATIO_TARGET),
            ],
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each measured window")
    parser.add_argument("--viewers", type=int, default=2, help="view-only viewers at once")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the recording cases")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
