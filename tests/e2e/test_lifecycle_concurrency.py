"""Concurrency limits under a storm of parallel creates (httpx: the SDK would retry 429s)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from fleet_server import POOL_SIZE, TOO_MANY, Janitor, Server, wait_for

pytestmark = pytest.mark.e2e


async def test_twenty_parallel_creates_against_a_limit_of_three_give_exactly_three_sessions(
    server: Server, janitor: Janitor, tag: str
) -> None:
    _, key = server.new_project(concurrent_limit=3)
    async with httpx.AsyncClient(
        base_url=server.api(), headers={"X-Browser-Use-API-Key": key}, timeout=120
    ) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/browsers", json={"timeout": 2, "metadata": {"suite": tag, "n": str(n)}}
                )
                for n in range(20)
            )
        )
        created = [r.json()["id"] for r in responses if r.status_code == 201]
        for session_id in created:
            janitor.track(server, key, session_id)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] * 3 + [429] * 17, Counter(
            (r.status_code, r.text[:60]) for r in responses
        )
        for refused in (r for r in responses if r.status_code == 429):
            assert refused.json() == {"detail": TOO_MANY}
            assert refused.headers.get("retry-after") == "5"

        listed = (await client.get("/browsers", params={"metadata": f"suite={tag}"})).json()
        assert listed["totalItems"] == 3
        assert {i["id"] for i in listed["items"]} == set(created)
        assert all(i["status"] == "active" for i in listed["items"])
        account = (await client.get("/billing/account")).json()
        assert account["activeSessionCount"] == 3

        # One browser per granted session; besides them at most the warm pool, nothing
        # left over from the refused creates.
        for _ in range(2):
            running = server.browser_sessions_running()
            assert set(created) <= running
            assert len(running - set(created)) <= POOL_SIZE, running
            await asyncio.sleep(2)

        for session_id in created:
            stop = await client.patch(f"/browsers/{session_id}", json={"action": "stop"})
            assert stop.status_code == 200
        retry = await client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert retry.status_code == 201, retry.text
        janitor.track(server, key, retry.json()["id"])
        await client.patch(f"/browsers/{retry.json()['id']}", json={"action": "stop"})

    wait_for(
        lambda: not (server.browser_sessions_running() & set(created)),
        10,
        what="every browser of the storm to exit",
    )


def test_the_host_browser_cap_refuses_creates_beyond_it(
    make_server: Callable[..., Server], janitor: Janitor, tag: str
) -> None:
    capped: Server = make_server(
        BROWSERFLEET_LIMITS__HOST_MAX_BROWSERS="2",
        BROWSERFLEET_LIMITS__DEFAULT_CONCURRENT_SESSIONS="5",
        BROWSERFLEET_BROWSER__POOL_SIZE="0",
    )
    first = janitor.create(capped, timeout=2, metadata={"suite": tag})
    second = janitor.create(capped, timeout=2, metadata={"suite": tag})
    with capped.http() as client:
        refused = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        # The project has room (5); the host has none: 503, not 429.
        assert refused.status_code == 503, refused.text
        assert "retry-after" in refused.headers
        listed = client.get("/browsers", params={"metadata": f"suite={tag}"}).json()
        assert listed["totalItems"] == 2
        assert capped.browser_sessions_running() == {first["id"], second["id"]}
        for view in (first, second):
            client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
