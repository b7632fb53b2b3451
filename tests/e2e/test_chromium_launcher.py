"""LocalChromiumLauncher against the real Chromium on the host (isolation none): viewport,
cleanup, failures, strays. The sandboxed launcher has its own tests (test_sandbox_launcher.py).

Launches are shared where a test only looks (one browser per mode and size); tests that kill
or close get their own. Every workdir lives under the suite's data-dir prefix, so the suite's
leak check also covers these browsers.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil
import pytest
import pytest_asyncio
import uvloop
from loopback import RESOLVER_RULES
from pages import Page, PageServer

from browserfleet.browsers.chromium_args import chromium_args
from browserfleet.browsers.geometry import TASKBAR_HEIGHT
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp.client import CdpConnection
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cdp.dial import get_json as dial_json
from browserfleet.errors import BrowserLaunchFailed

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CHROMIUM = Path("/usr/lib/chromium/chromium")
HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
# Chromium must never resolve an outside name: only loopback traffic.
MEASURE = (
    "[outerWidth, outerHeight, screen.width, screen.height, screen.availWidth,"
    " screen.availHeight, innerWidth, innerHeight]"
)
MODES = [HeadlessMode.NEW, HeadlessMode.SHELL]
SIZES = [(1920, 1080), (1280, 720), (800, 600)]
# The smallest valid one-page PDF.
PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
    b"/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF"
)


def spec_for(mode: HeadlessMode, width: int = 1280, height: int = 720) -> LaunchSpec:
    return LaunchSpec(mode, width, height, extra_args=(RESOLVER_RULES,))


@pytest.fixture(scope="module")
def root(suite_resources: Any) -> Iterator[Path]:
    path: Path = suite_resources.new_data_dir()
    yield path
    assert not processes_naming(path), "a browser outlived the tests"
    assert not list(path.iterdir()), "a workdir outlived the tests"


@pytest.fixture(scope="module")
def launcher() -> LocalChromiumLauncher:
    return LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, launch_timeout_s=20.0)


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=[(m, *s) for m in MODES for s in SIZES], ids=str
)
async def running(
    request: pytest.FixtureRequest, launcher: LocalChromiumLauncher, root: Path
) -> AsyncIterator[tuple[ChromiumProcess, LaunchSpec]]:
    mode, width, height = request.param
    spec = spec_for(mode, width, height)
    browser = await launcher.launch(spec, root / f"view-{mode}-{width}x{height}")
    async with browser:
        yield browser, spec


# ---- helpers ---------------------------------------------------------------------------------


def processes_naming(path: Path) -> list[psutil.Process]:
    """Live (non-zombie) processes with an argument under path."""
    needle = f"{path}/"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if any(needle in arg for arg in proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def assert_nothing_left(pid: int, workdir: Path, descendants: Sequence[int] = ()) -> None:
    assert not psutil.pid_exists(pid), f"browser pid {pid} still exists (zombie?)"
    assert not [p for p in descendants if alive(p)], "a child of the browser survived"
    assert not processes_naming(workdir), "a process still names the workdir"
    assert not workdir.exists(), "the workdir was not removed"


async def wait_until(check: Callable[[], object], timeout_s: float) -> None:
    """Poll outside state (the process table, files) that no event can announce."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)


async def page_targets(devtools: DevtoolsDialer) -> list[dict[str, Any]]:
    targets = await dial_json(devtools, "/json/list")
    assert isinstance(targets, list)
    return [t for t in targets if t["type"] == "page"]


async def measure(cdp: CdpConnection, target_id: str) -> list[int]:
    attached = await cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
    params = {"expression": MEASURE, "returnByValue": True}
    answer = await cdp.call("Runtime.evaluate", params, session_id=str(attached["sessionId"]))
    value: list[int] = answer["result"]["value"]  # type: ignore[index]
    return value


@asynccontextmanager
async def browser_cdp(devtools: DevtoolsDialer) -> AsyncIterator[CdpConnection]:
    version = await dial_json(devtools, "/json/version")
    assert isinstance(version, dict)
    async with CdpConnection.connect(str(version["webSocketDebuggerUrl"]), dialer=devtools) as cdp:
        yield cdp


