"""RayLauncher and RayBrowserHandle over a hand-written fake actor: what a lost, slow or
never-placed actor means to the session service, and that no launch leaves an actor behind."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from ray.exceptions import ActorDiedError, ActorUnavailableError

from browserfleet import __version__
from browserfleet.browsers.files import BrowserFiles
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.cdp.client import CdpError
from browserfleet.cluster.handle import LOST_EXIT_CODE, Lease, RayBrowserHandle
from browserfleet.cluster.launcher import RELEASE_GRACE_S, PlacementLimits, RayLauncher
from browserfleet.cluster.wire import Launched, NodeInfo
from browserfleet.errors import BrowserLaunchFailed, HostAtCapacity
from browserfleet.profiles.seed import ArchiveSeed
from browserfleet.storage.archive import ArchiveLimits

SPEC = LaunchSpec(HeadlessMode.NEW, 1280, 720)
WORKDIR = Path("/var/lib/browserfleet/sessions/s-1")
LAUNCHED = Launched(
    pid=4242,
    devtools_port=9222,
    forward_host="10.0.0.7",
    forward_port=47001,
    forward_token=bytes(32),
    workdir=Path("/node/sessions/s-1"),
    files=BrowserFiles(
        Path("/node/sessions/s-1/downloads"),
        Path("/node/sessions/s-1/uploads"),
        PurePosixPath("/session/downloads"),
        PurePosixPath("/session/uploads"),
    ),
)


LIMITS = ArchiveLimits(max_bytes=1024)


class Method:
    """One actor method: `.remote(...)` runs `body` as the actor would, and counts calls."""

    def __init__(self, body: Callable[..., Awaitable[Any]]) -> None:
        self._body = body
        self.calls: list[tuple[Any, ...]] = []

    def remote(self, *args: Any) -> Awaitable[Any]:
        self.calls.append(args)
        return self._body(*args)


async def _never() -> Any:
    await asyncio.Event().wait()


async def _lost(*_args: Any) -> Any:
    raise ActorDiedError()


class FakeActor:
    """A BrowserActor that answers at once; tests swap in methods that do otherwise."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.route_set = asyncio.Event()
        self.ready = Method(self._ready)
        self.start = Method(self._start)
        self.route_egress = Method(self._route)
        self.call = Method(self._call)
        self.end_egress = Method(self._answer(1234))
        self.egress_bytes = Method(self._answer(77))
        self.quit = Method(self._answer(True))
        self.close = Method(self._answer(None))
        self.wait_closed = Method(self._answer(0))
        self.reshape = Method(self._answer(None))
        self.localize = Method(self._answer(None))
        self.renew = Method(self._answer(4096))  # alive, with its egress bytes so far

    async def _ready(self) -> NodeInfo:
        return NodeInfo("node-1", "10.0.0.7", __version__)

    async def _start(
        self, spec: LaunchSpec, name: str, lease_ttl_s: float, profile: Any = None
    ) -> Launched:
        return LAUNCHED

    async def _route(self, route: object) -> None:
        await self.route_set.wait()
        self.order.append("route")

    async def _call(self, method: str, params: Any) -> Any:
        self.order.append(method)
        return {"ok": True}

    @staticmethod
    def _answer(value: Any) -> Callable[..., Awaitable[Any]]:
        async def answer(*_args: Any) -> Any:
            return value

        return answer


class Kills:
    def __init__(self) -> None:
        self.killed: list[Any] = []

    def __call__(self, actor: Any) -> None:
        self.killed.append(actor)


def handle_of(actor: FakeActor, kills: Kills | None = None) -> RayBrowserHandle:
    return RayBrowserHandle(actor, LAUNCHED, call_timeout_s=1.0, kill=kills or Kills())


def launcher_of(
    actor: FakeActor,
    kills: Kills,
    *,
    free: int = 1,
    limits: PlacementLimits | None = None,
) -> RayLauncher:
    async def free_slots() -> int:
        return free

    return RayLauncher(limits, free_slots=free_slots, create=lambda: actor, kill=kills)


# --- the handle -------------------------------------------------------------------------------


def test_it_shows_the_nodes_values_and_reaches_devtools_through_the_forwarder() -> None:
    handle = handle_of(FakeActor())
    assert (handle.pid, handle.workdir, handle.files) == (4242, LAUNCHED.workdir, LAUNCHED.files)
    assert repr(handle.devtools) == "RemoteDialer(10.0.0.7:47001, port=9222)"


async def test_a_route_is_set_before_the_next_call_runs() -> None:
    actor = FakeActor()
    handle = handle_of(actor)
    handle.route_egress("route")
    async with asyncio.TaskGroup() as tasks:
        call = tasks.create_task(handle.call("Browser.getVersion"))
        await asyncio.sleep(0.01)
        assert actor.order == []  # held until the route is set
        actor.route_set.set()
    assert call.result() == {"ok": True}
    assert actor.order == ["route", "Browser.getVersion"]


