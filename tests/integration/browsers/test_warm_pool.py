"""The warm pool's bookkeeping, with a hand-written fake launcher (real Chromium: tests/e2e)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from runtime_fakes import FakeBrowser, FakeLauncher

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec, pool_key
from browserfleet.browsers.pool import WarmPool

SPEC = LaunchSpec(mode=HeadlessMode.NEW, screen_width=1920, screen_height=1080)


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.005)


def make_pool(
    tmp_path: Path, size: int = 2, room: bool = True
) -> tuple[WarmPool[FakeBrowser], FakeLauncher]:
    launcher = FakeLauncher()
    pool: WarmPool[FakeBrowser] = WarmPool(
        launcher, SPEC, size=size, root=tmp_path, has_room=lambda: room
    )
    return pool, launcher


async def test_fills_to_its_size_and_no_further(tmp_path: Path) -> None:
    pool, launcher = make_pool(tmp_path, size=3)
    pool.start()
    try:
        await until(lambda: pool.ready == 3)
        await asyncio.sleep(0.05)
        assert len(launcher.browsers) == 3
    finally:
        await pool.aclose()


async def test_take_hands_out_each_browser_once_and_refills(tmp_path: Path) -> None:
    pool, _launcher = make_pool(tmp_path, size=1)
    pool.start()
    try:
        await until(lambda: pool.ready == 1)
        first = pool.take(SPEC)
        assert first is not None
        assert pool.take(SPEC) is None  # empty until refilled, never the same one again
        await until(lambda: pool.ready == 1)
        second = pool.take(SPEC)
        assert second is not None and second is not first
    finally:
        await pool.aclose()


def test_pool_key_ignores_the_screen_of_full_chromium_only() -> None:
    small = LaunchSpec(mode=HeadlessMode.NEW, screen_width=1280, screen_height=720)
    assert pool_key(small) == pool_key(SPEC)
    shell = LaunchSpec(mode=HeadlessMode.SHELL, screen_width=1280, screen_height=720)
    shell_default = LaunchSpec(mode=HeadlessMode.SHELL, screen_width=1920, screen_height=1080)
    assert pool_key(shell) != pool_key(shell_default)
    assert pool_key(
        LaunchSpec(mode=HeadlessMode.NEW, screen_width=1920, screen_height=1080, pdf_viewer=False)
    ) != pool_key(SPEC)
    assert pool_key(
        LaunchSpec(
            mode=HeadlessMode.NEW, screen_width=1920, screen_height=1080, ignore_cert_errors=True
        )
    ) != pool_key(SPEC)


async def test_a_spec_it_cannot_serve_gets_nothing(tmp_path: Path) -> None:
    pool, _ = make_pool(tmp_path, size=1)
    pool.start()
    try:
        await until(lambda: pool.ready == 1)
        other = LaunchSpec(
            mode=HeadlessMode.NEW, screen_width=800, screen_height=600, pdf_viewer=False
        )
        assert not pool.serves(other)
        assert pool.take(other) is None
        assert pool.ready == 1
    finally:
        await pool.aclose()


async def test_no_room_means_no_launch(tmp_path: Path) -> None:
    pool, launcher = make_pool(tmp_path, size=2, room=False)
    pool.start()
    try:
        await asyncio.sleep(0.1)
        assert launcher.browsers == []
    finally:
        await pool.aclose()


async def test_evict_closes_a_pooled_browser(tmp_path: Path) -> None:
    room = {"ok": True}
    launcher = FakeLauncher()
    pool: WarmPool[FakeBrowser] = WarmPool(
        launcher, SPEC, size=2, root=tmp_path, has_room=lambda: room["ok"]
    )
    pool.start()
    try:
        await until(lambda: pool.ready == 2)
        room["ok"] = False  # sessions took the room: evicted browsers are not replaced
        assert pool.evict()
        await until(lambda: sum(b.closed for b in launcher.browsers) == 1)
        await asyncio.sleep(0.05)
        assert pool.ready == 1 and len(launcher.browsers) == 2
    finally:
        await pool.aclose()


async def test_a_pooled_browser_that_dies_is_replaced(tmp_path: Path) -> None:
    pool, launcher = make_pool(tmp_path, size=1)
    pool.start()
    try:
        await until(lambda: pool.ready == 1)
        launcher.browsers[0].crash()
        await until(lambda: len(launcher.browsers) == 2 and pool.ready == 1)
        assert pool.take(SPEC) is launcher.browsers[1]
    finally:
        await pool.aclose()


async def test_launch_failures_are_counted_and_retried(tmp_path: Path) -> None:
    pool, launcher = make_pool(tmp_path, size=1)
    launcher.fail_next = True
    pool.start()
    try:
        await until(lambda: pool.failures == 1)
        assert pool.ready == 0
    finally:
        await pool.aclose()


async def test_aclose_closes_every_waiting_browser(tmp_path: Path) -> None:
    pool, launcher = make_pool(tmp_path, size=3)
    pool.start()
    await until(lambda: pool.ready == 3)
    await pool.aclose()
    assert all(b.closed == 1 for b in launcher.browsers)
    assert pool.ready == 0


@pytest.mark.parametrize("size", [0])
async def test_size_zero_disables_the_pool(tmp_path: Path, size: int) -> None:
    pool, launcher = make_pool(tmp_path, size=size)
    pool.start()
    await asyncio.sleep(0.05)
    assert launcher.browsers == [] and pool.take(SPEC) is None
    await pool.aclose()


async def test_a_resized_pool_grows_to_its_new_size_and_closes_what_is_past_it(
    tmp_path: Path,
) -> None:
    """A cluster's nodes came (grow, even from nothing) or went (the ready browsers past
    the new size are closed, none launched in their place)."""
    pool, launcher = make_pool(tmp_path, size=0)
    pool.start()
    try:
        pool.resize(2)  # from a pool that never refilled
        await until(lambda: pool.ready == 2)
        pool.resize(3)
        await until(lambda: pool.ready == 3)
        pool.resize(1)
        assert pool.ready == 1 and pool.size == 1
        await until(lambda: sum(b.closed for b in launcher.browsers) == 2)
        launched = len(launcher.browsers)
        pool.resize(1)  # unchanged: nothing happens
        assert pool.take(SPEC) is not None
        await until(lambda: pool.ready == 1)  # refilled to the new size, no further
        assert len(launcher.browsers) == launched + 1
    finally:
        await pool.aclose()
