"""A running browser's downloads, named and kept within their limit where the browser runs.

The browser's download events drive a DownloadLedger (media.download_ledger); this carries
out what it answers on the browser's own downloads directory: a finished file gets its real
name, a download that would pass the limit is cancelled, one that already did is discarded.
The server runs one per session on its host; a cluster node runs one per browser it holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from browserfleet.cdp.client import CdpError, JsonObject
from browserfleet.media import downloads as dl
from browserfleet.media.download_ledger import Action, DownloadLedger, Step
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

# A pending step still running at the end gets this long before the files are read.
SETTLE_TIMEOUT_S = 10.0


class DownloadingBrowser(Protocol):
    """What the watcher needs of a browser (sessions.ports.BrowserHandle has it)."""

    async def call(self, method: str, params: JsonObject | None = None) -> JsonObject: ...

    def watch_downloads(self, listener: Callable[[str, JsonObject], None] | None) -> None: ...


class DownloadWatch:
    """Follows one browser's downloads into `directory` (the host's path of its downloads
    directory), within `max_bytes` for all of them together; each step is a task of `tasks`
    (its owner's: once that is closed, nothing more is done)."""

    def __init__(
        self,
        browser: DownloadingBrowser,
        directory: Path,
        max_bytes: int,
        tasks: TaskSet,
        *,
        label: str = "",
    ) -> None:
        self._browser = browser
        self._directory = directory
        self._ledger = DownloadLedger(max_bytes)
        self._max_bytes = max_bytes
        self._tasks = tasks
        self._label = {"session_id": label} if label else {}
        self._naming = asyncio.Lock()  # downloads named in order
        self._pending: set[asyncio.Task[None]] = set()
        self._stopped = False
        browser.watch_downloads(self._on_event)

    def _on_event(self, method: str, params: JsonObject) -> None:
        """A download event of the browser: the ledger says what to do."""
        if self._stopped:
            return
        if method == "Browser.downloadWillBegin":
            actions = self._ledger.begin(params.get("guid"), params.get("suggestedFilename"))
        else:
            guid, state = params.get("guid"), params.get("state")
            actions = self._ledger.progress(guid, params.get("receivedBytes"), state)
        for action in actions:
            try:
                task = self._tasks.spawn(self._apply(action), name=f"download-{action.step}")
            except RuntimeError:  # the owner is closing: nothing more is named
                return
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _apply(self, action: Action) -> None:
        directory = self._directory
        try:
            if action.step is Step.NAME:
                async with self._naming:
                    name = await asyncio.to_thread(
                        dl.name_download, directory, action.guid, action.name
                    )
                if name is not None:
                    log.info("download %r finished", name, extra=self._label)
                return
            log.warning(
                "download %r refused: the session's downloads passed their limit of %g MB",
                action.name,
                self._max_bytes / (1024 * 1024),
                extra=self._label,
            )
            if action.step is Step.CANCEL:
                await self._cancel(action.guid)
            else:
                await asyncio.to_thread(dl.discard, directory / action.guid)
        except (CdpError, TimeoutError, OSError) as error:
            log.warning("download %s: %s failed: %s", action.guid, action.step, error)

    async def _cancel(self, guid: str) -> None:
        """Browser.cancelDownload, in the default context or else in whichever holds it."""
        browser = self._browser
        try:
            await browser.call("Browser.cancelDownload", {"guid": guid})
            return
        except CdpError:
            pass
        found = await browser.call("Target.getBrowserContexts")
        contexts = found.get("browserContextIds")
        for context in contexts if isinstance(contexts, list) else []:
            try:
                await browser.call(
                    "Browser.cancelDownload", {"guid": guid, "browserContextId": context}
                )
                return
            except CdpError:
                continue
        # Not found: it finished first; the ledger discards the file when it says so.

    def detach(self) -> None:
        """Follow no more events (the browser is gone); nothing is waited for."""
        self._stopped = True
        self._browser.watch_downloads(None)

    async def stop(self) -> None:
        """Follow no more events; files already complete get their names first (bounded)."""
        self._stopped = True
        self._browser.watch_downloads(None)
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=SETTLE_TIMEOUT_S)