async def test_a_lost_actor_ends_wait_closed_as_a_killed_browser() -> None:
    actor = FakeActor()
    answers: list[Any] = [ActorUnavailableError("node unreachable", None), ActorDiedError()]

    async def flaky() -> int:
        raise answers.pop(0)

    actor.wait_closed = Method(flaky)
    handle = handle_of(actor)
    assert await handle.wait_closed() == LOST_EXIT_CODE  # the unavailable one was retried
    assert handle.lost and answers == []


async def test_calls_to_a_lost_actor_fail_as_a_dead_browsers_would() -> None:
    actor = FakeActor()
    actor.call = actor.reshape = actor.localize = Method(_lost)
    handle = handle_of(actor)
    with pytest.raises(CdpError, match="lost"):
        await handle.call("Browser.getVersion")
    with pytest.raises(BrowserLaunchFailed, match="could not reshape"):
        await handle.reshape(800, 600)
    with pytest.raises(BrowserLaunchFailed, match="could not localize"):
        await handle.localize(None)
    assert handle.lost


async def test_a_call_past_its_timeout_is_a_timeout() -> None:
    actor = FakeActor()
    actor.call = Method(lambda *_args: _never())
    with pytest.raises(TimeoutError):
        await handle_of(actor).call("Browser.getVersion")


async def test_end_steps_of_a_lost_actor_have_nothing_to_do() -> None:
    actor = FakeActor()
    actor.quit = actor.end_egress = actor.close = Method(_lost)
    kills = Kills()
    handle = handle_of(actor, kills)
    assert await handle.quit(1.0) is False
    await handle.end_egress()
    assert handle.egress_bytes == 0  # the last count it had
    await handle.close()
    await handle.close()
    assert kills.killed == [actor]  # once, lost or not


async def test_end_egress_keeps_the_final_count() -> None:
    actor = FakeActor()
    handle = handle_of(actor)
    assert await handle.refresh_egress() == 77
    await handle.end_egress()
    await handle.end_egress()
    assert handle.egress_bytes == 1234
    assert await handle.refresh_egress() == 1234  # final: never asked again
    assert len(actor.end_egress.calls) == 1


async def test_close_closes_the_browser_then_kills_its_actor() -> None:
    actor, kills = FakeActor(), Kills()
    handle = handle_of(actor, kills)
    await handle.close()
    await handle.close()
    assert (len(actor.close.calls), kills.killed) == (1, [actor])
    actor.wait_closed = Method(_lost)  # killed
    assert await handle.wait_closed() == LOST_EXIT_CODE
    assert not handle.lost  # closed, not lost


# --- the launcher -----------------------------------------------------------------------------


async def test_a_launch_starts_the_browser_under_the_workdirs_name() -> None:
    actor, kills = FakeActor(), Kills()
    handle = await launcher_of(actor, kills).launch(SPEC, WORKDIR)
    assert actor.start.calls == [(SPEC, "s-1", Lease().ttl_s, None)]
    assert (handle.pid, kills.killed) == (4242, [])


async def test_no_free_slot_is_host_at_capacity_and_creates_no_actor() -> None:
    created: list[FakeActor] = []

    async def none_free() -> int:
        return 0

    launcher = RayLauncher(free_slots=none_free, create=lambda: created.append(FakeActor()))
    with pytest.raises(HostAtCapacity):
        await launcher.launch(SPEC, WORKDIR)
    assert created == []


async def test_an_actor_never_placed_is_host_at_capacity_and_killed() -> None:
    actor, kills = FakeActor(), Kills()
    actor.ready = Method(_never)
    launcher = launcher_of(actor, kills, limits=PlacementLimits(placement_timeout_s=0.05))
    with pytest.raises(HostAtCapacity, match=r"within 0\.05 s"):
        await launcher.launch(SPEC, WORKDIR)
    assert kills.killed == [actor] and actor.start.calls == []


@pytest.mark.parametrize(
    ("where", "error"),
    [("ready", "lost while launching"), ("start", "lost while launching")],
)
async def test_an_actor_lost_while_launching_is_a_failed_launch_and_killed(
    where: str, error: str
) -> None:
    actor, kills = FakeActor(), Kills()
    setattr(actor, where, Method(_lost))
    with pytest.raises(BrowserLaunchFailed, match=error):
        await launcher_of(actor, kills).launch(SPEC, WORKDIR)
    assert kills.killed == [actor]


async def test_a_node_on_another_version_is_refused_and_its_actor_killed() -> None:
    actor, kills = FakeActor(), Kills()

    async def old_node() -> NodeInfo:
        return NodeInfo("node-1", "10.0.0.7", "0.0.1")

    actor.ready = Method(old_node)
    with pytest.raises(BrowserLaunchFailed, match=r"runs browserfleet 0\.0\.1"):
        await launcher_of(actor, kills).launch(SPEC, WORKDIR)
    assert kills.killed == [actor] and actor.start.calls == []


