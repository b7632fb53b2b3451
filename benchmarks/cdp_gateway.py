"""CDP gateway overhead: the same browser reached through browserfleet's gateway and directly.

Run: python -m benchmarks.cdp_gateway [-n 2000] [--shots 30]. One session; three raw websockets
(gateway: webSocketDebuggerUrl of {cdpUrl}/json/version; direct: the browser's own DevTools port
from its DevToolsActivePort file, dialed inside its sandbox's network namespace; byte relay: a
process that only copies bytes between the client and that same port, benchmarks/byte_relay.py,
the floor of any relay in between); calls alternate between them so drift weighs on all alike.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):  # run as a file: python benchmarks/cdp_gateway.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from browserfleet.cdp.dial import DevtoolsDialer, LoopbackDialer
from browserfleet.sandbox.reach import devtools_dialer, sandbox_uid

LATENCY_TARGET = 1.2  # gateway p50 <= 1.2 x direct p50
THROUGHPUT_TARGET = 0.9  # gateway MB/s >= 0.9 x direct MB/s
CALL_TIMEOUT_S = 60.0
SCREENSHOT = {
    "format": "png",
    "clip": {"x": 0, "y": 0, "width": 1920, "height": 1080, "scale": 1},
    "captureBeyondViewport": True,
}
BIG_STRING_CHARS = 4_000_000


class RawCdp:
    """A bare CDP connection attached (flat mode) to one page; counts the bytes it receives."""

    def __init__(self, ws: ClientConnection, session_id: str) -> None:
        self.ws = ws
        self.session_id = session_id
        self._next_id = 0

    @classmethod
    async def attach(cls, ws: ClientConnection) -> RawCdp:
        cdp = cls(ws, "")
        targets, _ = await cdp.call("Target.getTargets", browser_level=True)
        page = next(t for t in targets["targetInfos"] if t["type"] == "page")
        attached, _ = await cdp.call(
            "Target.attachToTarget",
            {"targetId": page["targetId"], "flatten": True},
            browser_level=True,
        )
        cdp.session_id = attached["sessionId"]
        return cdp

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, browser_level: bool = False
    ) -> tuple[dict[str, Any], int]:
        """Send one command and wait for its reply; returns (result, reply size in bytes)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if not browser_level:
            message["sessionId"] = self.session_id
        await self.ws.send(json.dumps(message))
        async with asyncio.timeout(CALL_TIMEOUT_S):
            while True:
                raw = await self.ws.recv()
                reply = json.loads(raw)
                if reply.get("id") == self._next_id:
                    break
        if "error" in reply:
            raise RuntimeError(f"{method} failed: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result, len(raw)


@dataclass(slots=True)
class Samples:
    seconds: list[float]
    nbytes: int = 0

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / sum(self.seconds) if self.seconds else 0.0


async def timed(
    cdp: RawCdp, samples: Samples, method: str, params: dict[str, Any]
) -> dict[str, Any]:
    start = time.perf_counter()
    result, size = await cdp.call(method, params)
    samples.seconds.append(time.perf_counter() - start)
    samples.nbytes += size
    return result


async def alternate(
    paths: dict[str, RawCdp], count: int, method: str, params: dict[str, Any]
) -> dict[str, Samples]:
    """`count` calls on each path, alternating which path goes first each round."""
    out = {name: Samples([]) for name in paths}
    names = list(paths)
    for i in range(count):
        for name in names if i % 2 == 0 else reversed(names):
            await timed(paths[name], out[name], method, params)
    return out


def png_size(result: dict[str, Any]) -> tuple[int, int, int]:
    png = base64.b64decode(result["data"])
    width, height = struct.unpack(">II", png[16:24])
    return width, height, len(png)


def direct_endpoint(
    data_dir: Path, session_id: str, gateway_url: str
) -> tuple[str, DevtoolsDialer]:
    """The browser's own endpoint (from its DevToolsActivePort file) and how to dial it: inside
    its sandbox's network namespace, or on the host's loopback for a browser without one."""
    browser_path = "/devtools/browser/" + gateway_url.rsplit("/devtools/browser/", 1)[-1]
    workdir = data_dir / "sessions" / session_id
    lines = harness.read_stripped(workdir / "profile" / "DevToolsActivePort").splitlines()
    if len(lines) < 2 or lines[1] != browser_path:
        raise SystemExit(f"{workdir} holds no DevToolsActivePort naming {browser_path}")
    dialer: DevtoolsDialer = (
        devtools_dialer(workdir)
        if sandbox_uid(workdir) is not None
        else LoopbackDialer(int(lines[0]))
    )
    return f"ws://127.0.0.1:{lines[0]}{lines[1]}", dialer


async def load_busy_page(cdp: RawCdp, url: str) -> None:
    await cdp.call("Page.navigate", {"url": url})
    probe = {"expression": "document.readyState + '|' + document.title", "returnByValue": True}
    for _ in range(600):
        state, _ = await cdp.call("Runtime.evaluate", probe)
        if state["result"].get("value") == "complete|busy":
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{url} did not load")


def latency_report(lat: dict[str, Samples], runs: int) -> None:
    rows = []
    for name, samples in lat.items():
        s = samples.seconds
        rows.append([name, *(f"{harness.percentile(s, p) * 1e6:.0f}" for p in (50, 90, 99))])

    def ratios(a: str, b: str) -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]  # two percentiles, two ratios
            harness.ratio(
                harness.percentile(lat[a].seconds, p), harness.percentile(lat[b].seconds, p)
            )
            for p in (50, 99)
        )

    p50, p99 = ratios("gateway", "direct")
    rows.append(["ratio gateway/direct", f"{p50:.2f}x", "", f"{p99:.2f}x"])
    if "byte relay" in lat:
        for a, b in (("byte relay", "direct"), ("gateway", "byte relay")):
            r50, r99 = ratios(a, b)
            rows.append([f"ratio {a}/{b}", f"{r50:.2f}x", "", f"{r99:.2f}x"])
    harness.print_table(
        f'CDP round trip, Runtime.evaluate "1+1", microseconds, {runs} alternating calls per path',
        ["path", "p50", "p90", "p99"],
        rows,
    )
    print(
        f"target: gateway p50 <= {LATENCY_TARGET:.1f}x direct -> {p50:.2f}x "
        f"{harness.verdict(p50 <= LATENCY_TARGET)}"
    )


