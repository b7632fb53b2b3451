"""Session browsers on a real Ray cluster: launched through RayLauncher on the slotted node,
driven with Playwright through the real CDP gateway (whose route dials the node's forwarder),
refused at once when no slot is free, and gone with their actor however it ends.

The cluster (tests/support/ray_cluster.py): a head without slots, which this process joins as
the driver, and a worker node with two `browser_slots` whose browsers run sandboxed as this
run's uids, configured by that node's own environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import psutil
import pytest
from fastapi import FastAPI
from local_uvicorn import LocalUvicorn
from loopback import RESOLVER_RULES
from pages import PageServer
from playwright.async_api import async_playwright
from polling import until
from ray_cluster import (
    WORKER_IP,
    WORKER_SLOTS,
    RayCluster,
    clean_node_leftovers,
    start_worker,
    worker_raylet,
)
from sandboxes import TEST_UIDS

from browserfleet.api.routes.cdp import build_cdp_router
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.cdp import CdpGatewayServer
from browserfleet.cdp.client import CdpError
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cluster import ray_api
from browserfleet.cluster.handle import LOST_EXIT_CODE, RayBrowserHandle
from browserfleet.cluster.launcher import PlacementLimits, RayLauncher
from browserfleet.errors import HostAtCapacity
from browserfleet.proxy import DirectRoute, EgressGuard
from browserfleet.sandbox.residue import find_residue, uid_processes

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SPEC = LaunchSpec(HeadlessMode.NEW, 1280, 720, extra_args=(RESOLVER_RULES,))
TOKEN = "tok-" + "c1" * 16  # the gateway's session token (not the forwarder's)
PENDING = {"PENDING_CREATION", "DEPENDENCIES_UNREADY"}
DOWNLOADS = PurePosixPath("/session/downloads")  # as the sandboxed browser sees them
UPLOADS = PurePosixPath("/session/uploads")


@dataclass(frozen=True, slots=True)
class Route:
    token: str
    devtools: DevtoolsDialer
    allow_resizing: bool = False
    downloads: PurePosixPath = DOWNLOADS
    uploads: PurePosixPath = UPLOADS


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    with PageServer() as pages:
        yield pages.url("/")


@pytest.fixture
def launcher(ray_cluster: RayCluster) -> RayLauncher:
    return RayLauncher()


@contextlib.asynccontextmanager
async def launched(launcher: RayLauncher, name: str) -> AsyncIterator[RayBrowserHandle]:
    handle = await launcher.launch(SPEC, Path("/api-side/sessions") / name)
    try:
        yield handle
    finally:
        await handle.close()


@contextlib.asynccontextmanager
async def gateway_for(dialer: DevtoolsDialer) -> AsyncIterator[str]:
    """The real CDP gateway, served by uvicorn, with one route that dials `dialer`: its CDP
    URL."""
    async with CdpGatewayServer() as gateway:
        gateway.open(Route(TOKEN, dialer))
        app = FastAPI()
        app.include_router(build_cdp_router(gateway))
        app.state.services = SimpleNamespace(public_url=None)  # as app.py's ApiServices
        async with LocalUvicorn(app, gateway) as base:
            yield f"{base}/cdp/{TOKEN}"


def sandbox_uid(handle: RayBrowserHandle) -> int:
    """The uid the browser's sandbox runs as (bubblewrap, the process its actor spawned, took
    it before it started anything)."""
    uid = int(psutil.Process(handle.pid).uids().real)
    assert uid in TEST_UIDS
    return uid


def pending_actors() -> dict[str, str]:
    return {a: s for a, s in ray_api.actor_states().items() if s in PENDING}


async def free_slots() -> int:
    return await asyncio.to_thread(ray_api.free_slots)


async def all_slots_free() -> None:
    deadline = time.monotonic() + 10.0
    while await free_slots() != WORKER_SLOTS:
        assert time.monotonic() < deadline, "the worker's slots did not all come back"
        await asyncio.sleep(0.05)


# --- tests ------------------------------------------------------------------------------------


async def test_playwright_drives_a_page_on_a_remote_browser_through_the_gateway(
    launcher: RayLauncher, page_url: str
) -> None:
    async with launched(launcher, "driven") as handle:
        assert handle.devtools.port != 0
        assert handle.workdir.name == "driven"  # on the node, under its own data dir
        # Planned by the API process with its own guard (which blocks loopback): the node
        # swaps in its own, which allows the tests' pages.
        handle.route_egress(DirectRoute(EgressGuard()))
        async with gateway_for(handle.devtools) as url, async_playwright() as playwright:
            browser = await playwright.chromium.connect_over_cdp(url)
            try:
                page = await browser.contexts[0].new_page()
                await page.goto(page_url)
                assert await page.text_content("#greeting") == "Hello from loopback"
                await page.close()
            finally:
                await browser.close()
        version = await handle.call("Browser.getVersion")
        assert str(version["product"]).startswith("Chrome/")
        with pytest.raises(CdpError, match=r"Nope\.nope"):
            await handle.call("Nope.nope")
        await handle.end_egress()
        assert handle.egress_bytes > 0  # the page came through the node's egress proxy
    await all_slots_free()


async def test_two_browsers_fill_the_slotted_node_and_a_third_is_refused_at_once(
    launcher: RayLauncher,
) -> None:
    async with launched(launcher, "first") as first, launched(launcher, "second") as second:
        for handle in (first, second):
            assert handle.devtools.port > 0
            assert repr(handle.devtools).startswith(f"RemoteDialer({WORKER_IP}:")
        assert first.pid != second.pid
        assert await free_slots() == 0
        started = time.monotonic()
        with pytest.raises(HostAtCapacity):
            await launcher.launch(SPEC, Path("/api-side/sessions/third"))
        assert time.monotonic() - started < 2.0
        assert pending_actors() == {}
    await all_slots_free()


async def test_a_slot_taken_meanwhile_ends_placement_at_its_timeout_and_no_actor_waits(
    launcher: RayLauncher,
) -> None:
    async def stale_view() -> int:
        return 1  # as when another API process took the last slot since we looked

    async def one_free() -> int:
        return 1

    late = RayLauncher(PlacementLimits(placement_timeout_s=1.0), free_slots=stale_view)
    async with launched(launcher, "a") as _a, launched(launcher, "b") as _b:
        started = time.monotonic()
        with pytest.raises(HostAtCapacity, match="within 1 s"):
            await late.launch(SPEC, Path("/api-side/sessions/late"))
        assert 1.0 <= time.monotonic() - started < 3.0
        assert pending_actors() == {}
        # A launch cancelled while its actor waits for a slot leaves no actor either.
        patient = RayLauncher(PlacementLimits(placement_timeout_s=60.0), free_slots=one_free)
        async with asyncio.TaskGroup() as tasks:
            waiting = tasks.create_task(patient.launch(SPEC, Path("/api-side/sessions/c")))
            await until(lambda: pending_actors() != {}, timeout=10, what="a pending actor")
            waiting.cancel()
        assert waiting.cancelled()
        await until(lambda: pending_actors() == {}, timeout=5, what="no pending actor")
    await all_slots_free()


async def test_close_leaves_nothing_of_the_browser(launcher: RayLauncher) -> None:
    async with launched(launcher, "closed") as handle:
        uid = sandbox_uid(handle)
        assert uid_processes({uid})
    await until(lambda: not find_residue({uid}), timeout=10, what=f"no residue of uid {uid}")
    assert await handle.wait_closed() == LOST_EXIT_CODE  # its actor is gone with it
    assert not handle.lost  # closed, not lost
    await handle.close()  # again: nothing to do
    await all_slots_free()
    assert not [a for a, s in ray_api.actor_states().items() if s != "DEAD"]


async def test_a_killed_actor_worker_takes_its_browser_along(
    launcher: RayLauncher, ray_cluster: RayCluster
) -> None:
    async with launched(launcher, "killed") as handle:
        uid = sandbox_uid(handle)
        worker = psutil.Process(handle.pid).parent()
        assert worker is not None and worker.uids().real == os.getuid()
        async with asyncio.timeout(10.0), asyncio.TaskGroup() as tasks:
            closed = tasks.create_task(handle.wait_closed())
            worker.send_signal(signal.SIGKILL)
        assert closed.result() == LOST_EXIT_CODE
        assert handle.lost
        # PR_SET_PDEATHSIG: no process of the sandbox's uid survives its actor's worker.
        await until(lambda: not uid_processes({uid}), timeout=5, what=f"uid {uid} empty")
        with pytest.raises(CdpError, match="lost"):
            await handle.call("Browser.getVersion")
        await handle.end_egress()  # nothing left to end, and no error
    await all_slots_free()
    # Its mounts and cgroup stay until the node sweeps them; as a node would, clean them now.
    report = clean_node_leftovers(ray_cluster)
    assert not find_residue({uid}), report
    (ray_cluster.worker_data_dir / "sessions" / "killed").rmdir()


async def test_a_lost_node_takes_its_browsers_along_and_their_handles_know(
    launcher: RayLauncher, ray_cluster: RayCluster
) -> None:
    """SIGKILL of the node's raylet: its workers exit, and their browsers with them; the GCS
    finds the node dead within its health checks (about 3 s here) and every handle's
    wait_closed returns. The node then joins again, as a restarted one would."""
    raylet = worker_raylet(ray_cluster)
    assert raylet is not None
    async with launched(launcher, "node-a") as a, launched(launcher, "node-b") as b:
        uids = {sandbox_uid(a), sandbox_uid(b)}
        started = time.monotonic()
        async with asyncio.timeout(15.0), asyncio.TaskGroup() as tasks:
            closed = [tasks.create_task(h.wait_closed()) for h in (a, b)]
            raylet.send_signal(signal.SIGKILL)
        assert [c.result() for c in closed] == [LOST_EXIT_CODE] * 2
        assert a.lost and b.lost
        assert time.monotonic() - started < 10.0
        await until(lambda: not uid_processes(uids), timeout=10, what=f"uids {uids} empty")
    start_worker(ray_cluster)
    await all_slots_free()
    report = clean_node_leftovers(ray_cluster)
    assert not find_residue(uids), report
    for name in ("node-a", "node-b"):
        (ray_cluster.worker_data_dir / "sessions" / name).rmdir()