async def test_a_cancelled_launch_kills_its_actor() -> None:
    actor, kills = FakeActor(), Kills()
    actor.start = Method(lambda *_args: _never())
    async with asyncio.TaskGroup() as tasks:
        launch = tasks.create_task(launcher_of(actor, kills).launch(SPEC, WORKDIR))
        while not actor.start.calls:
            await asyncio.sleep(0)
        launch.cancel()
    assert launch.cancelled() and kills.killed == [actor]


async def test_a_closure_cannot_seed_a_nodes_browser() -> None:
    actor, kills = FakeActor(), Kills()
    with pytest.raises(BrowserLaunchFailed, match="cannot seed a node's browser"):
        await launcher_of(actor, kills).launch(SPEC, WORKDIR, seed=lambda _path: None)
    assert actor.ready.calls == []


async def test_a_saved_profile_travels_by_value_and_its_session_cookies_come_back(
    tmp_path: Path,
) -> None:
    """The node never reaches the blob store: the archive's bytes go with start(), and the
    session cookies the node took out of it come back for CDP to restore."""
    archive = tmp_path / "v1.tar.zst"
    archive.write_bytes(b"archive-bytes")
    cookie: dict[str, object] = {"name": "sid", "value": "1", "domain": "site.test", "path": "/"}
    actor, kills = FakeActor(), Kills()

    async def start(spec: LaunchSpec, name: str, ttl: float, profile: Any) -> Launched:
        assert (profile.data, profile.limits) == (b"archive-bytes", LIMITS)
        return replace(LAUNCHED, session_cookies=(cookie,))

    actor.start = Method(start)
    seed = ArchiveSeed(archive, LIMITS)
    await launcher_of(actor, kills).launch(SPEC, WORKDIR, seed=seed)
    assert seed.session_cookies == [cookie] and kills.killed == []


async def test_right_after_a_slot_is_given_back_a_launch_waits_for_its_placement() -> None:
    """The GCS may count a slot just released as taken a moment longer: the launch is placed
    once it is free, not refused; past the grace, no free slot is a refusal again."""
    now = [100.0]
    first, second, third = FakeActor(), FakeActor(), FakeActor()
    actors, kills = iter([first, second, third]), Kills()
    free = [1]  # the GCS counts one free slot, once

    async def counted() -> int:
        return free.pop() if free else 0

    launcher = RayLauncher(
        free_slots=counted, create=lambda: next(actors), kill=kills, clock=lambda: now[0]
    )
    used = await launcher.launch(SPEC, WORKDIR)
    await used.close()  # its slot is given back, but not yet counted free
    assert kills.killed == [first]
    now[0] += RELEASE_GRACE_S / 2
    placed = await launcher.launch(SPEC, WORKDIR)
    assert placed.pid == LAUNCHED.pid and second.start.calls == [(SPEC, "s-1", Lease().ttl_s, None)]
    now[0] += RELEASE_GRACE_S
    with pytest.raises(HostAtCapacity):
        await launcher.launch(SPEC, WORKDIR)
    assert third.ready.calls == [] and kills.killed == [first]


# --- the lease ----------------------------------------------------------------------------------


async def test_renewals_keep_the_lease_and_stop_at_close() -> None:
    actor, kills = FakeActor(), Kills()
    handle = RayBrowserHandle(actor, LAUNCHED, kill=kills, lease=Lease(ttl_s=0.4, renew_s=0.02))
    async with asyncio.timeout(5):
        while len(actor.renew.calls) < 5:
            await asyncio.sleep(0.01)
    assert not handle.lease_expired
    assert handle.egress_bytes == 4096  # the count each renewal brings: live proxyBytes
    await handle.close()
    renewed = len(actor.renew.calls)
    await asyncio.sleep(0.1)  # five renewal periods: none may come after close
    assert len(actor.renew.calls) == renewed and kills.killed == [actor]


async def test_renewals_that_fail_for_the_ttl_lose_the_browser_and_kill_its_actor() -> None:
    actor, kills = FakeActor(), Kills()
    actor.wait_closed = Method(lambda *_args: _never())  # the node does not answer
    actor.renew = Method(lambda *_args: _never())
    handle = RayBrowserHandle(actor, LAUNCHED, kill=kills, lease=Lease(ttl_s=0.2, renew_s=0.05))
    async with asyncio.timeout(5):
        assert await handle.wait_closed() == LOST_EXIT_CODE
    assert handle.lease_expired and handle.lost and kills.killed == [actor]
    assert len(actor.renew.calls) >= 2


async def test_a_renewal_that_comes_late_once_does_not_expire_the_lease() -> None:
    actor, kills = FakeActor(), Kills()
    late = [True, True]  # the first two renewals come past renew_s: they time out

    async def late_then_fine(*_args: Any) -> Any:
        if late and late.pop():
            await asyncio.sleep(0.08)
        return 0

    actor.renew = Method(late_then_fine)
    handle = RayBrowserHandle(actor, LAUNCHED, kill=kills, lease=Lease(ttl_s=0.3, renew_s=0.05))
    async with asyncio.timeout(5):
        while len(actor.renew.calls) < 8:
            await asyncio.sleep(0.01)
    assert not handle.lease_expired and kills.killed == []
    await handle.close()
