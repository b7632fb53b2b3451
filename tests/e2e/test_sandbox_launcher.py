"""Sandboxed Chromium, launched by the real launcher: what the browser runs as, sees and can
reach, and that nothing of it survives a close, a failed or cancelled launch, or a server killed
at any moment. Checked from the host through /proc, as the kernel sees the sandbox.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from loopback import RESOLVER_RULES
from sandboxes import (
    CHROMIUM,
    HEADLESS_SHELL,
    LIMITS,
    SANDBOX_NICE,
    TEST_UIDS,
    UID_FIRST_ENV,
    make_runner,
)

from browserfleet.browsers.geometry import TASKBAR_HEIGHT
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp.client import CdpConnection
from browserfleet.cdp.dial import get_json
from browserfleet.errors import BrowserLaunchFailed
from browserfleet.proxy import DirectRoute, EgressGuard, EgressProxy
from browserfleet.sandbox.box import Sandbox
from browserfleet.sandbox.residue import find_residue, uid_processes
from browserfleet.sandbox.runner import SandboxRunner
from browserfleet.settings import MIB

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SUPPORT = Path(__file__).resolve().parents[1] / "support"
# /dev holds bubblewrap's device nodes; everything else the browser may write is its own.
WRITABLE = {"/session", "/tmp", "/dev/shm", "/proc", "/dev", "/dev/pts"}
DEVICES = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}


def spec_for(mode: HeadlessMode = HeadlessMode.NEW) -> LaunchSpec:
    return LaunchSpec(mode, 1280, 720, extra_args=(RESOLVER_RULES,))


@pytest.fixture(scope="module")
def runner() -> Iterator[SandboxRunner]:
    made = make_runner()
    yield made
    made.close()


@pytest.fixture(scope="module")
def launcher(runner: SandboxRunner) -> LocalChromiumLauncher:
    return LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, enclosures=runner)


@pytest.fixture(scope="module")
def root(suite_resources: Any) -> Path:
    path: Path = suite_resources.new_data_dir()
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def running(launcher: LocalChromiumLauncher, root: Path) -> AsyncIterator[ChromiumProcess]:
    """A browser with its egress proxy, as a session's."""
    proxy = EgressProxy(DirectRoute(EgressGuard()))
    try:
        browser = await launcher.launch(spec_for(), root / "looked-at", egress=proxy)
        async with browser:
            yield browser
    finally:
        await proxy.aclose()


def sandbox_of(browser: ChromiumProcess) -> Sandbox:
    enclosure = browser.enclosure
    assert isinstance(enclosure, Sandbox)
    return enclosure


def main_pid(sandbox: Sandbox) -> int:
    for pid in sandbox.cgroup.pids():
        args = cmdline(pid)
        binaries = (str(CHROMIUM), str(HEADLESS_SHELL))
        if args and args[0] in binaries and not any(a.startswith("--type=") for a in args):
            return pid
    raise AssertionError("no Chromium browser process in the sandbox")


def is_renderer(pid: int) -> bool:
    # Chromium rewrites a helper's title into one string: look for a substring.
    return "--type=renderer" in " ".join(cmdline(pid))


def text(path: Path | str) -> str:
    """A /proc file (instant to read, no thread needed)."""
    return Path(path).read_text()


