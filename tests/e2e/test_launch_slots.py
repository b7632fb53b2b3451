"""Launches beyond the parallel limit wait their turn instead of slowing each other down."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import psutil
import pytest
from loopback import RESOLVER_RULES

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import LocalChromiumLauncher

pytestmark = pytest.mark.e2e

SPEC = LaunchSpec(
    mode=HeadlessMode.SHELL, screen_width=800, screen_height=600, extra_args=(RESOLVER_RULES,)
)


async def test_one_launch_slot_starts_browsers_one_after_another(suite_resources: Any) -> None:
    root: Path = suite_resources.new_data_dir()
    launcher = LocalChromiumLauncher(
        Path("/usr/lib/chromium/chromium"),
        Path("/usr/lib/chromium/chromium-headless-shell"),
        launch_timeout_s=60,
        parallel_launches=1,
    )
    browsers = await asyncio.gather(*(launcher.launch(SPEC, root / f"b{i}") for i in range(3)))
    try:
        started = sorted(psutil.Process(b.pid).create_time() for b in browsers)
        # Each process starts only once the previous one answered CDP (tens of ms at least);
        # unthrottled, all three would be spawned within a few milliseconds of each other.
        gaps = [later - earlier for earlier, later in itertools.pairwise(started)]
        assert min(gaps) >= 0.05, gaps
    finally:
        await asyncio.gather(*(b.close() for b in browsers))
    assert not any(p.is_running() for p in map(_process, browsers) if p is not None)


def _process(browser: Any) -> psutil.Process | None:
    try:
        return psutil.Process(browser.pid)
    except psutil.NoSuchProcess:
        return None
