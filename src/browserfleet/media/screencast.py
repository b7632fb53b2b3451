"""One server-side screencast per browser, shared by the recorder and every view-only viewer.

It holds its own connection to the browser (a CdpLink, dialed through the browser's DevTools
dialer, like the primer's), never a client's. It follows one tab at a time: the page where
something last happened, i.e. the page most recently created (a new tab or popup the automation
or the site opened) or navigated to another URL. When that page closes it falls back to the
previous such page. The followed tab is brought to the front: Chrome paints no frames for a
background tab. (A `Page.bringToFront` without a navigation emits no event a second
debugger can see, so it is not followed.)

Chrome sends the next screencast frame only once the last one is acknowledged: the ack is held
so that the browser renders at most the highest rate any consumer asked for (the recording's
10 fps, a viewer's 30), however fast the page animates. A still page sends no frames at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import time

from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.cdp.dial import DevtoolsDialer, get_json
from browserfleet.cdp.link import CdpLink
from browserfleet.media.frames import Frame, FrameSlot, ack_delay
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

JPEG_QUALITY = 70


class Screencast:
    """Open with `await Screencast.open(dialer, max_width=..., max_height=...)`; subscribe
    consumers with `subscribe(rate)`; `close()` when done (it closes every slot)."""

    def __init__(self, max_width: int, max_height: int) -> None:
        self._max = (max_width, max_height)
        self._link: CdpLink | None = None
        self._tasks = TaskSet("screencast")
        self._slots: dict[FrameSlot, float] = {}
        self._pages: dict[str, str] = {}  # target id -> url, in order of last activity
        self._wanted: str | None = None
        self._current: tuple[str, str] | None = None  # (target id, cdp session id)
        self._changed = asyncio.Event()
        self._seq = 0
        self._last: Frame | None = None
        self._last_frame_at = 0.0
        self._closed = False
        self.frames_received = 0

    @classmethod
    async def open(cls, dialer: DevtoolsDialer, *, max_width: int, max_height: int) -> Screencast:
        version = await get_json(dialer, "/json/version")
        ws_url = version.get("webSocketDebuggerUrl") if isinstance(version, dict) else None
        if not isinstance(ws_url, str):
            raise CdpError("Target.setDiscoverTargets", "the browser named no websocket")
        cast = cls(max_width, max_height)
        cast._link = await CdpLink.open(ws_url, cast._on_event, dialer=dialer)
        try:
            await cast._link.call("Target.setDiscoverTargets", {"discover": True})
        except BaseException:
            await cast._link.close()
            raise
        cast._tasks.spawn(cast._follow(), name="follow")
        return cast

    @property
    def is_open(self) -> bool:
        return not self._closed and self._link is not None and self._link.is_open

    @property
    def followed(self) -> str | None:
        """The target id of the tab being cast (None: none yet)."""
        return self._current[0] if self._current else None

    def subscribe(self, rate_fps: float) -> FrameSlot:
        """A slot that receives every frame (the newest wins); the browser is paced to the
        fastest subscriber's rate. The slot starts with the last frame, if any."""
        slot = FrameSlot()
        self._slots[slot] = rate_fps
        if self._closed:
            slot.close()
        elif self._last is not None:
            slot.offer(self._last)
        return slot

    def unsubscribe(self, slot: FrameSlot) -> None:
        self._slots.pop(slot, None)
        slot.close()

    @property
    def subscribers(self) -> int:
        return len(self._slots)

    async def close(self) -> None:
        self._closed = True
        for slot in list(self._slots):
            slot.close()
        self._slots.clear()
        self._changed.set()
        await self._tasks.close(grace_s=2.0)
        if self._link is not None:
            await self._link.close()

    # -- events (the link's reader awaits these: they never wait for an answer) ---------------
    async def _on_event(self, method: str, params: JsonObject, session: str | None) -> None:
        if method == "Page.screencastFrame":
            await self._on_frame(params, session)
        elif method in ("Target.targetCreated", "Target.targetInfoChanged"):
            info = params.get("targetInfo")
            if isinstance(info, dict) and info.get("type") == "page":
                target, url = str(info.get("targetId")), str(info.get("url", ""))
                created = method == "Target.targetCreated"
                if created or self._pages.get(target) != url:
                    self._pages.pop(target, None)
                    self._pages[target] = url  # most recent activity last
                    self._want(target)
        elif method == "Target.targetDestroyed":
            target = str(params.get("targetId"))
            if self._pages.pop(target, None) is not None and self._wanted == target:
                self._want(next(reversed(self._pages), None))
        elif method == "Target.detachedFromTarget":
            current = self._current
            if current is not None and params.get("sessionId") == current[1]:
                if self._link is not None:
                    self._link.forget_session(current[1])
                self._current = None
                self._changed.set()

    def _want(self, target: str | None) -> None:
        self._wanted = target
        self._changed.set()

    async def _on_frame(self, params: JsonObject, session: str | None) -> None:
        ack = params.get("sessionId")
        if session is None or not isinstance(ack, int):
            return
        now = time.monotonic()
        delay = ack_delay(self._rate(), now - self._last_frame_at)
        self._last_frame_at = now
        self._tasks.spawn(self._ack(session, ack, delay), name="ack")
        if self._current is None or session != self._current[1]:
            return
        self._publish(params.get("data"))

    def _publish(self, data: object) -> None:
        try:
            jpeg = base64.b64decode(str(data or ""), validate=True)
        except (binascii.Error, ValueError):
            return
        if not jpeg:
            return
        self._seq += 1
        self.frames_received += 1
        frame = Frame(jpeg, self._seq)
        self._last = frame
        for slot in self._slots:
            slot.offer(frame)

    def _rate(self) -> float:
        return max(self._slots.values(), default=1.0)

    async def _ack(self, session: str, ack: int, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)  # pacing the browser, not waiting for a condition
        link = self._link
        if link is not None and link.is_open:
            with contextlib.suppress(CdpError):
                await link.post("Page.screencastFrameAck", {"sessionId": ack}, session_id=session)

    # -- following a tab ------------------------------------------------------------------------
    async def _follow(self) -> None:
        """Keep the cast on the wanted tab (one switch at a time, the latest wish wins)."""
        while not self._closed:
            await self._changed.wait()
            self._changed.clear()
            if self._closed:
                return
            wanted = self._wanted
            if self._current is not None and self._current[0] == wanted:
                continue
            await self._stop_current()
            if wanted is not None:
                await self._cast(wanted)

    async def _stop_current(self) -> None:
        current, self._current = self._current, None
        link = self._link
        if current is None or link is None or not link.is_open:
            return
        _target, session = current
        with contextlib.suppress(CdpError, TimeoutError):
            await link.call("Page.stopScreencast", session_id=session)
        with contextlib.suppress(CdpError, TimeoutError):
            await link.call("Target.detachFromTarget", {"sessionId": session})
        link.forget_session(session)

    async def _cast(self, target: str) -> None:
        link = self._link
        if link is None or not link.is_open:
            return
        try:
            attached = await link.call(
                "Target.attachToTarget", {"targetId": target, "flatten": True}
            )
            session = str(attached.get("sessionId"))
            self._current = (target, session)
            # A tab in the background paints nothing: the followed tab is the one in front,
            # as it would be for a person watching (the stealth primer keeps every page
            # believing it has focus either way).
            await link.call("Page.bringToFront", session_id=session)
            width, height = self._max
            await link.call(
                "Page.startScreencast",
                {
                    "format": "jpeg",
                    "quality": JPEG_QUALITY,
                    "maxWidth": width,
                    "maxHeight": height,
                    "everyNthFrame": 1,
                },
                session_id=session,
            )
            # A page that already finished painting sends no frame until it changes: its
            # current look, once, so the recording and every viewer start with it.
            shot = await link.call(
                "Page.captureScreenshot",
                {"format": "jpeg", "quality": JPEG_QUALITY, "optimizeForSpeed": True},
                session_id=session,
            )
            if self._current == (target, session):
                self._publish(shot.get("data"))
        except (CdpError, TimeoutError) as error:
            log.debug("screencast of %s: %s", target, error)
