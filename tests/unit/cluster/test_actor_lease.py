"""The node's side of a browser's lease: a BrowserActor ends its browser when its API process
stops renewing (gone, frozen or cut off), and not while renewals come. Run on the actor class
itself (Ray only wraps it), with a stand-in for the browser."""

from __future__ import annotations

import asyncio

from browserfleet.cluster.actor import BrowserActor


class StandInBrowser:
    def __init__(self) -> None:
        self.closed = 0
        self.egress_bytes = 0

    async def close(self) -> None:
        self.closed += 1


def _actor_with_browser() -> tuple[BrowserActor, StandInBrowser]:
    actor, browser = BrowserActor(), StandInBrowser()
    actor._browser = browser  # type: ignore[assignment]  # as start() leaves it
    return actor, browser


async def test_a_lease_not_renewed_ends_the_browser_once() -> None:
    actor, browser = _actor_with_browser()
    actor.arm_lease(0.1)
    async with asyncio.timeout(5):
        while not browser.closed:
            await asyncio.sleep(0.01)
    assert actor.lease_expired and browser.closed == 1
    assert await actor.renew() is None  # too late: the browser is gone
    await actor.close()
    assert browser.closed == 1


async def test_renewals_keep_the_browser_and_close_ends_the_watch() -> None:
    actor, browser = _actor_with_browser()
    actor.arm_lease(0.2)
    for n in range(20):  # 0.4 s: twice the ttl
        browser.egress_bytes = n * 100
        assert await actor.renew() == n * 100  # its count so far comes with each renewal
        await asyncio.sleep(0.02)
    assert browser.closed == 0 and not actor.lease_expired
    await actor.close()
    assert browser.closed == 1 and not actor.lease_expired
