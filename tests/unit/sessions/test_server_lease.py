"""The server's lease on its sessions, on the loop's clock: held while heartbeats land,
lapsed past its TTL, fenced once, and renewed only by a heartbeat begun after the fence."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from browserfleet.sessions.server_lease import ServerLease

T = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_lease_never_renewed_is_not_held_and_never_due_to_fence() -> None:
    lease = ServerLease(2.0)
    assert not lease.held(0.0)
    assert not lease.due_to_fence(100.0)
    assert lease.last_written is None


def test_a_lease_is_held_within_its_ttl_and_due_to_fence_past_it() -> None:
    lease = ServerLease(2.0)
    lease.renewed(10.0, T)
    assert lease.held(12.0) and not lease.due_to_fence(12.0)
    assert not lease.held(12.01) and lease.due_to_fence(12.01)
    assert lease.age(12.5) == 2.5
    assert lease.last_written == T


def test_once_fenced_only_a_heartbeat_begun_after_the_fence_renews_it() -> None:
    lease = ServerLease(2.0)
    lease.renewed(10.0, T)
    lease.fenced(13.0)
    assert not lease.due_to_fence(14.0)  # fenced once
    lease.renewed(12.5, T.replace(second=5))  # began before the fence: vouches for nothing
    assert not lease.held(13.1)
    assert lease.last_written == T
    lease.renewed(13.5, T.replace(second=9))
    assert lease.held(14.0)
    assert lease.last_written == T.replace(second=9)


def test_a_freeze_lapses_the_lease_until_the_next_heartbeat_even_before_any_fence() -> None:
    lease = ServerLease(2.0)
    lease.renewed(10.0, T)
    assert not lease.held(40.0)  # woken from a 30 s freeze: no session may start yet
    lease.renewed(40.0, T.replace(second=30))
    assert lease.held(40.1)
    assert not lease.due_to_fence(40.1)


async def test_a_lapsed_lease_is_renewed_by_one_heartbeat_for_every_caller_waiting() -> None:
    lease = ServerLease(2.0)
    loop = asyncio.get_running_loop()
    heartbeats = 0

    async def heartbeat() -> None:
        nonlocal heartbeats
        heartbeats += 1
        began = loop.time()
        await asyncio.sleep(0.01)  # the write
        lease.renewed(began, T)

    assert not await lease.ensure_held()  # no way to renew it yet
    lease.renew_with(heartbeat)
    assert await asyncio.gather(*(lease.ensure_held() for _ in range(5))) == [True] * 5
    assert heartbeats == 1
    assert await lease.ensure_held() and heartbeats == 1  # held: nothing written


async def test_a_heartbeat_that_fails_leaves_the_lease_lapsed() -> None:
    lease = ServerLease(2.0)

    async def unreachable() -> None:
        raise OSError("connection refused")

    lease.renew_with(unreachable)
    assert not await lease.ensure_held()