def names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def status(pid: int, field: str) -> list[str]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return line.split()[1:]
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def wait_until(check: Callable[[], object], timeout_s: float) -> None:
    """Poll outside state (the process table, mounts) that no event announces."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


def nothing_left_of(uid: int, workdir: Path, runner: SandboxRunner) -> None:
    residue = find_residue({uid})
    assert not residue, residue.lines()
    assert not workdir.exists(), "the workdir was not removed"
    assert not runner.staging(uid).exists(), "the staging mount point was not removed"
    lease = runner.locks.try_acquire(uid)
    assert lease is not None, f"uid {uid} is still held"
    lease.release()


# ---- who the browser is ---------------------------------------------------------------------


async def test_every_process_runs_as_one_sandbox_uid_never_root_nor_ours(
    running: ChromiumProcess,
) -> None:
    sandbox = sandbox_of(running)
    pids = sandbox.cgroup.pids()
    assert len(pids) >= 5, "bubblewrap, chromium and its helpers"
    assert sandbox.uid in TEST_UIDS and sandbox.uid not in (0, os.getuid())
    own_userns = os.readlink(f"/proc/{main_pid(sandbox)}/ns/user")
    assert own_userns != os.readlink("/proc/self/ns/user")
    for pid in pids:
        assert status(pid, "Uid") == [str(sandbox.uid)] * 4, cmdline(pid)
        assert status(pid, "Gid") == [str(sandbox.uid)] * 4, cmdline(pid)
        # Capabilities only inside a user namespace of its own (Chromium's zygote nests one).
        if os.readlink(f"/proc/{pid}/ns/user") == own_userns:
            assert status(pid, "CapEff") == ["0000000000000000"], cmdline(pid)
    # Chromium starts and ends helpers at any time: the uid's processes and the cgroup's members
    # are two reads, so compare them until one pair of reads agrees (a process of the uid
    # outside the cgroup would never let them).
    async with asyncio.timeout(10):
        while set(uid_processes({sandbox.uid})) != sandbox.cgroup.pids():
            await asyncio.sleep(0.05)


async def test_the_sandbox_leads_a_process_group_of_its_own_in_the_servers_session(
    running: ChromiumProcess,
) -> None:
    assert os.getpgid(running.pid) == running.pid != os.getpgrp()  # bubblewrap leads it
    assert os.getsid(running.pid) == os.getsid(0)


def niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[16])  # field 19 of proc(5); the list starts at field 3


async def test_every_process_yields_the_cpu_to_the_server(running: ChromiumProcess) -> None:
    """The server (API and CDP gateway) keeps its priority over every browser it runs."""
    pids = sandbox_of(running).cgroup.pids()
    assert len(pids) >= 5
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    assert {pid: niceness(pid) for pid in pids} == dict.fromkeys(pids, ours + SANDBOX_NICE)


async def test_renderers_keep_chromiums_own_sandbox(running: ChromiumProcess) -> None:
    sandbox = sandbox_of(running)
    browser = main_pid(sandbox)
    assert "--no-sandbox" not in cmdline(browser)
    renderers = [p for p in sandbox.cgroup.pids() if is_renderer(p)]
    assert renderers
    for pid in renderers:
        assert status(pid, "Seccomp") == ["2"], "a seccomp-bpf filter"
        # Chromium's namespace sandbox nests a user namespace of its own.
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink(f"/proc/{browser}/ns/user")
    assert os.readlink(f"/proc/{browser}/ns/user") != os.readlink("/proc/self/ns/user")


# ---- what it sees -----------------------------------------------------------------------------


async def test_the_filesystem_is_the_system_read_only_and_its_own_session(
    running: ChromiumProcess, root: Path
) -> None:
    view = Path(f"/proc/{main_pid(sandbox_of(running))}/root")
    assert names(view) == [
        "bin", "dev", "etc", "lib", "lib64", "proc", "sbin", "session", "tmp", "usr", "var",
    ]  # fmt: skip
    assert names(view / "etc") == [
        "chromium", "fonts", "group", "hosts", "ld.so.cache", "localtime", "nsswitch.conf",
        "passwd", "ssl",
    ]  # fmt: skip
    passwd = text(view / "etc" / "passwd")
    assert "browser:x:1000:1000" in passwd
    assert "root:x:0:0:root:/root" not in passwd
    for hidden in (root, Path("/root"), Path("/home"), Path("/run"), Path("/sys"), Path("/boot")):
        assert not (view / hidden.relative_to("/")).exists(), hidden
    assert names(view / "session") == sorted(
        ["cache", "chromium.log", "config", "downloads", "home", "profile", "uploads"]
    )


async def test_only_its_session_tmp_and_shm_are_writable(running: ChromiumProcess) -> None:
    pid = main_pid(sandbox_of(running))
    writable = set()
    flags = {}
    for line in text(f"/proc/{pid}/mountinfo").splitlines():
        fields = line.split()
        flags[fields[4]] = fields[5].split(",")
        if "rw" in flags[fields[4]]:
            writable.add(fields[4])
    assert writable - DEVICES == WRITABLE
    assert "noexec" in flags["/session"], "nothing the tenant writes there can be run"


def tmpfs_size(path: Path) -> int:
    found = os.statvfs(path)
    return found.f_blocks * found.f_frsize


async def test_its_tmp_shm_and_session_are_capped_at_their_settings(
    running: ChromiumProcess,
) -> None:
    """The caps are the kernel's (tmpfs sizes), seen through the browser's own mount namespace;
    filling /tmp past its cap, as the sandbox's uid, fails there (the host's root cannot even
    create a file there: it has no uid in the sandbox's user namespace)."""
    sandbox = sandbox_of(running)
    root = Path(f"/proc/{main_pid(sandbox)}/root")
    sizes = {name: tmpfs_size(root / name) for name in ("tmp", "dev/shm", "session")}
    assert sizes == {
        "tmp": LIMITS.tmp_bytes,
        "dev/shm": LIMITS.shm_bytes,
        "session": LIMITS.disk_bytes,
    }
    filler = root / "tmp" / "filler"
    with pytest.raises(OSError) as refused:
        filler.open("wb")
    assert refused.value.errno == errno.EOVERFLOW
    count = f"count={LIMITS.tmp_bytes // MIB + 1}"
    dd = ["dd", "if=/dev/zero", f"of={filler}", "bs=1M", count]
    fill = await asyncio.to_thread(as_uid, sandbox.uid, dd)
    try:
        assert fill.returncode != 0 and "No space left on device" in fill.stderr, fill.stderr
        assert 0 < filler.stat().st_size <= LIMITS.tmp_bytes
    finally:
        removed = await asyncio.to_thread(as_uid, sandbox.uid, ["rm", "-f", str(filler)])
        assert removed.returncode == 0, removed.stderr


