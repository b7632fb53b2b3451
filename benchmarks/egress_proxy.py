"""Egress proxy cost: a large download through the proxy vs direct, and the latency it adds.

The origin is `python -m http.server` in its own process, the client is curl (so neither shares
the proxy's event loop); plain HTTP goes absolute-form, `--proxytunnel` forces a CONNECT tunnel.
Run: `.venv/bin/python -m benchmarks.egress_proxy [--mb 50] [--rounds 3] [--uvloop] [--reference]`.
`--reference` also measures a minimal splice(2) relay outside browserfleet
(`benchmarks.splice_reference`): the ratio it reaches is what this machine allows any proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from loopback import free_port

from browserfleet.proxy import DirectRoute, EgressGuard, EgressProxy

TARGET = 0.9  # proxy MB/s >= 0.9 x direct MB/s
LOOPBACK = DirectRoute(EgressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)))


@contextlib.contextmanager
def origin(mb: int) -> Iterator[str]:
    """A separate-process origin serving /big (mb × 10^6 bytes) and /small; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="bf-bench-egress-") as root:
        Path(root, "big").write_bytes(os.urandom(1_000_000) * mb)
        Path(root, "small").write_bytes(b"ok")
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_listening(port)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


async def curl(url: str, *options: str) -> tuple[float, float]:
    """(seconds, bytes per second) of one curl transfer, as curl itself measured them."""
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{time_total} %{speed_download}",
        *options,
        url,
        stdout=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"curl failed ({process.returncode}) for {url}")
    seconds, speed = out.decode().split()
    return float(seconds), float(speed)


async def interleaved(
    url: str, paths: dict[str, tuple[str, ...]], rounds: int, measure: int
) -> dict[str, list[float]]:
    """`rounds` curl runs per path, the paths taking turns (first place rotating each round) so
    that drift on a busy machine weighs on every path alike; measure 0: seconds, 1: bytes/s."""
    names = list(paths)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        turn = names[i % len(names) :] + names[: i % len(names)]
        for name in turn:
            samples[name].append((await curl(url, *paths[name]))[measure])
    return samples


@contextlib.contextmanager
def reference_relay() -> Iterator[int]:
    """The minimal splice relay in its own process; yields its port."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.splice_reference"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)


def verdict(ratio: float) -> str:
    return f"ratio {ratio:.2f}  (target >= {TARGET:.2f}: {'PASS' if ratio >= TARGET else 'MISS'})"


async def run(args: argparse.Namespace) -> None:
    with origin(args.mb) as base, contextlib.ExitStack() as stack:
        async with EgressProxy(LOOPBACK) as proxy:
            via = ("--proxy", f"http://127.0.0.1:{proxy.port}")
            paths: dict[str, tuple[str, ...]] = {
                "direct": (),
                "proxy, plain HTTP": via,
                "proxy, CONNECT": (*via, "--proxytunnel"),
            }
            if args.reference:
                port = stack.enter_context(reference_relay())
                paths["reference relay, CONNECT"] = (
                    "--proxy",
                    f"http://127.0.0.1:{port}",
                    "--proxytunnel",
                )
            speeds = await interleaved(f"{base}/big", paths, args.rounds, 1)
            times = await interleaved(f"{base}/small", paths, args.requests, 0)
            metered_mb = proxy.meter.total / 1e6
    best = {name: max(values) / 1e6 for name, values in speeds.items()}
    middle = {name: statistics.median(values) / 1e6 for name, values in speeds.items()}
    p50_ms = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(
        f"download of {args.mb} MB on loopback, {args.rounds} rounds, paths taking turns "
        "(MB/s best and median; ratio of the bests):"
    )
    for name in paths:
        line = f"  {name:26} {best[name]:8.1f} {middle[name]:8.1f}"
        if name != "direct":
            line += "   " + verdict(best[name] / best["direct"])
        print(line)
    print(f"small request, p50 of {args.requests} per path (ms):")
    for name in paths:
        added = "" if name == "direct" else f"   added {p50_ms[name] - p50_ms['direct']:+.2f}"
        print(f"  {name:26} {p50_ms[name]:6.2f}{added}")
    print(f"metered by the proxy: {metered_mb:.1f} MB")
    if args.reference:
        print(
            "(the reference relay is a minimal splice(2) relay outside browserfleet: what this "
            "machine allows any proxy)"
        )


def _wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("the origin did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as uvicorn does")
    parser.add_argument(
        "--reference", action="store_true", help="also measure a minimal splice relay"
    )
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed")
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
