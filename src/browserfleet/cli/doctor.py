"""`browserfleet doctor`: check what a server needs (Chromium, each layer of the browser sandbox,
ffmpeg, data dir, blob storage, database, the Ray cluster if one is configured, port, host
capacity) and print one line per finding with what to fix. Never prints secrets.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from browserfleet.bootstrap import NO_ISOLATION_WARNING, headless_mode, sandbox_config
from browserfleet.browsers.enclosure import Enclosures
from browserfleet.browsers.host import HostEnclosures
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.capacity import MIB, CapacityPolicy, HostProbe, admit, headroom
from browserfleet.cli.doctor_cluster import check_cluster
from browserfleet.cli.doctor_storage import check_storage
from browserfleet.cli.findings import Finding, Status
from browserfleet.errors import BrowserLaunchFailed, DatabaseUnavailable
from browserfleet.sandbox import preflight
from browserfleet.sandbox.box import Sandbox
from browserfleet.sandbox.runner import SandboxRunner
from browserfleet.settings import BrowserMode, Isolation, Settings
from browserfleet.store.migrate import is_current

GIB = 1024 * MIB
LOW_DISK_BYTES = 2 * GIB
VERSION_TIMEOUT_S = 10.0
DATABASE_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 1.0
DOCTOR_SCREEN = (1280, 720)


def run(settings: Settings, _args: argparse.Namespace) -> int:
    """Run every check, print the findings; 0 when nothing failed, else 1."""
    findings = asyncio.run(diagnose(settings))
    sys.stdout.write("".join(f"{finding.line()}\n" for finding in findings))
    sys.stdout.flush()
    return exit_code(findings)


def exit_code(findings: Iterable[Finding]) -> int:
    return 1 if any(f.status is Status.FAIL for f in findings) else 0


async def diagnose(settings: Settings) -> list[Finding]:
    """Every finding, in the order an operator would fix them."""
    in_use, other = _binaries(settings)
    findings = [await check_binary(*in_use, required=True)]
    layers = await check_isolation(settings)
    findings += layers
    if findings[0].status is Status.OK and all(f.status is not Status.FAIL for f in layers):
        findings.append(await check_launch(settings))
    findings.append(await check_binary(*other, required=False))
    findings.append(await check_ffmpeg())
    findings.append(check_data_dir(settings.data_dir))
    findings.append(await check_storage(settings))
    findings.append(await check_database(settings.effective_database_url()))
    cluster = await check_cluster(settings.cluster)
    if cluster is not None:
        findings.append(cluster)
    findings.append(await check_port(settings.host, settings.port))
    findings.append(check_capacity(settings))
    return findings


def _binaries(settings: Settings) -> tuple[tuple[Path, str], tuple[Path, str]]:
    """The configured mode's binary (it must work), then the other one (nice to have)."""
    new = (settings.browser.chromium_path, "chromium")
    shell = (settings.browser.headless_shell_path, "headless shell")
    return (shell, new) if settings.browser.mode is BrowserMode.HEADLESS_SHELL else (new, shell)


async def check_binary(path: Path, role: str, *, required: bool) -> Finding:
    """A browser binary exists, is executable and tells its version."""
    check = f"{role} binary"
    status = Status.FAIL if required else Status.WARN
    if not _executable(path):
        return Finding(status, check, f"{path} is missing or not executable", _install_hint(role))
    version = await command_version([str(path), "--version"])
    if version is None:
        return Finding(status, check, f"{path} does not run `--version`", _install_hint(role))
    return Finding(Status.OK, check, f"{path}: {version}")


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _install_hint(role: str) -> str:
    package = "chromium" if role == "chromium" else "chromium-headless-shell"
    return f"install Debian's `{package}` (make system-deps) or set its path in the settings"


