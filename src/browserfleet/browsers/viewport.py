"""Gives a browser's first window the session's geometry (browsers/geometry.py) and checks it.

At launch the switches give the screen; fit_window gives the first window its bounds and checks
what its page measures. reshape gives a running (pooled) browser another screen.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from browserfleet.browsers.devtools_endpoint import DevtoolsEndpoint
from browserfleet.browsers.geometry import Geometry
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.cdp.client import CdpConnection, JsonObject
from browserfleet.errors import BrowserLaunchFailed

log = logging.getLogger(__name__)

MEASURE = (
    "[innerWidth, innerHeight, outerWidth, outerHeight, screen.width, screen.height,"
    " screen.availWidth, screen.availHeight]"
)
# After Browser.setWindowBounds the page needs a frame or two to see its new size: it is
# measured every few milliseconds until it does, for at most this long.
SETTLE_TIMEOUT_S = 2.0
SETTLE_INTERVAL_S = 0.005


@dataclass(frozen=True, slots=True)
class PageSize:
    inner_width: int
    inner_height: int
    outer_width: int
    outer_height: int
    screen_width: int
    screen_height: int
    avail_width: int
    avail_height: int

    def fits(self, geometry: Geometry) -> bool:
        """The window fills the work area of a screen of the geometry's size."""
        return (
            self.outer_width,
            self.outer_height,
            self.screen_width,
            self.screen_height,
            self.avail_width,
            self.avail_height,
        ) == (
            geometry.window_width,
            geometry.window_height,
            geometry.screen_width,
            geometry.screen_height,
            geometry.screen_width,
            geometry.avail_height,
        )


async def fit_window(endpoint: DevtoolsEndpoint, spec: LaunchSpec) -> PageSize:
    """Ensure the first window has the spec's geometry; return what its page measures.

    The window itself is looked at first: full Chromium opens it at a size of its own choosing
    (chromium_args: no --window-size), which is then set. The page is measured until it sees
    the window's size."""
    geometry = Geometry(spec.screen_width, spec.screen_height)
    target_id = endpoint.first_page_id
    async with CdpConnection.connect(endpoint.browser_ws_url, dialer=endpoint.dialer) as cdp:
        window, attached = await cdp.call_many(
            [
                ("Browser.getWindowForTarget", {"targetId": target_id}, None),
                ("Target.attachToTarget", {"targetId": target_id, "flatten": True}, None),
            ]
        )
        session_id = str(attached["sessionId"])
        bounds = geometry.window_bounds()
        if window.get("bounds") != bounds:
            log.debug("window is %s, want %s: moving it", window.get("bounds"), bounds)
            await cdp.call(
                "Browser.setWindowBounds", {"windowId": window["windowId"], "bounds": bounds}
            )
        size = await _settled_size(cdp, session_id, geometry)
        if not size.fits(geometry):
            raise BrowserLaunchFailed(f"the window stayed {size}, wanted {geometry}")
        return size


async def reshape(endpoint: DevtoolsEndpoint, width: int, height: int) -> None:
    """Give a running browser a width x height screen, and its first window that geometry.

    Tabs opened later in that window inherit the size (headless=new); the headless shell is
    never reshaped (its pool key keeps the screen). Two pipelined batches: look up, then set
    and measure; the page usually fits at once, else it is looked at every few milliseconds.
    """
    geometry = Geometry(width, height)
    target_id = endpoint.first_page_id
    async with CdpConnection.connect(endpoint.browser_ws_url, dialer=endpoint.dialer) as cdp:
        window, screens, attached = await cdp.call_many(
            [
                ("Browser.getWindowForTarget", {"targetId": target_id}, None),
                ("Emulation.getScreenInfos", None, None),
                ("Target.attachToTarget", {"targetId": target_id, "flatten": True}, None),
            ]
        )
        session_id = str(attached["sessionId"])
        infos = screens.get("screenInfos")
        updates = [
            ("Emulation.updateScreen", geometry.update_screen(info["id"]), None)
            for info in (infos if isinstance(infos, list) else [])
        ]
        bounds = {"windowId": window["windowId"], "bounds": geometry.window_bounds()}
        answers = await cdp.call_many(
            [
                *updates,
                ("Browser.setWindowBounds", bounds, None),
                ("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session_id),
            ]
        )
        size = _page_size(answers[-1])
        if not size.fits(geometry):
            size = await _settled_size(cdp, session_id, geometry)
        if not size.fits(geometry):
            raise BrowserLaunchFailed(f"could not reshape the browser to {width}x{height}: {size}")


async def _settled_size(cdp: CdpConnection, session_id: str, geometry: Geometry) -> PageSize:
    """What the page measures once it fits the geometry, or after SETTLE_TIMEOUT_S."""
    size = await _measure(cdp, session_id)
    deadline = asyncio.get_running_loop().time() + SETTLE_TIMEOUT_S
    while not size.fits(geometry) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(SETTLE_INTERVAL_S)
        size = await _measure(cdp, session_id)
    return size


async def _measure(cdp: CdpConnection, session_id: str) -> PageSize:
    params: JsonObject = {"expression": MEASURE, "returnByValue": True}
    return _page_size(await cdp.call("Runtime.evaluate", params, session_id=session_id))


def _page_size(answer: JsonObject) -> PageSize:
    result = answer.get("result")
    value = result.get("value") if isinstance(result, dict) else None
    if not (isinstance(value, list) and len(value) == 8 and all(isinstance(v, int) for v in value)):
        raise BrowserLaunchFailed(f"cannot measure the first page: {answer}")
    return PageSize(*value)
