"""Gives a browser's first window the session's geometry (browsers/geometry.py) and checks it.

At launch the switches already ask for it; fit_window checks the first page and corrects the
window if Chromium placed it otherwise. reshape gives a running (pooled) browser another screen.
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
# A page may report its size before its first layout settles: look again before resizing.
SETTLE_TRIES = 3
SETTLE_INTERVAL_S = 0.03
# After Browser.setWindowBounds the page needs a frame or two to see its new size.
RESIZE_TRIES = 50
RESHAPE_INTERVAL_S = 0.005


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
    """Ensure the first window has the spec's geometry; return what its page measures."""
    geometry = Geometry(spec.screen_width, spec.screen_height)
    target_id = endpoint.first_page_id
    async with CdpConnection.connect(endpoint.browser_ws_url, dialer=endpoint.dialer) as cdp:
        attached = await cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        session_id = str(attached["sessionId"])
        size = await _settled_size(cdp, session_id, geometry, SETTLE_TRIES)
        if not size.fits(geometry):
            log.info("window is %s, want %s: moving it", size, geometry)
            window = await cdp.call("Browser.getWindowForTarget", {"targetId": target_id})
            bounds = {"windowId": window["windowId"], "bounds": geometry.window_bounds()}
            await cdp.call("Browser.setWindowBounds", bounds)
            size = await _settled_size(cdp, session_id, geometry, RESIZE_TRIES)
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
            size = await _settled_size(
                cdp, session_id, geometry, RESIZE_TRIES, interval_s=RESHAPE_INTERVAL_S
            )
        if not size.fits(geometry):
            raise BrowserLaunchFailed(f"could not reshape the browser to {width}x{height}: {size}")


async def _settled_size(
    cdp: CdpConnection,
    session_id: str,
    geometry: Geometry,
    tries: int,
    interval_s: float = SETTLE_INTERVAL_S,
) -> PageSize:
    size = await _measure(cdp, session_id)
    for _ in range(tries - 1):
        if size.fits(geometry):
            break
        await asyncio.sleep(interval_s)
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
