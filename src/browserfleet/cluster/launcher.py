"""Session browsers on the cluster's slotted nodes (sessions.ports.BrowserLauncher): one
BrowserActor per browser, placed by Ray on a node with a free `browser_slots`.

No free slot anywhere: HostAtCapacity at once (the API answers 503). A slot that another API
process takes first leaves the actor pending: past the placement timeout that is HostAtCapacity
too. Whatever ends a launch early (a failure, a timeout, the caller's cancellation) kills the
actor, so no actor is ever left pending or running without a handle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayTaskError

from browserfleet import __version__
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.cluster import ray_api
from browserfleet.cluster.actor import RemoteBrowserActor
from browserfleet.cluster.handle import PROFILE_LIMITS, Lease, RayBrowserHandle
from browserfleet.cluster.wire import Launched, ProfileArchive
from browserfleet.errors import BrowserLaunchFailed, HostAtCapacity
from browserfleet.profiles.seed import ArchiveSeed
from browserfleet.storage.archive import ArchiveLimits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PlacementLimits:
    placement_timeout_s: float = 20.0  # actor created -> its worker answers (5-7 s under load)
    start_timeout_s: float = 25.0  # ready -> the browser answers (the node's launch timeout + 5)
    call_timeout_s: float = 30.0  # any later call of the handle
    lease: Lease = field(default_factory=Lease)
    profile_limits: ArchiveLimits = PROFILE_LIMITS  # a saved profile's, both ways


# After a browser of ours gave its slot back, the GCS may count the slot taken a moment
# longer: a launch then waits for its placement instead of being refused at once.
RELEASE_GRACE_S = 5.0


async def _free_slots() -> int:
    return await asyncio.to_thread(ray_api.free_slots)


def _spread_actor() -> Any:
    """A new BrowserActor, placed on the slotted node with the fewest of them (SPREAD)."""
    return RemoteBrowserActor.options(scheduling_strategy="SPREAD").remote()


class RayLauncher:
    """Implements sessions.ports.BrowserLauncher with browsers on other nodes."""

    def __init__(
        self,
        limits: PlacementLimits | None = None,
        *,
        free_slots: Callable[[], Awaitable[int]] = _free_slots,
        create: Callable[[], Any] = _spread_actor,
        kill: Callable[[Any], None] = ray.kill,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`free_slots`, `create` and `kill` are Ray's (the cluster's free slots, a new
        BrowserActor, ray.kill); tests pass fakes."""
        self._limits = limits or PlacementLimits()
        self._free_slots = free_slots
        self._create = create
        self._ray_kill = kill
        self._clock = clock
        self._released_at = -RELEASE_GRACE_S

    def _kill(self, actor: Any) -> None:
        self._released_at = self._clock()
        self._ray_kill(actor)

    def _releasing(self) -> bool:
        """Whether a slot of ours was given back moments ago (the GCS may lag behind)."""
        return self._clock() - self._released_at < RELEASE_GRACE_S

    async def launch(
        self, spec: LaunchSpec, workdir: Path, *, seed: Callable[[Path], None] | None = None
    ) -> RayBrowserHandle:
        """A browser whose workdir on its node is named as `workdir` is here. HostAtCapacity,
        BrowserLaunchFailed."""
        profile = None
        if seed is not None:
            if not isinstance(seed, ArchiveSeed):  # only an archive travels to a node
                raise BrowserLaunchFailed(f"a {type(seed).__name__} cannot seed a node's browser")
            data = await asyncio.to_thread(seed.archive.read_bytes)
            profile = ProfileArchive(data, seed.limits)
        if await self._free_slots() < 1 and not self._releasing():
            raise HostAtCapacity("no browser slot is free on any node")
        actor = self._create()
        try:
            launched = await self._start(actor, spec, workdir.name, profile)
        except BaseException:
            self._kill(actor)  # a pending creation is cancelled; a started browser dies with it
            raise
        if seed is not None:
            seed.session_cookies = list(launched.session_cookies)  # for CDP to restore
        return RayBrowserHandle(
            actor,
            launched,
            call_timeout_s=self._limits.call_timeout_s,
            kill=self._kill,
            lease=self._limits.lease,
            profile_limits=self._limits.profile_limits,
        )

    async def _start(
        self, actor: Any, spec: LaunchSpec, name: str, profile: ProfileArchive | None
    ) -> Launched:
        limits = self._limits
        try:
            try:
                node = await asyncio.wait_for(actor.ready.remote(), limits.placement_timeout_s)
            except TimeoutError:
                raise HostAtCapacity(
                    f"no browser slot became free within {limits.placement_timeout_s:g} s"
                ) from None
            if node.version != __version__:
                # Nodes run the same wheel as the API process; another is a botched rollout.
                raise BrowserLaunchFailed(
                    f"node {node.ip} runs browserfleet {node.version}, not {__version__}"
                )
            log.info("browser actor placed on node %s (%s)", node.node_id, node.ip)
            launched: Launched = await asyncio.wait_for(
                actor.start.remote(spec, name, limits.lease.ttl_s, profile),
                limits.start_timeout_s,
            )
        except RayTaskError as error:
            raise BrowserLaunchFailed(f"the node could not launch it: {error.cause}") from None
        except RayActorError as error:
            raise BrowserLaunchFailed(f"its actor was lost while launching: {error}") from None
        except TimeoutError as error:
            raise BrowserLaunchFailed(
                f"the browser did not answer within {limits.start_timeout_s:g} s"
            ) from error
        return launched

    def remove_workdir(self, workdir: Path) -> None:
        pass  # on its node: the actor's close removes it

    def kill_strays(
        self, root: Path, keep: frozenset[int], keep_files: frozenset[Path] = frozenset()
    ) -> int:
        return 0  # a node's strays die with their actors' workers (PR_SET_PDEATHSIG)