def assert_desktop_geometry(measured: list[int], spec: LaunchSpec) -> None:
    """A maximized window on a screen of the spec's size with a taskbar (browsers/geometry.py);
    the viewport is the window less the browser's UI (none in the headless shell)."""
    width, height = spec.screen_width, spec.screen_height
    work_height = height - TASKBAR_HEIGHT
    assert measured[:6] == [width, work_height, width, height, width, work_height]
    inner_width, inner_height = measured[6:]
    assert inner_width == width
    if spec.mode is HeadlessMode.SHELL:
        assert inner_height == work_height
    else:
        assert 0 < work_height - inner_height <= 150, "the tab strip and toolbar"


# ---- viewport and start page ----------------------------------------------------------------


async def test_starts_with_exactly_one_blank_page(
    running: tuple[ChromiumProcess, LaunchSpec],
) -> None:
    browser, _ = running
    pages = await page_targets(browser.devtools)
    assert [p["url"] for p in pages] == ["about:blank"]


async def test_first_page_has_the_desktop_geometry_of_the_spec_size(
    running: tuple[ChromiumProcess, LaunchSpec],
) -> None:
    browser, spec = running
    (page,) = await page_targets(browser.devtools)
    async with browser_cdp(browser.devtools) as cdp:
        assert_desktop_geometry(await measure(cdp, page["id"]), spec)


@pytest.mark.parametrize("new_window", [False, True], ids=["tab", "window"])
async def test_pages_opened_later_have_the_same_geometry(
    running: tuple[ChromiumProcess, LaunchSpec], new_window: bool
) -> None:
    browser, spec = running
    async with browser_cdp(browser.devtools) as cdp:
        params = {"url": "about:blank", "newWindow": new_window}
        created = await cdp.call("Target.createTarget", params)
        target_id = str(created["targetId"])
        try:
            assert_desktop_geometry(await measure(cdp, target_id), spec)
        finally:
            await cdp.call("Target.closeTarget", {"targetId": target_id})


@pytest.mark.parametrize(("width", "height"), [(1024, 768), (1920, 1080)])
async def test_a_reshaped_browser_opens_new_windows_at_its_new_size_without_resizing_them(
    launcher: LocalChromiumLauncher, root: Path, width: int, height: int
) -> None:
    """A pooled browser reshaped for a session: its later windows (a new context's, a new
    window's) are born at the session's size, so the server never resizes one while a client
    may already be setting its own viewport on the page (a resize that lands after the
    client's emulation undoes its screen)."""
    browser = await launcher.launch(spec_for(HeadlessMode.NEW), root / f"reshaped-{width}")
    async with browser, browser_cdp(browser.devtools) as cdp:
        await browser.reshape(width, height)
        context = await cdp.call("Target.createBrowserContext")
        for params in (
            {"url": "about:blank", "browserContextId": context["browserContextId"]},
            {"url": "about:blank", "newWindow": True},
        ):
            created = await cdp.call("Target.createTarget", params)
            assert_desktop_geometry(
                await measure(cdp, str(created["targetId"])),
                spec_for(HeadlessMode.NEW, width, height),
            )
        assert browser.windows_resized == 0


# ---- closing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_close_leaves_no_process_zombie_or_workdir(
    launcher: LocalChromiumLauncher, root: Path, mode: HeadlessMode
) -> None:
    workdir = root / f"close-{mode}"
    browser = await launcher.launch(spec_for(mode), workdir)
    descendants = [p.pid for p in psutil.Process(browser.pid).children(recursive=True)]
    assert descendants, "chromium should have started helper processes"
    started = time.monotonic()
    await browser.close()
    assert time.monotonic() - started < 2.0, "close() must not wait for a graceful exit"
    assert_nothing_left(browser.pid, workdir, descendants)
    assert await browser.wait_closed() == -signal.SIGKILL


