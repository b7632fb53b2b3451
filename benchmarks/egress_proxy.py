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

from browserfleet.proxy import DirectRoute, EgressGuard, EgressProxy

LOOPBACK = DirectRoute(EgressGuard(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),)))


@contextlib.contextmanager
def origin(mb: int) -> Iterator[str]:
    """A separate-process origin serving /big (mb × 10^6 bytes) and /small; yields its base URL."""
    with tempfile.TemporaryDirectory(prefix="bf-bench-egress-") as root:
        Path(root, "big").write_bytes(os.urandom(1_000_000) * mb)
        Path(root, "small").write_bytes(b"ok")
        port = _free_port()
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


async def throughput(url: str, rounds: int, *options: str) -> float:
    """Best-of-rounds MB/s (10^6 bytes) for a download."""
    speeds = [(await curl(url, *options))[1] for _ in range(rounds)]
    return max(speeds) / 1e6


async def latency_ms(url: str, requests: int, *options: str) -> float:
    """p50 of a small request's total time, in milliseconds."""
    return statistics.median([(await curl(url, *options))[0] * 1000 for _ in range(requests)])


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


async def reference(base: str, args: argparse.Namespace, direct: float, base_ms: float) -> str:
    """Throughput and added latency of the reference relay as a CONNECT proxy, as a line."""
    with reference_relay() as port:
        tunnel = ("--proxy", f"http://127.0.0.1:{port}", "--proxytunnel")
        speed = await throughput(f"{base}/big", args.rounds, *tunnel)
        added_ms = await latency_ms(f"{base}/small", args.requests, *tunnel) - base_ms
    return (
        f"reference (a minimal splice(2) relay outside browserfleet), CONNECT: {speed:.1f} MB/s, "
        f"ratio {speed / direct:.2f}, small request +{added_ms:.2f} ms"
    )


async def run(args: argparse.Namespace) -> None:
    with origin(args.mb) as base:
        async with EgressProxy(LOOPBACK) as proxy:
            via = ("--proxy", f"http://127.0.0.1:{proxy.port}")
            tunnel = (*via, "--proxytunnel")
            direct = await throughput(f"{base}/big", args.rounds)
            plain = await throughput(f"{base}/big", args.rounds, *via)
            tunnelled = await throughput(f"{base}/big", args.rounds, *tunnel)
            base_ms = await latency_ms(f"{base}/small", args.requests)
            plain_ms = await latency_ms(f"{base}/small", args.requests, *via)
            tunnel_ms = await latency_ms(f"{base}/small", args.requests, *tunnel)
            metered_mb = proxy.meter.total / 1e6
        line = await reference(base, args, direct, base_ms) if args.reference else ""
    print(f"download of {args.mb} MB on loopback, best of {args.rounds} (MB/s, ratio to direct):")
    print(f"  direct            {direct:9.1f}")
    print(f"  proxy, plain HTTP {plain:9.1f}   ratio {plain / direct:.2f}  (target >= 0.90)")
    print(
        f"  proxy, CONNECT    {tunnelled:9.1f}   ratio {tunnelled / direct:.2f}  (target >= 0.90)"
    )
    print(f"small request, p50 of {args.requests} (ms):")
    print(f"  direct {base_ms:.2f}", end="; ")
    print(f"added: plain HTTP +{plain_ms - base_ms:.2f}, CONNECT +{tunnel_ms - base_ms:.2f}")
    print(f"metered by the proxy: {metered_mb:.1f} MB")
    if line:
        print(line)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
