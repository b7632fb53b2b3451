"""The API process as the cluster's driver: its connection to Ray, and the cluster's room for
browsers as the session service sees it (sessions.ports.HostCapacity).

The API process owns every browser actor it creates: if it dies, Ray ends them (and their
browsers die with their workers). It joins the cluster as a driver on its own node address,
never running browsers itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Final

import ray

from browserfleet.cluster import ray_api
from browserfleet.cluster.node_commands import auth_env
from browserfleet.settings import ClusterSettings
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

NAMESPACE: Final = "browserfleet"
REFRESH_S: Final = 1.0  # how stale the free-slot count the pool grows by may be


@contextlib.contextmanager
def connected(cluster: ClusterSettings) -> Iterator[None]:
    """This process joined to the cluster as its driver until the block ends (blocking: call
    it before the event loop starts, on the main thread)."""
    assert cluster.address is not None
    token = cluster.auth_token.get_secret_value() if cluster.auth_token is not None else None
    # Ray reads its token from the environment; it never appears in a log or the GCS.
    os.environ.update(auth_env(token))
    ray.init(
        address=cluster.address,
        _node_ip_address=cluster.node_ip,
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    log.info("joined the cluster at %s as its driver", cluster.address)
    # ray.init makes SIGTERM a sys.exit(15); the server's own handling (a graceful shutdown,
    # then the signal raised again) must end the process as it does without Ray: by SIGTERM.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        ray.shutdown()


def slotted_nodes() -> int:
    """How many alive nodes offer browser slots now (blocking)."""
    return len(ray_api.free_slots_per_node())


async def _slots_per_node() -> Mapping[str, int]:
    return await asyncio.to_thread(ray_api.free_slots_per_node)


class ClusterCapacity:
    """Implements sessions.ports.HostCapacity for browsers on cluster nodes: Ray's slot
    accounting decides (a launch finds no slot: 503), so no session is refused here; the
    warm pool grows only while the cluster has a free slot, as last counted. Who follows the
    count of nodes with slots (`on_nodes`) hears of each change: the warm pool, sized per
    node, grows with the nodes that join and shrinks with those that go."""

    def __init__(
        self,
        free_slots: Callable[[], Awaitable[Mapping[str, int]]] = _slots_per_node,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self._read = free_slots
        self._refresh_s = refresh_s
        self._free = 0
        self._nodes: int | None = None  # unknown until a count succeeds
        self._listeners: list[Callable[[int], None]] = []
        self._tasks = TaskSet("cluster-capacity")

    @property
    def free(self) -> int:
        return self._free

    @property
    def nodes(self) -> int | None:
        """Alive nodes with browser slots at the last count (None: never counted)."""
        return self._nodes

    def on_nodes(self, listener: Callable[[int], None]) -> None:
        """Call `listener` with the count of nodes with slots now (if known) and at each
        change."""
        self._listeners.append(listener)
        if self._nodes is not None:
            listener(self._nodes)

    def session_refusal(self, running_sessions: int) -> str | None:
        return None

    def pool_may_grow(self, running_browsers: int) -> bool:
        return self._free > 0

    async def start(self) -> None:
        await self._refresh()
        self._tasks.spawn(self._refreshing(), name="cluster-free-slots")

    async def _refreshing(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            await self._refresh()

    async def _refresh(self) -> None:
        try:
            per_node = await self._read()
        except Exception as error:  # a GCS that does not answer: no growth until it does
            log.warning("free browser slots unknown: %r", error)
            self._free = 0
            return
        self._free = sum(per_node.values())
        if len(per_node) != self._nodes:
            self._nodes = len(per_node)
            for listener in self._listeners:
                listener(self._nodes)

    async def aclose(self) -> None:
        await self._tasks.close()
