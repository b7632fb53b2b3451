"""A browser's media on its cluster node: its recording (a screencast of the browser fed to
ffmpeg, both on the node, as a single server records) and its downloads (named and kept within
their limit by media.download_watch, as on a single server).

The API process asks for the finished recording and for the downloads' contents in chunks
(`read_*`); nodes never reach the blob store. What a node serves is read with the descriptor
checks of the stores (storage.fileio): never through a symlink, only regular files, only names
directly in the browser's downloads directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path, PurePath
from typing import Final

from browserfleet.browsers.egress import EgressedBrowser
from browserfleet.media import downloads as dl
from browserfleet.media.download_watch import DownloadWatch
from browserfleet.media.recorder import Recorder, RecordingSpec, run_as
from browserfleet.media.screencast import Screencast
from browserfleet.storage.fileio import open_regular
from browserfleet.storage.layout import RECORDING_SUFFIX
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

MAX_CHUNK: Final = 16 * 1024 * 1024  # one read's most: Ray carries it by value


class NodeMedia:
    """The media of the browser named `name` on this node; `work_dir` is the node's own
    (recordings in progress), never the tenant's."""

    def __init__(
        self,
        browser: EgressedBrowser,
        name: str,
        work_dir: Path,
        *,
        downloads_max_bytes: int,
        ffmpeg: str,
        bwrap: str | None,
    ) -> None:
        self._browser = browser
        self._output = work_dir / f"{name}{RECORDING_SUFFIX}"
        self._work_dir = work_dir
        self._ffmpeg, self._bwrap = ffmpeg, bwrap
        self._tasks = TaskSet("node-media")
        self._downloads = DownloadWatch(
            browser, browser.files.host_downloads, downloads_max_bytes, self._tasks, label=name
        )
        self._cast: Screencast | None = None
        self._recorder: Recorder | None = None
        self._finished = False

    # -- recording ------------------------------------------------------------------------
    async def start_recording(self, spec: RecordingSpec) -> int:
        """Start recording the browser at `spec`; ffmpeg's pid."""
        if self._recorder is not None or self._finished:
            raise RuntimeError("this browser's recording has started already")
        output, browser = self._output, self._browser
        uid = run_as(os.stat(browser.workdir).st_uid)

        def fresh_output() -> None:
            self._work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            output.unlink(missing_ok=True)

        await asyncio.to_thread(fresh_output)
        cast = await Screencast.open(browser.devtools, max_width=spec.width, max_height=spec.height)
        slot = cast.subscribe(spec.fps)
        try:
            self._recorder = await Recorder.start(
                spec, slot, output, ffmpeg=self._ffmpeg, bwrap=self._bwrap, uid=uid
            )
        except BaseException:
            await cast.close()
            raise
        self._cast = cast
        return self._recorder.pid

    async def finish_recording(self, timeout_s: float) -> int | None:
        """Finalize the recording: its size, or None when there is none (never started, or
        ffmpeg failed or ran out of time). The file stays until `close`."""
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return None
        try:
            output = await recorder.finish(timeout_s)
        finally:
            await recorder.abort()  # reaped whatever happened
            await self._close_cast()
        if output is None:
            return None
        self._finished = True
        return (await asyncio.to_thread(output.stat)).st_size

    async def read_recording(self, offset: int, size: int) -> bytes:
        """`size` bytes (at most MAX_CHUNK) of the finished recording from `offset`."""
        if not self._finished:
            raise FileNotFoundError("no finished recording")
        return await asyncio.to_thread(_read, self._output, offset, size)

    async def _close_cast(self) -> None:
        cast, self._cast = self._cast, None
        if cast is not None:
            await cast.close()

    # -- downloads ------------------------------------------------------------------------
    async def downloads(self) -> list[dl.DownloadedFile]:
        """The finished downloads, as the API lists them (named, regular files only)."""
        return await asyncio.to_thread(dl.scan, self._browser.files.host_downloads)

    async def read_download(self, name: str, offset: int, size: int) -> bytes:
        """`size` bytes (at most MAX_CHUNK) of the download `name` from `offset`."""
        if PurePath(name).name != name or not dl.listable(name):
            raise FileNotFoundError(f"not a download: {name!r}")
        path = self._browser.files.host_downloads / name
        return await asyncio.to_thread(_read, path, offset, size)

    async def settle_downloads(self) -> None:
        """Follow no more download events; files already complete are named first."""
        await self._downloads.stop()

    # -- end ------------------------------------------------------------------------------
    async def close(self) -> None:
        """Stop everything and remove the recording's file. Idempotent."""
        await self._downloads.stop()
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            await recorder.abort()
        await self._close_cast()
        await self._tasks.close()
        await asyncio.to_thread(self._output.unlink, True)


def _read(path: Path, offset: int, size: int) -> bytes:
    if offset < 0 or not 0 < size <= MAX_CHUNK:
        raise ValueError(f"a read of {size} bytes at {offset}")
    with open_regular(path) as (fd, _info):
        return os.pread(fd, size, offset)


def remove_dead_recordings(work_dir: Path, sessions_dir: Path) -> int:
    """Recordings of browsers whose workdir is gone (their actor died before its close):
    removed; how many. Blocking. A recording lives only while its browser's workdir does."""
    try:
        names = os.listdir(work_dir)
    except FileNotFoundError:
        return 0
    removed = 0
    for name in names:
        if not name.endswith(RECORDING_SUFFIX):
            continue
        if os.path.lexists(sessions_dir / name.removesuffix(RECORDING_SUFFIX)):
            continue
        (work_dir / name).unlink(missing_ok=True)
        removed += 1
    return removed