async def command_version(argv: list[str]) -> str | None:
    """The first line a `--version`-style command prints, or None if it fails or hangs."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        async with asyncio.timeout(VERSION_TIMEOUT_S):
            out, _ = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return None
    lines = out.decode(errors="replace").strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None


async def check_ffmpeg() -> Finding:
    """ffmpeg is on the PATH (recording needs it; sessions run without it)."""
    path = shutil.which("ffmpeg")
    fix = "install ffmpeg (apt install ffmpeg): session recording needs it"
    if path is None:
        return Finding(Status.WARN, "ffmpeg", "not found on PATH", fix)
    version = await command_version([path, "-version"])
    if version is None:
        return Finding(Status.WARN, "ffmpeg", f"{path} does not run `-version`", fix)
    return Finding(Status.OK, "ffmpeg", f"{path}: {version}")


async def check_isolation(settings: Settings) -> list[Finding]:
    """One finding per layer of the browser sandbox (or one warning: no sandbox at all)."""
    if settings.sandbox.isolation is Isolation.NONE:
        return [Finding(Status.WARN, "isolation", NO_ISOLATION_WARNING, "drop --isolation none")]
    findings = []
    for layer in await preflight.check(sandbox_config(settings)):
        status = Status.OK if layer.ok else Status.FAIL
        findings.append(Finding(status, f"sandbox/{layer.layer}", layer.detail, layer.fix))
    return findings


def _enclosures(settings: Settings) -> Enclosures:
    if settings.sandbox.isolation is Isolation.NONE:
        return HostEnclosures(no_sandbox=settings.browser.no_sandbox)
    runner = SandboxRunner(sandbox_config(settings))
    runner.prepare()
    return runner


async def check_launch(settings: Settings) -> Finding:
    """Start the configured browser for real (CDP up, viewport checked), then close it. In a
    sandbox, also check that its renderers run in Chromium's own sandbox (seccomp filter)."""
    enclosures = _enclosures(settings)
    try:
        return await _launch(settings, enclosures)
    finally:
        if isinstance(enclosures, SandboxRunner):
            enclosures.close()


async def _launch(settings: Settings, enclosures: Enclosures) -> Finding:
    mode = headless_mode(settings)
    launcher = LocalChromiumLauncher(
        settings.browser.chromium_path,
        settings.browser.headless_shell_path,
        enclosures=enclosures,
        launch_timeout_s=settings.browser.launch_timeout_s,
    )
    spec = LaunchSpec(mode, *DOCTOR_SCREEN, extra_args=tuple(settings.browser.extra_args))
    # Inside the data dir when we may write there, so the browser's files stay with ours.
    parent = settings.data_dir if _writable_dir(settings.data_dir) else None
    with tempfile.TemporaryDirectory(prefix="doctor-", dir=parent) as scratch:
        started = time.monotonic()
        try:
            async with await launcher.launch(spec, Path(scratch) / "browser") as browser:
                elapsed = time.monotonic() - started
                unsandboxed = await asyncio.to_thread(_unsandboxed_renderers, browser)
        except BrowserLaunchFailed as error:
            reason = str(error).splitlines()[0]
            fix = "run the binary by hand to see why; check no_sandbox and extra_args"
            return Finding(Status.FAIL, "browser launch", reason, fix)
    if unsandboxed:
        return Finding(
            Status.FAIL,
            "browser launch",
            f"renderer(s) {unsandboxed} run without Chromium's seccomp sandbox",
            "allow nested user namespaces (see sandbox/chromium)",
        )
    detail = f"{mode} browser with CDP ready in {elapsed * 1000:.0f} ms, closed"
    if elapsed > settings.browser.launch_timeout_s / 2:
        fix = "the host is slow or overloaded: launches are close to timing out"
        return Finding(Status.WARN, "browser launch", detail, fix)
    return Finding(Status.OK, "browser launch", detail)


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def check_data_dir(data_dir: Path) -> Finding:
    """The data dir exists (or can be created), is writable and has room."""
    check = "data dir"
    existing = _nearest_existing(data_dir)
    if existing != data_dir and not _writable_dir(existing):
        return Finding(
            Status.FAIL,
            check,
            f"{data_dir} does not exist and {existing} is not writable",
            "create it or pass --data-dir",
        )
    if existing == data_dir and not _writable_dir(data_dir):
        return Finding(
            Status.FAIL,
            check,
            f"{data_dir} is not a writable directory",
            "fix its owner or mode, or pass --data-dir",
        )
    free = shutil.disk_usage(existing).free
    state = "writable" if existing == data_dir else "will be created"
    detail = f"{data_dir} ({state}), {free / GIB:.1f} GiB free"
    if free < LOW_DISK_BYTES:
        return Finding(Status.WARN, check, detail, "free space: profiles and recordings need room")
    return Finding(Status.OK, check, detail)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def redact(url: str) -> str:
    """The database URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparsable database URL)"


async def check_database(url: str) -> Finding:
    """The database answers and its schema is this version's (read only: never migrates)."""
    shown = redact(url)
    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.exists():
        return Finding(
            Status.WARN,
            "database",
            f"{shown} does not exist yet",
            "`browserfleet migrate` creates it (`serve` does too)",
        )
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_S):
            current = await is_current(url)
    except Exception as error:  # any driver error: report it, never its message's secrets
        # DatabaseUnavailable's message is written to be shown (no URL, no statement).
        why = str(error) if isinstance(error, DatabaseUnavailable) else type(error).__name__
        return Finding(
            Status.FAIL,
            "database",
            f"{shown} unreachable ({why})",
            "check the URL, that the server runs and the credentials",
        )
    if not current:
        return Finding(
            Status.WARN,
            "database",
            f"{shown} schema is not this version's",
            "run `browserfleet migrate` (`serve` migrates at start)",
        )
    return Finding(Status.OK, "database", f"{shown} reachable, schema current")


