"""How the server reaches a sandboxed browser's DevTools: a websocket over a socket made inside
the sandbox's network namespace, against --remote-debugging-pipe (and a browser on the host's
loopback, for reference).

Run: python -m benchmarks.devtools_transport [-n 2000] [--shots 40] (as root: it builds a
sandbox). Three browsers with the same switches: one sandboxed (reached through its namespace),
one on the host over TCP, one on the host over a pipe pair (fds 3 and 4). Measured, alternating
round by round: opening a DevTools websocket (dial + upgrade), the round trip of
Runtime.evaluate("1+1"), and the MB/s of 1280x720 Page.captureScreenshot PNGs. The pipe carries
one connection only: a gateway on it would have to multiplex every client itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopback import RESOLVER_RULES
from websockets.asyncio.client import ClientConnection, connect

if __package__ in (None, ""):  # run as a file: python benchmarks/devtools_transport.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from browserfleet.bootstrap import sandbox_config
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp.dial import DevtoolsDialer, get_json
from browserfleet.sandbox.runner import SandboxRunner
from browserfleet.settings import Settings

SPEC = LaunchSpec(
    HeadlessMode.NEW,
    1280,
    720,
    extra_args=(RESOLVER_RULES,),
)
SHOT = {"format": "png", "clip": {"x": 0, "y": 0, "width": 1280, "height": 720, "scale": 1}}
EVAL = {"expression": "1+1", "returnByValue": True}


class WsChannel:
    """One flat-session CDP websocket, attached to the browser's first page."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws, self.session, self.next = ws, "", 0

    async def raw(self, method: str, params: dict[str, Any], session: str = "") -> dict[str, Any]:
        self.next += 1
        message: dict[str, Any] = {"id": self.next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send(json.dumps(message))
        while True:
            answer = json.loads(await self.ws.recv())
            if answer.get("id") == self.next:
                result: dict[str, Any] = answer["result"]
                return result

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.raw(method, params, self.session)


class PipeChannel:
    """CDP over --remote-debugging-pipe: NUL-terminated JSON on two pipes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.session, self.next = reader, writer, "", 0

    async def raw(self, method: str, params: dict[str, Any], session: str = "") -> dict[str, Any]:
        self.next += 1
        message: dict[str, Any] = {"id": self.next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        self.writer.write(json.dumps(message).encode() + b"\0")
        while True:
            answer = json.loads((await self.reader.readuntil(b"\0"))[:-1])
            if answer.get("id") == self.next:
                result: dict[str, Any] = answer["result"]
                return result

    async def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self.raw(method, params, self.session)


async def attach(channel: WsChannel | PipeChannel) -> None:
    targets = await channel.raw("Target.getTargets", {})
    page = next(t for t in targets["targetInfos"] if t["type"] == "page")
    attached = await channel.raw(
        "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}
    )
    channel.session = attached["sessionId"]


async def open_ws(dialer: DevtoolsDialer) -> ClientConnection:
    version = await get_json(dialer, "/json/version")
    assert isinstance(version, dict)
    return await connect(
        str(version["webSocketDebuggerUrl"]),
        sock=await dialer.connect(),
        max_size=None,
        compression=None,
        ping_interval=None,
        proxy=None,
    )


@dataclass
class PipeBrowser:
    process: subprocess.Popen[bytes]
    root: Path
    channel: PipeChannel

    @classmethod
    async def launch(cls, chromium: Path) -> PipeBrowser:
        root = Path(tempfile.mkdtemp(prefix="bench-pipe-"))
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()

        def wire() -> None:  # the child's fds 3 and 4 are the pipe ends Chromium expects
            high_in, high_out = os.dup(to_browser_r), os.dup(from_browser_w)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        flags = harness.bare_chromium_flags(root / "profile")
        flags = [f for f in flags if not f.startswith("--remote-debugging-")]
        process = subprocess.Popen(  # noqa: ASYNC220
            [str(chromium), *flags[:-1], "--remote-debugging-pipe", flags[-1]],
            preexec_fn=wire,  # noqa: PLW1509
            pass_fds=(3, 4),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**30)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(from_browser_r, "rb", 0)
        )
        transport, protocol = await loop.connect_write_pipe(
            asyncio.streams.FlowControlMixin, os.fdopen(to_browser_w, "wb", 0)
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        channel = PipeChannel(reader, writer)
        async with asyncio.timeout(harness.BROWSER_START_TIMEOUT_S):
            while True:  # the first page shows up a moment after the pipe answers
                targets = await channel.raw("Target.getTargets", {})
                if any(t["type"] == "page" for t in targets["targetInfos"]):
                    break
                await asyncio.sleep(0.05)
        await attach(channel)
        return cls(process, root, channel)

    def stop(self) -> None:
        self.channel.writer.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 9)
        self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Samples:
    connect: list[float] = field(default_factory=list)
    rtt: list[float] = field(default_factory=list)
    shot_bytes: int = 0
    shot_seconds: float = 0.0


async def timed(work: Awaitable[Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await work
    return time.perf_counter() - started, result


@contextlib.asynccontextmanager
async def three_browsers() -> AsyncIterator[tuple[dict[str, DevtoolsDialer], PipeBrowser]]:
    """A sandboxed and a host browser (reached by their dialers), and a pipe browser."""
    settings = Settings()
    runner = SandboxRunner(sandbox_config(settings))
    runner.prepare()
    paths = (settings.browser.chromium_path, settings.browser.headless_shell_path)
    sandboxed = LocalChromiumLauncher(*paths, enclosures=runner)
    host = LocalChromiumLauncher(*paths)
    scratch = Path(tempfile.mkdtemp(prefix="bench-transport-"))
    browsers: list[ChromiumProcess] = []
    pipe: PipeBrowser | None = None
    try:
        browsers.append(await sandboxed.launch(SPEC, scratch / "sandboxed"))
        browsers.append(await host.launch(SPEC, scratch / "host"))
        pipe = await PipeBrowser.launch(settings.browser.chromium_path)
        yield (
            {"sandbox netns ws": browsers[0].devtools, "host loopback ws": browsers[1].devtools},
            pipe,
        )
    finally:
        for browser in browsers:
            await browser.close()
        if pipe is not None:
            pipe.stop()
        runner.close()
        shutil.rmtree(scratch, ignore_errors=True)


async def measure(args: argparse.Namespace) -> dict[str, Samples]:
    async with three_browsers() as (dialers, pipe):
        channels: dict[str, WsChannel | PipeChannel] = {}
        try:
            for name, dialer in dialers.items():
                ws_channel = WsChannel(await open_ws(dialer))
                channels[name] = ws_channel
                await attach(ws_channel)
            channels["host pipe"] = pipe.channel
            samples = {name: Samples() for name in channels}
            await measure_connects(dialers, samples, args.connects)
            await measure_calls(channels, samples, args.n, args.shots)
            return samples
        finally:
            for channel in channels.values():
                if isinstance(channel, WsChannel):
                    await channel.ws.close()


async def measure_connects(
    dialers: dict[str, DevtoolsDialer], samples: dict[str, Samples], count: int
) -> None:
    harness.log(f"connect: {count} websocket opens per dialer")
    for _ in range(count):
        for name, dialer in dialers.items():
            seconds, ws = await timed(open_ws(dialer))
            samples[name].connect.append(seconds)
            await ws.close()


async def measure_calls(
    channels: dict[str, WsChannel | PipeChannel], samples: dict[str, Samples], n: int, shots: int
) -> None:
    harness.log(f"round trip: {n} Runtime.evaluate per path, alternating")
    for _ in range(n):
        for name, channel in channels.items():
            seconds, _ = await timed(channel.call("Runtime.evaluate", EVAL))
            samples[name].rtt.append(seconds)
    page = "data:text/html;base64," + base64.b64encode(harness.busy_page()).decode()
    for channel in channels.values():
        await channel.call("Page.navigate", {"url": page})
    harness.log(f"throughput: {shots} screenshots of a busy page per path")
    for _ in range(shots):
        for name, channel in channels.items():
            seconds, shot = await timed(channel.call("Page.captureScreenshot", SHOT))
            samples[name].shot_seconds += seconds
            samples[name].shot_bytes += len(shot["data"])


def report(samples: dict[str, Samples]) -> None:
    rows = []
    for name, s in samples.items():
        connect = (
            f"{harness.percentile(s.connect, 50) * 1e3:.2f}" if s.connect else "n/a (one pipe)"
        )
        rows.append(
            [
                name,
                connect,
                f"{harness.percentile(s.rtt, 50) * 1e3:.3f}",
                f"{harness.percentile(s.rtt, 99) * 1e3:.3f}",
                f"{s.shot_bytes / 1e6 / s.shot_seconds:.1f}",
            ]
        )
    harness.print_table(
        "DevTools transport",
        ["path", "open ws p50 ms", "eval p50 ms", "eval p99 ms", "screenshot MB/s"],
        rows,
    )
    print(harness.machine_line())


async def run(args: argparse.Namespace) -> None:
    report(await measure(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="round trips per path")
    parser.add_argument("--connects", type=int, default=200, help="websocket opens per dialer")
    parser.add_argument("--shots", type=int, default=40, help="screenshots per path")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
