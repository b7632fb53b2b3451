"""Makes a fresh browser's first page show exactly the spec's viewport, measuring the UI insets.

The launcher starts Chromium with --window-size = viewport + the insets it last measured; this
checks the first page and, if the guess was wrong, resizes the window and reports the insets.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from browserfleet.browsers.chromium_args import UiInsets
from browserfleet.browsers.devtools_endpoint import DevtoolsEndpoint
from browserfleet.browsers.launch_spec import LaunchSpec
from browserfleet.cdp.client import CdpConnection, JsonObject
from browserfleet.errors import BrowserLaunchFailed

log = logging.getLogger(__name__)

MEASURE = "[innerWidth, innerHeight, outerWidth, outerHeight, screen.width, screen.height]"
# A page may report its size before its first layout settles: look again before resizing.
SETTLE_TRIES = 3
SETTLE_INTERVAL_S = 0.03
# After Browser.setWindowBounds the page needs a frame or two to see its new size.
RESIZE_TRIES = 50
RESHAPE_INTERVAL_S = 0.005


Size = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PageSize:
    inner_width: int
    inner_height: int
    outer_width: int
    outer_height: int
    screen_width: int
    screen_height: int

    @property
    def insets(self) -> UiInsets:
        return UiInsets(self.outer_width - self.inner_width, self.outer_height - self.inner_height)

    def fits(self, want: Size) -> bool:
        return (self.inner_width, self.inner_height) == want


async def fit_viewport(endpoint: DevtoolsEndpoint, spec: LaunchSpec) -> UiInsets:
    """Ensure the first page's viewport is the spec's size; return the window's UI insets."""
    target_id = endpoint.first_page_id
    async with CdpConnection.connect(endpoint.browser_ws_url, dialer=endpoint.dialer) as cdp:
        attached = await cdp.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        session_id = str(attached["sessionId"])
        want = (spec.screen_width, spec.screen_height)
        size = await _settled_size(cdp, session_id, want, SETTLE_TRIES)
        if not size.fits(want):
            log.info(
                "viewport %dx%d, want %dx%d: resizing the window",
                size.inner_width,
                size.inner_height,
                spec.screen_width,
                spec.screen_height,
            )
            await _resize_window(cdp, target_id, spec, size.insets)
            size = await _settled_size(cdp, session_id, want, RESIZE_TRIES)
        if not size.fits(want):
            raise BrowserLaunchFailed(
                f"viewport stayed {size.inner_width}x{size.inner_height}, "
                f"wanted {spec.screen_width}x{spec.screen_height}"
            )
        if (size.screen_width, size.screen_height) != (spec.screen_width, spec.screen_height):
            log.warning(
                "screen is %dx%d despite --screen-info", size.screen_width, size.screen_height
            )
        return size.insets


async def reshape(endpoint: DevtoolsEndpoint, width: int, height: int) -> None:
    """Give a running browser a new screen and its first window a width x height viewport.

    Tabs opened later in that window inherit the size (headless=new); the headless shell is
    never reshaped (its pool key keeps the screen). Two pipelined batches: look up, then set
    and measure; the page usually fits at once, else it is looked at every few milliseconds.
    """
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
            (
                "Emulation.updateScreen",
                {"screenId": info["id"], "left": 0, "top": 0, "width": width, "height": height},
                None,
            )
            for info in (infos if isinstance(infos, list) else [])
        ]
        contents = {"windowId": window["windowId"], "width": width, "height": height}
        answers = await cdp.call_many(
            [
                ("Browser.setContentsSize", contents, None),
                *updates,
                ("Runtime.evaluate", {"expression": MEASURE, "returnByValue": True}, session_id),
            ]
        )
        size = _page_size(answers[-1])
        if not _fits_screen(size, width, height):
            size = await _settled_size(
                cdp, session_id, (width, height), RESIZE_TRIES, interval_s=RESHAPE_INTERVAL_S
            )
        if not _fits_screen(size, width, height):
            raise BrowserLaunchFailed(f"could not reshape the browser to {width}x{height}: {size}")


def _fits_screen(size: PageSize, width: int, height: int) -> bool:
    return size.fits((width, height)) and (size.screen_width, size.screen_height) == (width, height)


async def _settled_size(
    cdp: CdpConnection,
    session_id: str,
    want: Size,
    tries: int,
    interval_s: float = SETTLE_INTERVAL_S,
) -> PageSize:
    size = await _measure(cdp, session_id)
    for _ in range(tries - 1):
        if size.fits(want):
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
    if not (isinstance(value, list) and len(value) == 6 and all(isinstance(v, int) for v in value)):
        raise BrowserLaunchFailed(f"cannot measure the first page: {answer}")
    return PageSize(*value)


async def _resize_window(
    cdp: CdpConnection, target_id: str, spec: LaunchSpec, insets: UiInsets
) -> None:
    window = await cdp.call("Browser.getWindowForTarget", {"targetId": target_id})
    bounds: JsonObject = {
        "width": spec.screen_width + insets.width,
        "height": spec.screen_height + insets.height,
    }
    await cdp.call("Browser.setWindowBounds", {"windowId": window["windowId"], "bounds": bounds})