def _sqlite_file(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


async def check_port(host: str, port: int) -> Finding:
    """The server could listen on host:port; if something already does, say whether it is us."""
    check, where = "port", f"{host}:{port}"
    try:
        _try_bind(host, port)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            return Finding(
                Status.FAIL,
                check,
                f"cannot listen on {where}: {error.strerror}",
                "choose another --host/--port",
            )
        who = "a browserfleet server" if await _is_browserfleet(host, port) else "another program"
        return Finding(
            Status.WARN, check, f"{where} is in use by {who}", "stop it or choose another --port"
        )
    return Finding(Status.OK, check, f"{where} is free")


def _try_bind(host: str, port: int) -> None:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        probe.bind(address)


async def _is_browserfleet(host: str, port: int) -> bool:
    target = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    try:
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            response = await client.get(f"http://{target}:{port}/healthz")
        return response.status_code == 200 and response.json() == {"status": "ok"}
    except (httpx.HTTPError, ValueError):
        return False


def check_capacity(settings: Settings) -> Finding:
    """What the host (or its cgroup) leaves for browsers right now."""
    snapshot = HostProbe().snapshot()
    policy = CapacityPolicy(max_browsers=settings.limits.host_max_browsers)
    limit = (
        f"limit {snapshot.memory_limit_bytes / GIB:.1f} GiB, "
        if snapshot.memory_limit_bytes is not None
        else ""
    )
    source = "cgroup v2" if snapshot.from_cgroup else "host"
    detail = (
        f"{source}: memory {limit}{snapshot.memory_available_bytes / GIB:.1f} GiB available, "
        f"{snapshot.cpus:g} CPUs, load {snapshot.load_per_cpu:.2f}/CPU; room for "
        f"{headroom(snapshot, 0, policy)} of {policy.max_browsers} browsers"
    )
    decision = admit(snapshot, 0, policy)
    if not decision.ok:
        return Finding(
            Status.WARN, "capacity", detail, f"no browser would start: {decision.reason}"
        )
    return Finding(Status.OK, "capacity", detail)


def _unsandboxed_renderers(browser: ChromiumProcess) -> list[int]:
    """Renderers of a sandboxed browser without a seccomp filter (none outside a sandbox)."""
    enclosure = browser.enclosure
    if not isinstance(enclosure, Sandbox):
        return []
    return [pid for pid in renderers_of(enclosure.cgroup.pids()) if seccomp_mode(pid) != 2]


def renderers_of(pids: Iterable[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        # A substring: Chromium rewrites its helpers' titles into one space-separated string.
        if b"--type=renderer" in cmdline:
            found.append(pid)
    return found


def seccomp_mode(pid: int) -> int | None:
    """/proc/<pid>/status Seccomp: 0 none, 1 strict, 2 filter (None: gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None