def throughput_report(title: str, samples: dict[str, Samples], target: bool) -> None:
    rows = []
    for name, s in samples.items():
        rows.append(
            [
                name,
                f"{s.mb_per_s:.1f}",
                f"{harness.percentile(s.seconds, 50) * 1000:.1f}",
                f"{harness.percentile(s.seconds, 99) * 1000:.1f}",
                f"{s.nbytes / len(s.seconds) / 1e6:.2f}",
            ]
        )
    r = harness.ratio(samples["gateway"].mb_per_s, samples["direct"].mb_per_s)
    rows.append(["ratio gateway/direct", f"{r:.2f}x", "", "", ""])
    harness.print_table(title, ["path", "MB/s", "p50 ms", "p99 ms", "MB/msg"], rows)
    if target:
        print(
            f"target: gateway MB/s >= {THROUGHPUT_TARGET:.1f}x direct -> {r:.2f}x "
            f"{harness.verdict(r >= THROUGHPUT_TARGET)}"
        )
    else:
        print("(informational: relay cost without PNG encoding; no target)")


async def measure(fleet: harness.Fleet, args: argparse.Namespace, busy_url: str) -> None:
    body: dict[str, object] = {"proxyCountryCode": None} if args.no_proxy else {}
    async with httpx.AsyncClient(timeout=60.0) as client:
        view = await harness.create_session(client, fleet, body)
        try:
            version = (await client.get(f"{view['cdpUrl']}/json/version")).json()
            gateway_url = str(version["webSocketDebuggerUrl"])
            direct_url, dialer = direct_endpoint(fleet.data_dir, str(view["id"]), gateway_url)
            harness.log(f"gateway {gateway_url}\n           direct  {direct_url} ({dialer})")
            options: dict[str, Any] = {"max_size": None, "compression": None, "ping_interval": None}
            workdir = fleet.data_dir / "sessions" / str(view["id"])
            with byte_relay(workdir) as relay_port:
                relay_url = gateway_url.replace(
                    gateway_url.split("/devtools/", 1)[0], f"ws://127.0.0.1:{relay_port}", 1
                )
                async with (
                    connect(gateway_url, **options) as gw,
                    connect(direct_url, sock=await dialer.connect(), proxy=None, **options) as dr,
                    connect(relay_url, proxy=None, **options) as relay,
                ):
                    paths = {
                        "direct": await RawCdp.attach(dr),
                        "gateway": await RawCdp.attach(gw),
                        "byte relay": await RawCdp.attach(relay),
                    }
                    await run_measurements(paths, args, busy_url)
        finally:
            await harness.stop_session(client, fleet, view["id"])