async def test_a_browser_leads_a_process_group_of_its_own_in_the_servers_session(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    """Killed as one group; never a session of its own, which would leave it outside whatever
    ends the server's session."""
    async with await launcher.launch(spec_for(HeadlessMode.SHELL), root / "grouped") as browser:
        assert os.getpgid(browser.pid) == browser.pid != os.getpgrp()
        assert os.getsid(browser.pid) == os.getsid(0)


async def test_a_browser_starts_and_ends_on_uvloop_off_the_main_thread(root: Path) -> None:
    """As in a Ray actor, whose methods run on uvloop in a thread of their own (uvloop refuses
    some of asyncio's subprocess arguments, process_group among them)."""
    workdir = root / "on-uvloop"

    async def launch_and_close() -> tuple[int, int, int]:
        launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, launch_timeout_s=20.0)
        async with await launcher.launch(spec_for(HeadlessMode.SHELL), workdir) as browser:
            assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
            group = os.getpgid(browser.pid)
        return browser.pid, group, await browser.wait_closed()

    pid, group, code = await asyncio.to_thread(uvloop.run, launch_and_close())
    assert (group, code) == (pid, -signal.SIGKILL)
    assert_nothing_left(pid, workdir)


async def test_close_is_idempotent_and_safe_concurrently(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    workdir = root / "close-twice"
    browser = await launcher.launch(spec_for(HeadlessMode.SHELL), workdir)
    await asyncio.gather(browser.close(), browser.close(), browser.wait_closed())
    await browser.close()
    assert_nothing_left(browser.pid, workdir)


async def test_wait_closed_returns_to_every_waiter_when_killed_from_outside(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    workdir = root / "killed-outside"
    browser = await launcher.launch(spec_for(HeadlessMode.SHELL), workdir)
    waiters = asyncio.gather(browser.wait_closed(), browser.wait_closed())
    await asyncio.sleep(0)
    os.killpg(browser.pid, signal.SIGKILL)
    async with asyncio.timeout(5):
        assert list(await waiters) == [-signal.SIGKILL, -signal.SIGKILL]
    assert workdir.exists(), "only close() removes the workdir"
    await browser.close()
    assert_nothing_left(browser.pid, workdir)


# ---- failed and cancelled launches -----------------------------------------------------------


async def test_bogus_chromium_path_fails_and_leaves_nothing(root: Path) -> None:
    bogus = LocalChromiumLauncher(root / "no-such-chromium", HEADLESS_SHELL)
    workdir = root / "bogus"
    with pytest.raises(BrowserLaunchFailed, match="no-such-chromium"):
        await bogus.launch(spec_for(HeadlessMode.NEW), workdir)
    assert not workdir.exists()


async def test_launch_timeout_fails_and_leaves_nothing(root: Path) -> None:
    hasty = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, launch_timeout_s=0.1)
    workdir = root / "hasty"
    with pytest.raises(BrowserLaunchFailed, match=r"timed out after 0\.1s"):
        await hasty.launch(spec_for(HeadlessMode.NEW), workdir)
    assert not workdir.exists()
    assert not processes_naming(workdir)


async def test_chromium_exiting_at_start_fails_with_its_log(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    workdir = root / "exits"
    spec = replace(spec_for(HeadlessMode.SHELL), extra_args=("--version",))
    with pytest.raises(BrowserLaunchFailed, match=r"exited with code 0[\s\S]*Chromium 156"):
        await launcher.launch(spec, workdir)
    assert not workdir.exists()


async def test_non_empty_workdir_is_refused_and_kept(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    workdir = root / "taken"
    workdir.mkdir()
    (workdir / "precious").write_text("keep me")
    with pytest.raises(BrowserLaunchFailed, match="not empty"):
        await launcher.launch(spec_for(HeadlessMode.SHELL), workdir)
    assert (workdir / "precious").read_text() == "keep me"
    (workdir / "precious").unlink()
    workdir.rmdir()


@pytest.mark.parametrize("mode", MODES)
async def test_cancelled_launch_leaves_nothing(
    launcher: LocalChromiumLauncher, root: Path, mode: HeadlessMode
) -> None:
    workdir = root / f"cancelled-{mode}"
    async with asyncio.TaskGroup() as group:
        launch = group.create_task(launcher.launch(spec_for(mode), workdir))
        # Cancel once Chromium runs, the hardest moment to clean up after.
        await wait_until(lambda: processes_naming(workdir), 10)
        launch.cancel()
    assert launch.cancelled()
    assert not processes_naming(workdir)
    assert not workdir.exists()


# ---- strays, preferences, parent death -------------------------------------------------------


async def test_kill_strays_kills_unknown_browsers_and_spares_kept_ones(
    launcher: LocalChromiumLauncher, root: Path
) -> None:
    strays_root = root / "strays"
    kept = await launcher.launch(spec_for(HeadlessMode.SHELL), strays_root / "kept")
    async with kept:
        stray_dir = strays_root / "stray" / "profile"
        stray_dir.mkdir(parents=True)
        args = chromium_args(spec_for(HeadlessMode.SHELL), user_data_dir=stray_dir, no_sandbox=True)
        stray = await asyncio.create_subprocess_exec(
            HEADLESS_SHELL,
            *args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await wait_until((stray_dir / "DevToolsActivePort").exists, 10)
            assert launcher.kill_strays(strays_root, frozenset({kept.pid})) == 1
            async with asyncio.timeout(5):
                assert await stray.wait() == -signal.SIGKILL
        finally:
            if stray.returncode is None:
                stray.kill()
                await stray.wait()
        assert alive(kept.pid)
        assert launcher.kill_strays(strays_root, frozenset({kept.pid})) == 0
    shutil.rmtree(strays_root)


@pytest.fixture(scope="module")
def pdf_url() -> Iterator[str]:
    with PageServer({"/doc.pdf": Page(PDF, "application/pdf")}) as server:
        yield server.url("/doc.pdf")


@pytest.mark.parametrize(("pdf_viewer", "pref"), [(False, True), (True, None)])
async def test_pdf_viewer_off_downloads_pdfs_instead_of_showing_them(
    launcher: LocalChromiumLauncher, root: Path, pdf_url: str, pdf_viewer: bool, pref: bool | None
) -> None:
    # headless=new: chromium-headless-shell has no PDF viewer and always downloads.
    spec = replace(spec_for(HeadlessMode.NEW), pdf_viewer=pdf_viewer)
    async with await launcher.launch(spec, root / f"pdf-{pdf_viewer}") as browser:
        prefs_file = browser.workdir / "profile" / "Default" / "Preferences"
        prefs = json.loads(prefs_file.read_text()) if prefs_file.exists() else {}
        assert prefs.get("plugins", {}).get("always_open_pdf_externally") == pref
        (page,) = await page_targets(browser.devtools)
        async with browser_cdp(browser.devtools) as cdp:
            downloads: dict[str, object] = {
                "behavior": "allow",
                "downloadPath": str(browser.workdir / "downloads"),
            }
            await cdp.call("Browser.setDownloadBehavior", downloads)
            attached = await cdp.call(
                "Target.attachToTarget", {"targetId": page["id"], "flatten": True}
            )
            session_id = str(attached["sessionId"])
            navigated = await cdp.call("Page.navigate", {"url": pdf_url}, session_id=session_id)
        assert navigated.get("isDownload") is not pdf_viewer


PARENT = """
import asyncio, sys
from pathlib import Path
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import LocalChromiumLauncher

async def main():
    launcher = LocalChromiumLauncher(Path(sys.argv[1]), Path(sys.argv[2]))
    spec = LaunchSpec(HeadlessMode.SHELL, 800, 600, extra_args=(sys.argv[4],))
    browser = await launcher.launch(spec, Path(sys.argv[3]))
    print(browser.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_browser_dies_when_its_parent_is_killed(root: Path) -> None:
    workdir = root / "orphan"
    parent = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PARENT,
        str(CHROMIUM),
        str(HEADLESS_SHELL),
        str(workdir),
        RESOLVER_RULES,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert parent.stdout is not None
        async with asyncio.timeout(20):
            browser_pid = int(await parent.stdout.readline())
        parent.kill()
        await parent.wait()
        await wait_until(lambda: not alive(browser_pid) and not processes_naming(workdir), 5)
    finally:
        if parent.returncode is None:
            parent.kill()
            await parent.wait()
        launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL)
        launcher.kill_strays(workdir, frozenset())
        shutil.rmtree(workdir, ignore_errors=True)
