"""The cluster's room as the session service sees it: no session refused for room (Ray's
slots decide), the pool grows only while a slot was free at the last count."""

from __future__ import annotations

import asyncio

from browserfleet.cluster.driver import ClusterCapacity


async def test_the_pool_grows_only_while_the_last_count_has_a_free_slot() -> None:
    counts = [{"n1": 1, "n2": 1}, {"n1": 0, "n2": 0}]
    read = asyncio.Event()

    async def free_slots() -> dict[str, int]:
        read.set()
        return counts.pop(0) if len(counts) > 1 else counts[0]

    capacity = ClusterCapacity(free_slots, refresh_s=0.001)
    await capacity.start()
    try:
        assert capacity.free == 2 and capacity.pool_may_grow(running_browsers=50)
        assert capacity.session_refusal(running_sessions=10_000) is None
        async with asyncio.timeout(5):
            while capacity.free != 0:
                read.clear()
                await read.wait()
        assert not capacity.pool_may_grow(running_browsers=0)
    finally:
        await capacity.aclose()


async def test_a_gcs_that_does_not_answer_stops_the_pools_growth() -> None:
    async def unreachable() -> dict[str, int]:
        raise ConnectionError("GCS down")

    capacity = ClusterCapacity(unreachable)
    await capacity.start()
    try:
        assert capacity.free == 0 and not capacity.pool_may_grow(running_browsers=0)
        assert capacity.session_refusal(running_sessions=0) is None
    finally:
        await capacity.aclose()


async def test_who_follows_the_nodes_hears_each_change_of_their_count() -> None:
    counts = [{"n1": 1}, {"n1": 0}, {"n1": 0, "n2": 2}, {"n2": 2}, {"n2": 1}]
    read = asyncio.Event()

    async def free_slots() -> dict[str, int]:
        read.set()
        return counts.pop(0) if len(counts) > 1 else counts[0]

    heard: list[int] = []
    capacity = ClusterCapacity(free_slots, refresh_s=0.001)
    await capacity.start()
    try:
        capacity.on_nodes(heard.append)  # told the current count at once
        async with asyncio.timeout(5):
            while len(counts) > 1:
                read.clear()
                await read.wait()
        assert heard == [1, 2, 1]  # a node joined, one went; slots taken change nothing
        assert capacity.nodes == 1
    finally:
        await capacity.aclose()