@contextlib.contextmanager
def byte_relay(workdir: Path) -> Iterator[int]:
    """benchmarks/byte_relay.py serving this browser: its port, while the block runs."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.byte_relay", str(workdir)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise RuntimeError(f"byte relay did not start: {line!r}")
        yield int(line)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def run_measurements(
    paths: dict[str, RawCdp], args: argparse.Namespace, busy_url: str
) -> None:
    one_plus_one = {"expression": "1+1", "returnByValue": True}
    await alternate(paths, args.warmup, "Runtime.evaluate", one_plus_one)
    harness.log(f"latency: {args.runs} calls per path")
    latency = await alternate(paths, args.runs, "Runtime.evaluate", one_plus_one)

    await load_busy_page(paths["gateway"], busy_url)
    first, _ = await paths["direct"].call("Page.captureScreenshot", SCREENSHOT)
    width, height, png_bytes = png_size(first)
    harness.log(f"throughput: {args.shots} screenshots per path, {width}x{height}, {png_bytes} B")
    await alternate(paths, 2, "Page.captureScreenshot", SCREENSHOT)
    shots = await alternate(paths, args.shots, "Page.captureScreenshot", SCREENSHOT)

    big = {"expression": f"'x'.repeat({BIG_STRING_CHARS})", "returnByValue": True}
    await alternate(paths, 2, "Runtime.evaluate", big)
    strings = await alternate(paths, args.shots, "Runtime.evaluate", big)

    latency_report(latency, args.runs)
    throughput_report(
        f"large messages: Page.captureScreenshot {width}x{height} PNG of a busy page "
        f"({png_bytes / 1e6:.2f} MB PNG, base64 in JSON), {args.shots} per path",
        shots,
        target=True,
    )
    throughput_report(
        f"large messages: Runtime.evaluate returning a {BIG_STRING_CHARS / 1e6:.0f} MB string, "
        f"{args.shots} per path",
        strings,
        target=False,
    )
    print(harness.machine_line())


async def run(args: argparse.Namespace) -> None:
    pages = {"/busy": harness.busy_page()}
    with harness.loopback_site(pages) as site:
        async with harness.running_fleet() as fleet:
            await measure(fleet, args, f"{site}/busy")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=2000, help="round trips per path (2000)")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured round trips (200)")
    parser.add_argument("--shots", type=int, default=20, help="screenshots per path (20)")
    parser.add_argument(
        "--no-proxy",
        action="store_true",
        help='create with {"proxyCountryCode": null} instead of the SDK default body {}',
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.shots < 1:
        parser.error("--runs and --shots must be at least 1")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
