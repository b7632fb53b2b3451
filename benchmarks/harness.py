"""What every benchmark needs: a browserfleet server, a bare Chromium, a loopback site, stats.

The benchmarks treat browserfleet as a black box (a client sees only HTTP, CDP and the data dir);
the one import from the package is the pure function that builds Chromium's switches, so the
bare baseline runs with exactly the switches browserfleet uses. The server process, the page
server, free_port and the resolver rule are the test suite's (tests/support), so benchmarks and
e2e tests start, await and stop a server the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from fleet_server import Server
from loopback import RESOLVER_RULES, free_port
from pages import PageServer

from browserfleet.browsers.chromium_args import chromium_args
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.sandbox.residue import Residue, find_residue
from browserfleet.sandbox.uids import UidLocks, UidRange
from browserfleet.settings import DEFAULT_UID_FIRST

API_KEY_HEADER = "X-Browser-Use-API-Key"
DEFAULT_CHROMIUM = Path("/usr/lib/chromium/chromium")
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
BROWSER_START_TIMEOUT_S = 30.0
# The servers benchmarks start keep the default sandbox uid range.
FLEET_UIDS = UidRange(DEFAULT_UID_FIRST, 1024)

# The bare baseline gets the very switches browserfleet gives its browsers (less the egress
# proxy): built by the same function, so the two can never drift apart.
BARE_SPEC = LaunchSpec(
    mode=HeadlessMode.NEW,
    screen_width=1920,
    screen_height=1080,
    # Nothing but loopback resolves: no benchmark can reach (or be slowed by) the outside world.
    extra_args=(RESOLVER_RULES,),
)


def bare_chromium_flags(profile_dir: Path) -> list[str]:
    """Switches of a bare Chromium, ending with its start page."""
    return chromium_args(BARE_SPEC, user_data_dir=profile_dir, no_sandbox=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- stats and tables


def percentile(samples: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), p in [0, 100]."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * p / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:], strict=True))]
        )

    print()
    if title:
        print(title)
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))
    sys.stdout.flush()


def machine_line() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"host: {os.cpu_count()} cpu(s), load avg {load}, python {sys.version.split()[0]}"


# ---------------------------------------------------------------- loopback site


def simple_page() -> bytes:
    return b"<!doctype html><title>bench</title><h1>browserfleet benchmark</h1><p>hello</p>"


def busy_page(seed: int = 7) -> bytes:
    """A page whose 1920x1080 PNG is large: noisy colours, gradients and text compress badly."""
    rng = random.Random(seed)
    cells = []
    for i in range(2400):
        hue, hue2 = rng.randrange(360), rng.randrange(360)
        words = " ".join(
            rng.choice(("lorem", "ipsum", "fleet", "cdp", "42", "zq")) for _ in range(3)
        )
        cells.append(
            f'<div style="background:linear-gradient({rng.randrange(360)}deg,'
            f"hsl({hue},80%,55%),hsl({hue2},70%,35%));"
            f'transform:rotate({rng.randrange(-20, 20)}deg)">{i} {words}</div>'
        )
    style = (
        "body{margin:0;font:11px sans-serif;display:flex;flex-wrap:wrap;width:1920px}"
        "div{width:38px;height:20px;overflow:hidden;color:#fff;border-radius:4px;margin:1px}"
    )
    return f"<!doctype html><title>busy</title><style>{style}</style>{''.join(cells)}".encode()


@contextlib.contextmanager
def loopback_site(pages: dict[str, bytes]) -> Iterator[str]:
    """Serve `pages` on 127.0.0.1 from a thread; yields the base URL (no trailing slash)."""
    with PageServer(pages) as server:
        yield server.base_url


# ---------------------------------------------------------------- processes


def chromium_pids_under(directory: Path) -> list[int]:
    """Pids of live Chromium processes whose command line mentions `directory` (leak check)."""
    needle = str(directory).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"chrom" in cmdline and needle in cmdline:
            found.append(int(proc.name))
    return found


def kill_pids(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def stop_process(proc: asyncio.subprocess.Process, timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL to the whole process group if it does not exit in time."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


def read_devtools_port(profile_dir: Path) -> int | None:
    """Chromium writes '<port>\\n<browser ws path>' to DevToolsActivePort once it listens."""
    try:
        lines = (profile_dir / "DevToolsActivePort").read_text().splitlines()
    except OSError:
        return None
    return int(lines[0]) if len(lines) >= 2 and lines[0].isdigit() else None


async def _devtools_get(port: int, path: str) -> object:
    """One GET to Chromium's DevTools HTTP server (raw: an httpx client costs more to build)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
        length = int(head.split("content-length:", 1)[1].split("\r\n", 1)[0])
        return json.loads(await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()


async def _wait_for_first_page(process: asyncio.subprocess.Process, profile_dir: Path) -> int:
    """Ready as browserfleet defines it: the port is announced and the start page is listed.

    Connecting earlier races Chromium's own about:blank navigation (goto fails ERR_ABORTED).
    """
    while True:
        if process.returncode is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} while starting")
        port = read_devtools_port(profile_dir)
        if port is not None:
            with contextlib.suppress(OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                targets = await _devtools_get(port, "/json/list")
                if isinstance(targets, list) and any(
                    isinstance(t, dict) and t.get("type") == "page" for t in targets
                ):
                    return port
        await asyncio.sleep(0.005)


@dataclass(slots=True)
class BareChromium:
    """One Chromium launched by hand, as a user without browserfleet would."""

    process: asyncio.subprocess.Process
    profile_dir: Path
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def launch(cls, chromium: Path) -> BareChromium:
        profile_dir = Path(tempfile.mkdtemp(prefix="bench-bare-"))
        process = await asyncio.create_subprocess_exec(
            str(chromium),
            *bare_chromium_flags(profile_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(BROWSER_START_TIMEOUT_S):
                port = await _wait_for_first_page(process, profile_dir)
        except BaseException:
            await stop_process(process, 5)
            shutil.rmtree(profile_dir, ignore_errors=True)
            raise
        return cls(process, profile_dir, port)

    async def stop(self) -> None:
        await stop_process(self.process, 10)
        # Children (renderers, zygotes) outlive the browser process briefly and may still write
        # to the profile: end the whole group, then remove the profile.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        shutil.rmtree(self.profile_dir, ignore_errors=True)
        if self.profile_dir.exists():
            await asyncio.sleep(0.05)
            shutil.rmtree(self.profile_dir, ignore_errors=True)


@dataclass(slots=True)
class Fleet:
    """A running browserfleet server, as its clients see it."""

    base_url: str
    api_key: str
    data_dir: Path

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v3"

    @property
    def headers(self) -> dict[str, str]:
        return {API_KEY_HEADER: self.api_key}


def browserfleet_command() -> list[str]:
    script = Path(sys.executable).parent / "browserfleet"
    if script.exists():
        return [str(script)]
    found = shutil.which("browserfleet")
    if found is None:
        raise SystemExit("browserfleet is not installed: run `make setup` first")
    return [found]


def read_stripped(path: Path) -> str:
    """The file's text without surrounding whitespace; '' while it does not exist."""
    try:
        return path.read_text(errors="replace").strip()
    except FileNotFoundError:
        return ""


@contextlib.asynccontextmanager
async def running_fleet(extra_env: dict[str, str] | None = None) -> AsyncIterator[Fleet]:
    """Run `browserfleet serve` on a free port and a temporary data dir; stop it, check leaks."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    log_file = data_dir.parent / f"{data_dir.name}.log"
    env = {
        **os.environ,
        "BROWSERFLEET_BROWSER__EXTRA_ARGS": json.dumps([RESOLVER_RULES]),
        # The egress guard refuses loopback by default; the test pages live there.
        "BROWSERFLEET_EGRESS__ALLOW_NETWORKS": json.dumps(["127.0.0.0/8"]),
        "BROWSERFLEET_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    server = Server(
        data_dir,
        free_port(),
        env,
        command=browserfleet_command(),
        log_path=log_file,
        ready_timeout=READY_TIMEOUT_S,
        uids=FLEET_UIDS,
    )
    clean = False
    try:
        # Server.start blocks (a subprocess and a readiness poll): keep the loop free meanwhile.
        await asyncio.to_thread(server.start)
        log(f"browserfleet ready at {server.url} (data dir {data_dir})")
        yield Fleet(server.url, server.key, data_dir)
        clean = True
    finally:
        code = await asyncio.to_thread(server.close)
        leaked = chromium_pids_under(data_dir)
        if leaked:
            log(f"WARNING: browserfleet left {len(leaked)} Chromium process(es) running; killing")
            kill_pids(leaked)
        if residue := unheld_residue():
            log("WARNING: sandbox leftovers:\n  " + "\n  ".join(residue.lines()))
            clean = False
        if code not in (0, -signal.SIGTERM):
            log(f"WARNING: browserfleet exited with {code}")
            clean = False
        if clean:
            log_file.unlink(missing_ok=True)
        else:
            log(f"server log kept at {log_file}; its tail:\n{read_stripped(log_file)[-3000:]}")
        shutil.rmtree(data_dir, ignore_errors=True)


def unheld_residue() -> Residue:
    """Sandbox leftovers of the fleets' uid range, but those of live servers (another fleet of
    the same benchmark, say): their uids are locked."""
    locks = UidLocks(Path("/run/browserfleet/uids"), FLEET_UIDS)
    found = find_residue(FLEET_UIDS)
    return found.without({uid for uid in found.uids() if locks.held(uid)})


async def create_session(
    client: httpx.AsyncClient, fleet: Fleet, body: dict[str, object]
) -> dict[str, object]:
    response = await client.post(f"{fleet.api_url}/browsers", json=body, headers=fleet.headers)
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text[:500]}")
    view: dict[str, object] = response.json()
    return view


async def stop_session(client: httpx.AsyncClient, fleet: Fleet, session_id: object) -> None:
    response = await client.patch(
        f"{fleet.api_url}/browsers/{session_id}", json={"action": "stop"}, headers=fleet.headers
    )
    if response.status_code != 200:
        raise RuntimeError(f"stop failed: {response.status_code} {response.text[:500]}")
