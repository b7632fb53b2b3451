"""Runs browserfleet's own CDP commands on every target of a browser before its first script.

A TargetPrimer holds one browser-level connection that auto-attaches to every target, current
and future, in every browser context: pages, out-of-process iframes and workers. Chrome pauses
a new target until each debugger that asked to wait lets it run; the primer pipelines the
commands for the target's kind and then its Runtime.runIfWaitingForDebugger on the same
session (Chrome runs them in order), so the target runs with them in effect and the primer
adds no round trip to its start. Clients that also auto-attach and wait (Playwright,
Puppeteer) keep their own pause: the target runs once every waiting debugger has let it go.

With a downloads directory, the primer also makes it where the default browser context saves
downloads, under their GUIDs (`allowAndName`), with the browser's download events on: Chrome
sends those to every browser-level connection that turned them on, whatever context a download
is in, so the server learns every download's suggested name and progress here (a listener set
with `watch_downloads`), whichever client started it.

A window rule, when given, is applied to every new top-level page before it runs: a window
that does not fit it gets its bounds. That costs the new page a round trip, and races the
commands a client may already send to the page (its own emulated viewport and screen, which a
later window resize undoes): it is the exception. Full Chromium opens a new window at the size
of the last active one, already the session's (chromium_args); the rule catches the rest (a
window a client made larger, a browser launched with a fixed --window-size).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import TypeAlias

from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.cdp.dial import DevtoolsDialer
from browserfleet.cdp.link import CdpLink
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

Step: TypeAlias = tuple[str, JsonObject]  # method, params

RESUME = "Runtime.runIfWaitingForDebugger"
AUTO_ATTACH: JsonObject = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
DOWNLOAD_EVENTS = frozenset({"Browser.downloadWillBegin", "Browser.downloadProgress"})
DownloadListener: TypeAlias = Callable[[str, JsonObject], None]  # method, params


class TargetKind(StrEnum):
    FRAME = "frame"  # a page (tab, window, popup) or an out-of-process iframe
    WORKER = "worker"  # dedicated, shared and service workers
    OTHER = "other"


_KINDS = {
    "page": TargetKind.FRAME,
    "iframe": TargetKind.FRAME,
    "worker": TargetKind.WORKER,
    "shared_worker": TargetKind.WORKER,
    "service_worker": TargetKind.WORKER,
}


def target_kind(target_type: str) -> TargetKind:
    return _KINDS.get(target_type, TargetKind.OTHER)


@dataclass(frozen=True, slots=True)
class Priming:
    """The commands each kind of target gets, in order, before it runs."""

    frame: tuple[Step, ...] = ()
    worker: tuple[Step, ...] = ()
    # Browser.setWindowBounds's bounds for new windows that do not fit them (None: leave them).
    window: JsonObject | None = None
    # The size the browser was launched with, which it gives every new window of its own (a
    # new tab, a new context): such a window gets the rule's bounds even when smaller.
    launch_size: tuple[int, int] | None = None

    def steps(self, kind: TargetKind) -> tuple[Step, ...]:
        if kind is TargetKind.FRAME:
            return self.frame
        if kind is TargetKind.WORKER:
            return self.worker
        return ()


class TargetPrimer:
    """Open with `await TargetPrimer.open(browser_ws_url, priming, dialer=...)`; `close()`
    when done."""

    def __init__(self, priming: Priming) -> None:
        self._priming = priming
        self._attached: dict[str, TargetKind] = {}  # session id -> kind
        self._link: CdpLink | None = None
        self._tasks = TaskSet("primer")
        self._downloads: DownloadListener | None = None
        self._resized = 0

    @classmethod
    async def open(
        cls,
        browser_ws_url: str,
        priming: Priming,
        *,
        dialer: DevtoolsDialer | None = None,
        downloads: PurePosixPath | None = None,
    ) -> TargetPrimer:
        """Connect to the browser (through `dialer`, which reaches its DevTools server where
        it listens) and attach to every target; with `downloads` (the browser's view of the
        directory), watch every download and save those of the default context there."""
        primer = cls(priming)
        primer._link = await CdpLink.open(browser_ws_url, primer._on_event, dialer=dialer)
        try:
            # Attaches to the targets already there too (they are not waiting).
            await primer._link.call("Target.setAutoAttach", AUTO_ATTACH)
            if downloads is not None:
                behavior: JsonObject = {
                    "behavior": "allowAndName",
                    "downloadPath": str(downloads),
                    "eventsEnabled": True,
                }
                await primer._link.call("Browser.setDownloadBehavior", behavior)
        except BaseException:
            await primer._link.close()
            raise
        return primer

    @property
    def windows_resized(self) -> int:
        """How many new windows were given the rule's bounds before they ran."""
        return self._resized

    @property
    def attached(self) -> int:
        """How many targets the primer is attached to."""
        return len(self._attached)

    async def reprime(self, priming: Priming) -> None:
        """Apply new commands to every attached target now, and to every later one."""
        link = self._require_link()
        before, self._priming = self._priming, priming
        if (before.frame, before.worker) == (priming.frame, priming.worker):
            return  # only the window rule changed: it is for new windows
        answers = []
        for session_id, kind in list(self._attached.items()):
            for method, params in priming.steps(kind):
                answers.append(await link.post(method, params, session_id=session_id))
        for error in await link.settle(answers):
            log.debug("priming an attached target: %s", error)

    def watch_downloads(self, listener: DownloadListener | None) -> None:
        """Hand every download event to `listener` from now on (None: to nobody)."""
        self._downloads = listener

    async def call_browser(self, method: str, params: JsonObject | None = None) -> JsonObject:
        """One browser-level command on this, the server's own, connection (never a client's):
        e.g. reading or setting every cookie of the browser, or closing it gracefully."""
        return await self._require_link().call(method, params)

    async def close(self) -> None:
        await self._tasks.close(grace_s=2.0)
        if self._link is not None:
            await self._link.close()
        self._attached.clear()

    def _require_link(self) -> CdpLink:
        if self._link is None or not self._link.is_open:
            raise CdpError("Target.setAutoAttach", "the primer's connection is closed")
        return self._link

    async def _on_event(self, method: str, params: JsonObject, _session: str | None) -> None:
        if method in DOWNLOAD_EVENTS:
            if self._downloads is not None:
                self._downloads(method, params)
        elif method == "Target.attachedToTarget":
            await self._prime(params)
        elif method == "Target.detachedFromTarget":
            session_id = params.get("sessionId")
            if isinstance(session_id, str):
                self._attached.pop(session_id, None)
                self._require_link().forget_session(session_id)

    async def _prime(self, params: JsonObject) -> None:
        link = self._require_link()
        session_id, info = params.get("sessionId"), params.get("targetInfo")
        if not isinstance(session_id, str) or not isinstance(info, dict):
            return
        kind = target_kind(str(info.get("type")))
        self._attached[session_id] = kind
        steps: list[Step] = list(self._priming.steps(kind))
        if kind is TargetKind.FRAME:
            steps.append(("Target.setAutoAttach", AUTO_ATTACH))  # its iframes and workers
        for method, step_params in steps:
            answer = await link.post(method, step_params, session_id=session_id)
            answer.add_done_callback(_log_failure)
        if params.get("waitingForDebugger") is not True:
            return
        window = self._priming.window
        if window is None or info.get("type") != "page":
            (await link.post(RESUME, session_id=session_id)).add_done_callback(_log_failure)
            return
        target_id = str(info.get("targetId"))
        self._tasks.spawn(self._fit_then_resume(session_id, target_id, window), name="window")

    async def _fit_then_resume(self, session_id: str, target_id: str, bounds: JsonObject) -> None:
        """Give a new page's window the rule's bounds if it does not fit them, then let it run."""
        link = self._require_link()
        try:
            found = await link.call("Browser.getWindowForTarget", {"targetId": target_id})
            if not fits(found.get("bounds"), bounds, self._priming.launch_size):
                params: JsonObject = {"windowId": found.get("windowId"), "bounds": bounds}
                self._resized += 1
                await link.call("Browser.setWindowBounds", params)
        except (CdpError, TimeoutError) as error:
            log.debug("fitting a new window: %s", error)
        finally:
            if link.is_open:
                (await link.post(RESUME, session_id=session_id)).add_done_callback(_log_failure)


def fits(window: object, bounds: JsonObject, launch_size: tuple[int, int] | None = None) -> bool:
    """A window no larger than the rule's bounds (a popup's own smaller size is kept), unless
    it has the browser's launch size: a default window of a browser since reshaped."""
    if not isinstance(window, dict):
        return False
    size = (window.get("width"), window.get("height"))
    if launch_size is not None and size == launch_size:
        return size == (bounds.get("width"), bounds.get("height"))
    return all(
        isinstance(window.get(side), int) and window[side] <= limit
        for side, limit in (("width", bounds.get("width")), ("height", bounds.get("height")))
        if isinstance(limit, int)
    )


def _log_failure(answer: asyncio.Future[JsonObject]) -> None:
    if not answer.cancelled() and (error := answer.exception()) is not None:
        log.debug("priming a new target: %s", error)
