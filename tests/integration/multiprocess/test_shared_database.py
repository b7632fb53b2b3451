"""Two real server processes (uvicorn, the real app, the runtime fakes instead of Chromium) on
one database: the correctness rules must hold across processes, with nothing in-process to
lean on. The storm runs on both backends; the rest on PostgreSQL, the multi-server database.
tests/e2e/test_two_servers.py repeats the crash with real Chromium."""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fake_servers import FakeServer, free_port
from sqlalchemy import func, select

from browserfleet.ids import SessionId
from browserfleet.store.engine import create_engine, dispose, reader
from browserfleet.store.ledger import LedgerKind, replay_balance
from browserfleet.store.projects import SqlProjectStore
from browserfleet.store.tables import instances, sessions

HEARTBEAT_S = 0.5  # takeover tests: a server silent for 3 beats (1.5 s) is dead
CALM_HEARTBEAT_S = 5.0
LIMIT = 3
STORM = 24  # creates at once, half on each server
only_postgresql = pytest.mark.parametrize("database", ["postgresql"], indirect=True)


@pytest.fixture
def start_servers(
    suite_resources: Any, database_url: str
) -> Iterator[Callable[..., list[FakeServer]]]:
    """Start n servers on the test's database, sharing the server secret (as they must).
    `heartbeat_s`: short where a test waits for a takeover; long elsewhere, so a server slowed
    down by a loaded machine is never taken for dead in the middle of another test."""
    started: list[FakeServer] = []
    secret = secrets.token_hex(32)

    def start(
        n: int, heartbeat_s: float = CALM_HEARTBEAT_S, public_urls: bool = False
    ) -> list[FakeServer]:
        shared = {
            "BROWSERFLEET_DATABASE_URL": database_url,
            "BROWSERFLEET_SERVER_SECRET": secret,
            "BROWSERFLEET_HEARTBEAT_INTERVAL_S": str(heartbeat_s),
            "BROWSERFLEET_REAPER_INTERVAL_S": "0.25",
        }
        fresh = []
        for _ in range(n):
            port = free_port()
            suite_resources.ports.add(port)
            env = dict(shared)
            if public_urls:  # each names itself, as behind a load balancer each must
                env["BROWSERFLEET_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
            server = FakeServer(suite_resources.new_data_dir(), port, env)
            started.append(server)
            fresh.append(server)
            server.spawn()  # all at once: they also race to migrate and to create the key
        for server in fresh:
            server.wait_ready()
        return fresh

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def books(database_url: str) -> AsyncIterator[SqlProjectStore]:
    engine = create_engine(database_url)
    try:
        yield SqlProjectStore(engine)
    finally:
        await dispose(engine)


def _initial_key(*servers: FakeServer) -> str:
    """Exactly one of the servers found the database empty and minted the first key."""
    keys = [s.initial_key() for s in servers if (s.data_dir / "initial-api-key").exists()]
    assert len(keys) == 1, keys
    return keys[0]


def _client(server: FakeServer, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{server.url}/api/v3", headers={"X-Browser-Use-API-Key": key}, timeout=60
    )


async def _live_rows(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with reader(engine).connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(sessions)
                .where(sessions.c.status.in_(("starting", "active", "stopping")))
            )
    finally:
        await dispose(engine)
    return int(count or 0)


async def _assert_settled_once(books: SqlProjectStore, name: str) -> None:
    """Every session has exactly one charge and one refund, no slot is held, and the ledger
    replays to the balance."""
    project = await books.project_by_name(name)
    assert project is not None
    assert project.active_count == 0
    entries = await books.ledger_for_project(project.id)
    assert replay_balance(entries) == project.credit_balance_micros
    by_session: dict[SessionId | None, list[LedgerKind]] = {}
    for entry in entries:
        by_session.setdefault(entry.session_id, []).append(entry.kind)
    by_session.pop(None, None)  # credit changes
    assert by_session, "no session was billed"
    for kinds in by_session.values():
        assert sorted(kinds) == [LedgerKind.CHARGE, LedgerKind.REFUND], kinds


async def test_a_create_storm_on_two_servers_never_exceeds_the_project_limit(
    start_servers: Callable[..., list[FakeServer]],
    books: SqlProjectStore,
    database_url: str,
) -> None:
    a, b = start_servers(2)
    key = _initial_key(a, b)
    await books.update_project("default", concurrent_limit=LIMIT, credits_micros=10**9)
    async with _client(a, key) as on_a, _client(b, key) as on_b:
        for _round in range(3):
            # Odd creates go to A, even ones to B; each stop goes to the other server.
            pairs = [(on_a, on_b) if i % 2 else (on_b, on_a) for i in range(STORM)]
            answers = await asyncio.gather(
                *(creator.post("/browsers", json={"timeout": 5}) for creator, _ in pairs)
            )
            codes = sorted(r.status_code for r in answers)
            assert codes == [201] * LIMIT + [429] * (STORM - LIMIT), codes
            assert await _live_rows(database_url) == LIMIT
            project = await books.project_by_name("default")
            assert project is not None and project.active_count == LIMIT
            stopped = await asyncio.gather(
                *(
                    other.patch(f"/browsers/{r.json()['id']}", json={"action": "stop"})
                    for r, (_, other) in zip(answers, pairs, strict=True)
                    if r.status_code == 201
                )
            )
            assert [s.json()["status"] for s in stopped] == ["stopped"] * LIMIT
            assert await _live_rows(database_url) == 0
    await _assert_settled_once(books, "default")


@only_postgresql
async def test_a_stop_asked_on_the_other_server_is_carried_out_by_the_owner(
    start_servers: Callable[..., list[FakeServer]], books: SqlProjectStore
) -> None:
    a, b = start_servers(2)
    key = _initial_key(a, b)
    async with _client(a, key) as on_a, _client(b, key) as on_b:
        created = (await on_a.post("/browsers", json={"timeout": 5})).json()
        assert a.browsers_running() == 1 and b.browsers_running() == 0
        seen_on_b = (await on_b.get(f"/browsers/{created['id']}")).json()
        assert seen_on_b["status"] == "active"
        # The shared secret: B derives the same CDP token (its URL names B's own address: a
        # server answers with its own base unless --public-url says otherwise).
        assert seen_on_b["cdpUrl"].split("/cdp/")[1] == created["cdpUrl"].split("/cdp/")[1]
        stopped = (await on_b.patch(f"/browsers/{created['id']}", json={"action": "stop"})).json()
        assert stopped["status"] == "stopped"
        assert a.browsers_running() == 0  # the owner closed its browser
        again = await on_a.patch(f"/browsers/{created['id']}", json={"action": "stop"})
        assert again.status_code == 200
        assert _without_urls(again.json()) == _without_urls(stopped)  # stopped once, not twice
    await _assert_settled_once(books, "default")


@only_postgresql
async def test_a_session_read_on_another_server_names_its_owner_in_its_urls(
    start_servers: Callable[..., list[FakeServer]],
) -> None:
    """Only the server running a session serves its CDP and live URLs: another server that
    answers for it hands out the owner's (its public URL, from its heartbeats)."""
    a, b = start_servers(2, heartbeat_s=1.0, public_urls=True)
    key = _initial_key(a, b)
    async with _client(a, key) as on_a, _client(b, key) as on_b:
        created = (await on_a.post("/browsers", json={"timeout": 5})).json()
        assert created["cdpUrl"].startswith(f"{a.url}/cdp/")
        token = created["cdpUrl"].split("/cdp/")[1]
        # B is not the owner: its own address has no route to the browser.
        async with httpx.AsyncClient(timeout=10) as anyone:
            assert (await anyone.get(f"{b.url}/cdp/{token}/json/version")).status_code == 404

        async def seen_on_b() -> dict[str, Any]:
            view: dict[str, Any] = (await on_b.get(f"/browsers/{created['id']}")).json()
            return view

        deadline = time.monotonic() + 20  # B learns A's URL from A's next heartbeat
        while not (view := await seen_on_b())["cdpUrl"].startswith(a.url):
            assert time.monotonic() < deadline, view
            await asyncio.sleep(0.1)
        assert view["cdpUrl"] == created["cdpUrl"]
        assert view["liveUrl"] == created["liveUrl"]
        async with httpx.AsyncClient(timeout=10) as anyone:
            assert (await anyone.get(f"{view['cdpUrl']}/json/version")).status_code == 200
        listed = (await on_b.get("/browsers")).json()["items"]
        assert [item["cdpUrl"] for item in listed] == [created["cdpUrl"]]
        stopped = (await on_b.patch(f"/browsers/{created['id']}", json={"action": "stop"})).json()
        assert stopped["cdpUrl"] == created["cdpUrl"]


@only_postgresql
async def test_kill_9_of_one_server_the_other_adopts_and_bills_at_its_last_heartbeat(
    start_servers: Callable[..., list[FakeServer]], books: SqlProjectStore, database_url: str
) -> None:
    a, b = start_servers(2, heartbeat_s=HEARTBEAT_S)
    key = _initial_key(a, b)
    async with _client(a, key) as on_a, _client(b, key) as on_b:
        views = [(await on_a.post("/browsers", json={"timeout": 5})).json() for _ in range(2)]
        started = max(datetime.fromisoformat(v["startedAt"]) for v in views)
        await _until(lambda: _heartbeat_after(database_url, a.pid, started), "a heartbeat of A")
        last_beat = await _heartbeat_of(database_url, a.pid)
        killed_at = datetime.now(UTC)
        a.kill9()

        async def all_stopped() -> list[dict[str, Any]] | None:
            got = [(await on_b.get(f"/browsers/{v['id']}")).json() for v in views]
            return got if all(g["status"] == "stopped" for g in got) else None

        settled = await _until(all_stopped, "B to settle A's sessions", timeout=20)
    for view in settled:
        finished = datetime.fromisoformat(view["finishedAt"])
        # A's last heartbeat: not the moment B noticed, nor the kill itself.
        assert last_beat <= finished <= killed_at
        assert finished - last_beat < timedelta(seconds=HEARTBEAT_S * 4)
    await _assert_settled_once(books, "default")
    assert await _live_rows(database_url) == 0


@only_postgresql
async def test_a_frozen_server_is_taken_over_and_closes_its_browsers_when_it_wakes(
    start_servers: Callable[..., list[FakeServer]], books: SqlProjectStore
) -> None:
    """Fencing: SIGSTOP A past the orphan timeout; B settles its session as of A's last
    heartbeat; SIGCONT A: its next sweep closes that browser and leaves the books alone."""
    a, b = start_servers(2, heartbeat_s=HEARTBEAT_S)
    key = _initial_key(a, b)
    async with _client(a, key) as on_a, _client(b, key) as on_b:
        created = (await on_a.post("/browsers", json={"timeout": 5})).json()
        assert a.browsers_running() == 1
        a.signal(signal.SIGSTOP)
        try:

            async def stopped_on_b() -> dict[str, Any] | None:
                view = (await on_b.get(f"/browsers/{created['id']}")).json()
                return view if view["status"] == "stopped" else None

            settled = await _until(stopped_on_b, "B to take over the frozen server's session")
        finally:
            a.signal(signal.SIGCONT)
        await _until(lambda: _sync(a.browsers_running() == 0), "A to close the taken browser")
        again = (await on_a.get(f"/browsers/{created['id']}")).json()
        assert again["finishedAt"] == settled["finishedAt"]
        assert again["status"] == "stopped"
    await _assert_settled_once(books, "default")


def _without_urls(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k not in ("cdpUrl", "liveUrl", "viewOnlyLiveUrl")}


async def _sync(value: bool) -> bool:
    return value


async def _heartbeat_of(database_url: str, pid: int) -> datetime:
    engine = create_engine(database_url)
    try:
        async with reader(engine).connect() as conn:
            beat = await conn.scalar(select(instances.c.heartbeat_at).where(instances.c.pid == pid))
    finally:
        await dispose(engine)
    assert isinstance(beat, datetime)
    return beat


async def _heartbeat_after(database_url: str, pid: int, after: datetime) -> bool:
    return await _heartbeat_of(database_url, pid) > after


async def _until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.1)


@only_postgresql
async def test_a_server_started_with_another_secret_exits_and_says_why(
    start_servers: Callable[..., list[FakeServer]], suite_resources: Any
) -> None:
    (a,) = start_servers(1)
    port = free_port()
    suite_resources.ports.add(port)
    stranger = FakeServer(
        suite_resources.new_data_dir(),
        port,
        {**a.settings, "BROWSERFLEET_SERVER_SECRET": secrets.token_hex(32)},
    )
    stranger.spawn()
    try:
        assert stranger.proc is not None
        assert stranger.proc.wait(timeout=60) != 0
        assert "give every server the same BROWSERFLEET_SERVER_SECRET" in stranger.log()
        assert stranger.settings["BROWSERFLEET_SERVER_SECRET"] not in stranger.log()
    finally:
        stranger.stop()
    assert a.browsers_running() == 0  # the first one serves on
