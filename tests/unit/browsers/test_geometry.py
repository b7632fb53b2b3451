"""The desktop geometry rule: screen, work area, maximized window."""

from __future__ import annotations

import pytest

from browserfleet.browsers.geometry import MIN_WINDOW_WIDTH, TASKBAR_HEIGHT, Geometry


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 720), (6144, 3456)])
def test_the_window_fills_the_work_area_above_the_taskbar(width: int, height: int) -> None:
    geometry = Geometry(width, height)
    assert (geometry.window_width, geometry.window_height) == (width, height - TASKBAR_HEIGHT)
    assert geometry.avail_height == height - TASKBAR_HEIGHT
    assert geometry.window_bounds() == {
        "left": 0,
        "top": 0,
        "width": width,
        "height": height - TASKBAR_HEIGHT,
        "windowState": "normal",
    }
    assert geometry.screen_info_switch() == f"{{0,0 {width}x{height} workAreaBottom=48}}"


def test_a_screen_narrower_than_chromiums_narrowest_window_gets_that_window() -> None:
    geometry = Geometry(320, 320)
    assert (geometry.window_width, geometry.window_height) == (MIN_WINDOW_WIDTH, 272)


def test_update_screen_sets_size_and_taskbar() -> None:
    assert Geometry(800, 600).update_screen(7) == {
        "screenId": 7,
        "left": 0,
        "top": 0,
        "width": 800,
        "height": 600,
        "workAreaInsets": {"bottom": TASKBAR_HEIGHT},
    }