def as_uid(uid: int, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """argv run as that uid (and its group), nothing else of ours."""
    ids = [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}  # English errors
    return subprocess.run(
        ["setpriv", *ids, *argv], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def alive(proc_dir: Path) -> bool:
    """Not a zombie: an exited process leaves its cgroup but stays in /proc until reaped."""
    try:
        stat = (proc_dir / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


async def test_proc_shows_only_the_sandboxs_processes(running: ChromiumProcess) -> None:
    sandbox = sandbox_of(running)
    view = Path(f"/proc/{main_pid(sandbox)}/root/proc")
    # Chromium may start or end a helper process between two reads: compare a view of the
    # pid namespace (zombies aside) taken while the cgroup's membership stayed the same.
    async with asyncio.timeout(10):
        while True:
            before = sandbox.cgroup.pids()
            inside = {int(name) for name in names(view) if name.isdigit() and alive(view / name)}
            if sandbox.cgroup.pids() == before:
                break
            await asyncio.sleep(0.05)
    assert 1 in inside, "bubblewrap is init of its own pid namespace"
    assert len(inside) == len(before) - 1, "all but the outer bubblewrap"


async def test_its_network_is_loopback_holding_devtools_and_its_proxy_listener(
    running: ChromiumProcess,
) -> None:
    pid = main_pid(sandbox_of(running))
    interfaces = [
        line.split(":")[0].strip() for line in text(f"/proc/{pid}/net/dev").splitlines()[2:]
    ]
    assert interfaces == ["lo"]
    listening = set()
    for line in text(f"/proc/{pid}/net/tcp").splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A":  # LISTEN
            listening.add(int(local.split(":")[1], 16))
    assert listening == {running.devtools.port, 8080}


async def test_the_environment_holds_nothing_of_the_servers(running: ChromiumProcess) -> None:
    pid = main_pid(sandbox_of(running))
    environ = text(f"/proc/{pid}/environ").split("\0")
    variables = {entry.split("=", 1)[0] for entry in environ if entry}
    assert variables <= {
        "HOME", "TMPDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "PATH", "PWD", "LANG",
        "LANGUAGE", "LC_ALL", "TZ", "CHROME_DESKTOP", "CHROME_WRAPPER",
    }  # fmt: skip
    assert "HOME" in variables and not any(n.startswith("BROWSERFLEET_") for n in variables)


async def test_its_caps_are_written(running: ChromiumProcess) -> None:
    cgroup = sandbox_of(running).cgroup
    assert (cgroup.pids_dir / "pids.max").read_text().strip() == str(LIMITS.pids)
    memory = cgroup.memory_dir / (
        "memory.limit_in_bytes"
        if (cgroup.memory_dir / "memory.limit_in_bytes").exists()
        else "memory.max"
    )
    assert memory.read_text().strip() == str(LIMITS.memory_bytes)
    workdir = os.statvfs(running.workdir)
    assert workdir.f_blocks * workdir.f_frsize == LIMITS.disk_bytes


@pytest.mark.parametrize("mode", [HeadlessMode.NEW, HeadlessMode.SHELL])
async def test_the_first_page_has_the_spec_size_in_a_sandbox(
    launcher: LocalChromiumLauncher, root: Path, mode: HeadlessMode
) -> None:
    spec = replace(spec_for(mode), screen_width=1024, screen_height=640)
    async with await launcher.launch(spec, root / f"size-{mode}") as browser:
        version = await get_json(browser.devtools, "/json/version")
        targets = await get_json(browser.devtools, "/json/list")
        assert isinstance(version, dict) and isinstance(targets, list)
        (page,) = [t for t in targets if t["type"] == "page"]
        ws_url = str(version["webSocketDebuggerUrl"])
        async with CdpConnection.connect(ws_url, dialer=browser.devtools) as cdp:
            attached = await cdp.call(
                "Target.attachToTarget", {"targetId": page["id"], "flatten": True}
            )
            expression = "[screen.width, screen.height, innerWidth, innerHeight]"
            params = {"expression": expression, "returnByValue": True}
            answer = await cdp.call(
                "Runtime.evaluate", params, session_id=str(attached["sessionId"])
            )
    # The desktop geometry of browsers/geometry.py: the spec's size is the screen; the window is
    # maximized on the screen less its taskbar; the viewport is the window less the browser's UI
    # (none in the headless shell).
    screen_width, screen_height, inner_width, inner_height = answer["result"]["value"]  # type: ignore[index]
    work_height = 640 - TASKBAR_HEIGHT
    assert (screen_width, screen_height, inner_width) == (1024, 640, 1024)
    if mode is HeadlessMode.SHELL:
        assert inner_height == work_height
    else:
        assert 0 < work_height - inner_height <= 150, "the tab strip and toolbar"


async def test_two_sandboxes_share_no_uid_network_or_files(
    running: ChromiumProcess, launcher: LocalChromiumLauncher, root: Path
) -> None:
    first = sandbox_of(running)
    async with await launcher.launch(spec_for(HeadlessMode.SHELL), root / "second") as other:
        second = sandbox_of(other)
        assert first.uid != second.uid
        a, b = main_pid(first), main_pid(second)
        assert os.readlink(f"/proc/{a}/ns/net") != os.readlink(f"/proc/{b}/ns/net")
        assert os.readlink(f"/proc/{a}/ns/mnt") != os.readlink(f"/proc/{b}/ns/mnt")
        (running.workdir / "downloads" / "mine").write_text("first")
        try:
            assert not (Path(f"/proc/{b}/root/session/downloads") / "mine").exists()
        finally:
            (running.workdir / "downloads" / "mine").unlink()


# ---- nothing left behind ----------------------------------------------------------------------


async def test_close_leaves_no_process_mount_cgroup_file_or_lock(
    launcher: LocalChromiumLauncher, runner: SandboxRunner, root: Path
) -> None:
    workdir = root / "closed"
    browser = await launcher.launch(spec_for(), workdir)
    sandbox = sandbox_of(browser)
    assert find_residue({sandbox.uid}).processes and find_residue({sandbox.uid}).mounts
    await browser.close()
    nothing_left_of(sandbox.uid, workdir, runner)
    assert await browser.wait_closed() == -9


async def test_a_cancelled_launch_leaves_nothing(
    launcher: LocalChromiumLauncher, runner: SandboxRunner, root: Path, running: ChromiumProcess
) -> None:
    busy = {sandbox_of(running).uid}
    workdir = root / "cancelled"

    def new_uid() -> set[int]:
        return set(find_residue(TEST_UIDS).processes.values()) - busy

    async with asyncio.TaskGroup() as group:
        launch = group.create_task(launcher.launch(spec_for(), workdir))
        await wait_until(new_uid, 20)  # cancel once the sandbox runs: the hardest moment
        (uid,) = new_uid()
        launch.cancel()
    assert launch.cancelled()
    nothing_left_of(uid, workdir, runner)


async def test_a_launch_that_times_out_leaves_nothing(runner: SandboxRunner, root: Path) -> None:
    hasty = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, enclosures=runner, launch_timeout_s=0.2)
    before = set(find_residue(TEST_UIDS).processes.values())
    with pytest.raises(BrowserLaunchFailed, match=r"timed out after 0\.2s"):
        await hasty.launch(spec_for(), root / "hasty")
    assert set(find_residue(TEST_UIDS).processes.values()) == before
    assert not (root / "hasty").exists()


async def test_a_browser_that_exits_at_start_fails_with_its_log(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    spec = replace(spec_for(HeadlessMode.SHELL), extra_args=("--version",))
    with pytest.raises(BrowserLaunchFailed, match=r"exited with code 0[\s\S]*Chromium 156"):
        await launcher.launch(spec, root / "exits")
    assert not (root / "exits").exists()


# A server that dies: by SIGKILL, with a browser running or while bubblewrap still waits.
SERVER = """
import asyncio, os, sys
from pathlib import Path
from sandboxes import CHROMIUM, HEADLESS_SHELL, make_runner
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import LocalChromiumLauncher

async def main():
    runner = make_runner()
    workdir = Path(sys.argv[1])
    if sys.argv[2] == "running":
        launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, enclosures=runner)
        spec = LaunchSpec(HeadlessMode.SHELL, 800, 600, extra_args=(sys.argv[3],))
        browser = await launcher.launch(spec, workdir)
        uid = browser.enclosure.uid
    else:  # bubblewrap blocked on its --block-fd, never released
        sandbox = await runner.open(workdir)
        log = os.open("/dev/null", os.O_WRONLY)
        await sandbox.spawn(["/usr/bin/sleep", "600"], log)
        uid = sandbox.uid
    print(uid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


async def start_server(workdir: Path, stage: str) -> tuple[asyncio.subprocess.Process, int]:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SERVER,
        str(workdir),
        stage,
        RESOLVER_RULES,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(SUPPORT), UID_FIRST_ENV: str(TEST_UIDS.first)},
    )
    assert server.stdout is not None
    async with asyncio.timeout(30):
        uid = int(await server.stdout.readline())
    return server, uid


@pytest.mark.parametrize("stage", ["running", "blocked"])
async def test_a_server_killed_by_sigkill_leaves_no_process_and_its_heir_cleans_the_rest(
    runner: SandboxRunner, root: Path, stage: str
) -> None:
    workdir = root / f"orphan-{stage}"
    server, uid = await start_server(workdir, stage)
    try:
        assert uid_processes({uid})
        server.kill()
        await server.wait()
        await wait_until(lambda: not uid_processes({uid}), 10)
        left = find_residue({uid})
        assert left.mounts and left.cgroups, "mounts and cgroups wait for the next server"
        assert runner.sweep(root, frozenset()) == 0, "nothing was left running to kill"
        runner.remove(workdir)
        nothing_left_of(uid, workdir, runner)
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()


async def test_the_heir_keeps_a_dead_sessions_files_until_its_end_removes_them(
    runner: SandboxRunner, root: Path
) -> None:
    """A sweep told to keep a workdir's files (a dead server's session whose end, which saves
    its profile and downloads, still has to run) kills and removes everything else of it."""
    workdir = root / "orphan-kept"
    other = root / "orphan-swept"
    server, uid = await start_server(workdir, "running")
    second, other_uid = await start_server(other, "running")
    try:
        for dead in (server, second):
            dead.kill()
            await dead.wait()
        await wait_until(lambda: not uid_processes({uid, other_uid}), 10)
        profile = workdir / "profile"
        written = {p.relative_to(profile) for p in profile.rglob("*") if p.is_file()}
        assert written, "the browser wrote to its profile"
        runner.sweep(root, frozenset(), frozenset({workdir}))
        left = find_residue({uid, other_uid})
        assert not left.processes and not left.cgroups
        assert set(left.mounts) == {workdir}, "only the kept workdir stays mounted"
        assert {p.relative_to(profile) for p in profile.rglob("*") if p.is_file()} == written
        runner.sweep(root, frozenset(), frozenset({workdir}))  # a second sweep changes nothing
        assert set(find_residue({uid, other_uid}).mounts) == {workdir}
        # A new sandbox that takes the dead one's uid cleans what that uid left, but this.
        opened: list[Sandbox] = []
        try:
            while not opened or opened[-1].uid != uid:
                assert len(opened) < TEST_UIDS.count, f"no new sandbox got uid {uid}"
                opened.append(await runner.open(root / f"new-{len(opened)}"))
            assert workdir in find_residue({uid}).mounts
            assert {p.relative_to(profile) for p in profile.rglob("*") if p.is_file()} == written
        finally:
            for sandbox in opened:
                await asyncio.to_thread(sandbox.teardown)
        runner.remove(workdir)
        runner.remove(other)
        nothing_left_of(uid, workdir, runner)
        nothing_left_of(other_uid, other, runner)
    finally:
        for process in (server, second):
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_the_sweep_spares_a_live_servers_sandbox(runner: SandboxRunner, root: Path) -> None:
    workdir = root / "alive-elsewhere"
    server, uid = await start_server(workdir, "running")
    try:
        runner.sweep(root, frozenset())
        assert uid_processes({uid}), "another live server's browser was killed"
        assert find_residue({uid}).mounts
    finally:
        server.kill()
        await server.wait()
    await wait_until(lambda: not uid_processes({uid}), 10)
    runner.sweep(root, frozenset())
    runner.remove(workdir)
    nothing_left_of(uid, workdir, runner)


@pytest.mark.parametrize("after_s", [0.0, 0.002, 0.01, 0.05, 0.2])
async def test_a_launch_cancelled_at_any_moment_leaves_nothing(
    launcher: LocalChromiumLauncher,
    runner: SandboxRunner,
    root: Path,
    running: ChromiumProcess,
    after_s: float,
) -> None:
    """Cancelled while a uid is taken, the workdir mounted, bubblewrap starting...: the delay
    picks the moment (it stands for no condition)."""
    busy = {sandbox_of(running).uid}
    workdir = root / f"cancelled-after-{after_s}"
    async with asyncio.TaskGroup() as group:
        launch = group.create_task(launcher.launch(spec_for(HeadlessMode.SHELL), workdir))
        await asyncio.sleep(after_s)
        launch.cancel()
    assert launch.cancelled() or launch.exception() is None
    if not launch.cancelled():  # it won the race: a browser to close like any other
        await launch.result().close()
    assert not find_residue(TEST_UIDS).without(busy), find_residue(TEST_UIDS).lines()
    assert not workdir.exists()
    assert [uid for uid in TEST_UIDS if runner.locks.held(uid)] == sorted(busy)
