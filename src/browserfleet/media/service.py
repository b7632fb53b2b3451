"""MediaService: a session's recording, its downloads, its shared live view, and their links.

Sessions tell it when they go active (`session_active`); it hands the session service two end
steps (finish the recording, keep the downloads) that run on every way a session ends. A session
without recording and without viewers opens nothing: no connection, no process, no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from browserfleet.auth.signing import ServerSecret
from browserfleet.browsers.files import DOWNLOADS_DIR
from browserfleet.clock import Clock
from browserfleet.ids import SessionId
from browserfleet.media import downloads as dl
from browserfleet.media.download_watch import DownloadWatch
from browserfleet.media.frames import FrameSlot
from browserfleet.media.links import Disposition, sign, verify
from browserfleet.media.recorder import Recorder, RecordingSpec, output_size, run_as
from browserfleet.media.screencast import Screencast
from browserfleet.sessions.ending import EndPhase, SessionEnd
from browserfleet.sessions.model import Session, SessionStatus
from browserfleet.sessions.ports import BrowserHandle
from browserfleet.storage import layout, retention
from browserfleet.storage.errors import StorageError
from browserfleet.storage.model import LocalFile
from browserfleet.storage.port import BlobStore
from browserfleet.tasks import TaskSet

log = logging.getLogger(__name__)

VIEW_LABEL = "live-view"


@dataclass(frozen=True, slots=True)
class MediaConfig:
    work_dir: Path  # server-owned: one folder per recording in progress
    recording_fps: int = 10
    recording_max_width: int = 1280
    recording_link_ttl: timedelta = timedelta(hours=1)
    download_link_ttl: timedelta = timedelta(minutes=15)
    downloads_max_bytes: int = 512 * 1024 * 1024
    retention: timedelta = timedelta(days=7)
    retention_interval_s: float = 3600.0
    viewer_fps: int = 30
    ffmpeg: str = "/usr/bin/ffmpeg"
    bwrap: str | None = "/usr/bin/bwrap"
    finish_timeout_s: float = 60.0
    keep_timeout_s: float = 120.0
    # After a stop, how long a recording that is not in the store yet may still appear: past
    # it, its absence is proof that it never will (recordingAvailable turns false).
    recording_grace: timedelta = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class RecordingView:
    url: str | None
    available: bool


@dataclass(frozen=True, slots=True)
class DownloadItem:
    name: str
    size: int
    last_modified: datetime
    url: str | None


@dataclass(frozen=True, slots=True)
class DownloadListing:
    files: tuple[DownloadItem, ...]
    next_cursor: str | None


@dataclass(slots=True)
class _Live:
    """What this server holds of one running session's media."""

    session: Session
    handle: BrowserHandle
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cast: Screencast | None = None
    recorder: Recorder | None = None
    starting: asyncio.Task[None] | None = None  # the recorder's start, in the background
    viewers: int = 0
    downloads: DownloadWatch | None = None  # None: its node names them (a remote browser)
    remote: RemoteMedia | None = None  # a browser on a cluster node: it records there
    recording_remote: bool = False  # its node records it


SessionLookup = Callable[[SessionId], Awaitable[Session | None]]


@runtime_checkable
class RemoteMedia(Protocol):
    """A browser whose recording and downloads live on its node (a cluster's, where they are
    recorded, named and limited: cluster.node_media); this server fetches them."""

    async def start_recording(self, spec: RecordingSpec) -> None: ...

    async def fetch_recording(self, dest: Path, timeout_s: float) -> bool: ...

    async def list_downloads(self) -> list[dl.DownloadedFile]: ...

    async def fetch_download(self, file: dl.DownloadedFile, dest: Path) -> None: ...

    async def settle_downloads(self) -> None: ...


class MediaService:
    def __init__(
        self,
        config: MediaConfig,
        blobs: BlobStore,
        secret: ServerSecret,
        clock: Clock,
        lookup: SessionLookup,
        ending: Callable[[SessionId], bool] = lambda _session_id: False,
    ) -> None:
        self._config = config
        self._blobs = blobs
        self._secret = secret
        self._clock = clock
        self._lookup = lookup
        self._ending = ending  # whether this server is still ending that session
        # Ending sessions whose downloads are in the store now: their directory is on its way
        # out (the browser's teardown removes it), so the store is what lists them.
        self._kept: set[SessionId] = set()
        self._live: dict[SessionId, _Live] = {}
        # Sessions whose browser runs on a cluster node, until their end shows there are no
        # downloads to keep (at the release) or keeps them.
        self._remote_ids: set[SessionId] = set()
        self._tasks = TaskSet("media")

    @property
    def config(self) -> MediaConfig:
        return self._config

    async def start(self) -> None:
        """Discard what a crashed server left of recordings in progress (an MP4 without its
        index plays nowhere), then sweep by retention now and periodically."""
        self._config.work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        await self.discard_stale_work()
        self._tasks.spawn(self._retention_loop(), name="retention")

    async def aclose(self) -> None:
        for live in list(self._live.values()):
            await self._drop(live)
        self._live.clear()
        await self._tasks.close()

    # -- session start ----------------------------------------------------------------------
    def session_active(self, session: Session, handle: BrowserHandle) -> None:
        """A session now runs here; with recording on, its recorder starts in the background
        (the create does not wait for it). A recorder that cannot start is logged: the session
        runs, and recordingAvailable turns false once the grace after its stop has passed."""
        remote = handle if isinstance(handle, RemoteMedia) else None
        live = _Live(session, handle, remote=remote)
        self._live[session.id] = live
        if remote is not None:
            # Those whose end is over are forgotten (an end with nothing to keep never reads it).
            self._remote_ids = {s for s in self._remote_ids if s in self._live or self._ending(s)}
            self._remote_ids.add(session.id)
        else:
            live.downloads = DownloadWatch(
                handle,
                handle.files.host_downloads,
                self._config.downloads_max_bytes,
                self._tasks,
                label=str(session.id),
            )
        if session.request.enable_recording:
            live.starting = self._tasks.spawn(
                self._start_recording(live), name=f"record-{session.id}"
            )

    async def _note_remote_downloads(self, session_id: SessionId, remote: RemoteMedia) -> None:
        """A session on a node with no finished download needs no graceful close for them
        (has_downloads); one whose node cannot tell keeps it, to fetch what there is."""
        try:
            if not await remote.list_downloads():
                self._remote_ids.discard(session_id)
        except OSError as error:
            log.warning("downloads not listed: %s", error, extra={"session_id": str(session_id)})

    def session_gone(self, session_id: SessionId) -> None:
        """Its browser was ended without the end steps (fenced, taken over): its screencast
        and recorder are dropped, and nothing of it is kept (a fenced browser's media, like
        its profile state, are not saved)."""
        self._remote_ids.discard(session_id)
        live = self._live.pop(session_id, None)
        if live is None:
            return
        if live.downloads is not None:
            live.downloads.detach()
        with contextlib.suppress(RuntimeError):  # closed: aclose dropped everything already
            self._tasks.spawn(self._drop(live), name=f"drop-{session_id}")

    async def _start_recording(self, live: _Live) -> None:
        try:
            await self._start_recorder(live)
        except Exception:
            log.exception("recording could not start", extra={"session_id": str(live.session.id)})

    async def _start_recorder(self, live: _Live) -> None:
        session, config = live.session, self._config
        if live.remote is not None:
            width, height = output_size(
                session.request.screen_width,
                session.request.screen_height,
                config.recording_max_width,
            )
            await live.remote.start_recording(RecordingSpec(config.recording_fps, width, height))
            live.recording_remote = True
            return
        output = self._work_file(session.id)
        uid = run_as(os.stat(live.handle.workdir).st_uid)
        await asyncio.to_thread(output.unlink, True)
        width, height = output_size(
            session.request.screen_width, session.request.screen_height, config.recording_max_width
        )
        async with live.lock:
            cast = await self._cast(live)
            slot = cast.subscribe(config.recording_fps)
            try:
                live.recorder = await Recorder.start(
                    RecordingSpec(config.recording_fps, width, height),
                    slot,
                    output,
                    ffmpeg=config.ffmpeg,
                    bwrap=config.bwrap,
                    uid=uid,
                )
            except BaseException:
                cast.unsubscribe(slot)
                raise
        log.info("recording", extra={"session_id": str(session.id), "pid": live.recorder.pid})

    async def _cast(self, live: _Live) -> Screencast:
        """The session's screencast, opened on first need (call under live.lock)."""
        if live.cast is None or not live.cast.is_open:
            if live.cast is not None:
                await live.cast.close()
            width, height = output_size(
                live.session.request.screen_width,
                live.session.request.screen_height,
                self._config.recording_max_width,
            )
            live.cast = await Screencast.open(
                live.handle.devtools, max_width=width, max_height=height
            )
        return live.cast

    def _work_file(self, session_id: SessionId) -> Path:
        return self._config.work_dir / f"{session_id}{layout.RECORDING_SUFFIX}"

    # -- end of session (end steps) ------------------------------------------------------------
    async def finish_recording(self, end: SessionEnd) -> None:
        """Finalize the recording and keep it in the store; whatever happens, nothing of it is
        left running or on disk here."""
        session = end.session
        live = self._live.get(session.id)
        try:
            if live is not None and live.starting is not None:
                await asyncio.gather(live.starting, return_exceptions=True)
            if live is not None and live.remote is not None:
                if live.recording_remote:
                    await self._keep_remote_recording(session, live.remote)
                return
            recorder = live.recorder if live is not None else None
            if live is not None:
                live.recorder = None
            if recorder is None:
                return
            try:
                output = await recorder.finish(self._config.finish_timeout_s)
            finally:
                await recorder.abort()  # reaped whatever happened
            if output is not None:
                key = layout.recording_key(session.project_id, session.id)
                size = await self._blobs.put_file(key, output, move=True)
                log.info(
                    "recording kept (%d bytes, %d frames)",
                    size,
                    recorder.frames_written,
                    extra={"session_id": str(session.id)},
                )
        finally:
            await asyncio.to_thread(self._work_file(session.id).unlink, True)

    async def _keep_remote_recording(self, session: Session, remote: RemoteMedia) -> None:
        """Finalized on its node, fetched here, then kept in the store like a local one."""
        output = self._work_file(session.id)
        await asyncio.to_thread(output.unlink, True)
        if not await remote.fetch_recording(output, self._config.finish_timeout_s):
            return
        key = layout.recording_key(session.project_id, session.id)
        size = await self._blobs.put_file(key, output, move=True)
        log.info(
            "recording kept (%d bytes, from its node)", size, extra={"session_id": str(session.id)}
        )

    def has_downloads(self, session: Session) -> bool:
        """Whether the session's downloads directory on this host holds anything (blocking,
        one directory read)."""
        if session.id in self._remote_ids:
            return True  # on its node: fetched with the browser's files after it quits
        live = self._live.get(session.id)
        if live is not None:
            directory: Path | None = live.handle.files.host_downloads
        elif session.session_dir:
            directory = Path(session.session_dir) / DOWNLOADS_DIR
        else:
            directory = None
        try:
            return directory is not None and any(os.scandir(directory))
        except OSError:
            return False

    async def keep_downloads(self, end: SessionEnd) -> None:
        """Copy the session's finished downloads into the store, within its size limit; from
        then on the store lists them, whatever happens to the directory."""
        session = end.session
        try:
            await self._keep_downloads(end)
        finally:
            self._kept = {s for s in self._kept if self._ending(s)}
            self._kept.add(session.id)
            self._remote_ids.discard(session.id)

    async def _keep_downloads(self, end: SessionEnd) -> None:
        session = end.session
        directory = _downloads_dir(end)
        if directory is None:
            return
        files = await asyncio.to_thread(dl.scan, directory)
        kept = dl.within_limit(files, self._config.downloads_max_bytes)
        if len(kept) < len(files):
            log.warning(
                "downloads over the session's limit: %d of %d files kept",
                len(kept),
                len(files),
                extra={"session_id": str(session.id)},
            )
        for file in kept:
            key = layout.download_key(session.project_id, session.id, file.name)
            try:
                await self._blobs.put_file(key, directory / file.name)
            except (StorageError, OSError) as error:
                log.warning("download %r not kept: %s", file.name, error)

    async def _drop(self, live: _Live) -> None:
        if live.starting is not None and not live.starting.done():
            live.starting.cancel()
            await asyncio.gather(live.starting, return_exceptions=True)
        async with live.lock:
            if live.recorder is not None:
                await live.recorder.abort()
                live.recorder = None
            if live.cast is not None:
                await live.cast.close()
                live.cast = None

    async def release(self, session_id: SessionId) -> None:
        """The session ended: close its screencast and recorder (if still there)."""
        live = self._live.pop(session_id, None)
        if live is not None:
            if live.downloads is not None:  # files already complete are named first
                await live.downloads.stop()
            elif live.remote is not None:  # by its node likewise
                await live.remote.settle_downloads()
                await self._note_remote_downloads(session_id, live.remote)
            await self._drop(live)

    # -- live view --------------------------------------------------------------------------
    def view_capability(self, session_id: SessionId) -> str:
        """The view-only live view's credential: derived under its own label, so it opens the
        frames of one session and nothing else (never its CDP)."""
        return self._secret.derive(VIEW_LABEL, str(session_id))

    @asynccontextmanager
    async def viewer(self, session_id: SessionId) -> AsyncIterator[FrameSlot | None]:
        """A slot of the session's shared screencast, paced at the viewer frame rate; None if
        the session does not run here."""
        live = self._live.get(session_id)
        if live is None:
            yield None
            return
        async with live.lock:
            cast = await self._cast(live)
            slot = cast.subscribe(self._config.viewer_fps)
            live.viewers += 1
        try:
            yield slot
        finally:
            cast.unsubscribe(slot)
            async with live.lock:
                live.viewers -= 1
                if live.viewers == 0 and live.recorder is None and live.cast is cast:
                    await cast.close()
                    live.cast = None

    def viewers(self, session_id: SessionId) -> int:
        live = self._live.get(session_id)
        return live.viewers if live is not None else 0

    # -- what the API shows -----------------------------------------------------------------
    async def recording(self, session: Session, base_url: str) -> RecordingView:
        """recordingUrl and recordingAvailable of GET one."""
        if not session.request.enable_recording:
            return RecordingView(None, False)
        if session.status is not SessionStatus.STOPPED:
            return RecordingView(None, True)
        key = layout.recording_key(session.project_id, session.id)
        try:
            url = await self._link(key, self._config.recording_link_ttl, None, base_url)
        except StorageError as error:
            log.warning("recording lookup failed: %s", error)
            return RecordingView(None, True)  # a failed lookup proves nothing
        if url is not None:
            return RecordingView(url, True)
        finished = session.finished_at or session.started_at
        return RecordingView(None, self._clock() - finished < self._config.recording_grace)

    async def downloads(
        self,
        session: Session,
        *,
        cursor: str | None,
        limit: int,
        include_urls: bool,
        base_url: str,
    ) -> DownloadListing:
        """One page of the session's downloads: from its directory while it runs here, else
        from the store. InvalidCursor for a cursor this API did not hand out."""
        after = dl.decode_cursor(cursor) if cursor else None
        remote = self._remote_running(session)
        if remote is not None:  # listed by its node
            page = dl.page_of(await self._remote_files(session, remote), after=after, limit=limit)
        else:
            directory = self._downloads_here(session)
            if directory is not None:
                files = await asyncio.to_thread(dl.scan, directory)
                if self._downloads_here(session) is None:
                    # Kept while it was read: the teardown may have been emptying the directory.
                    directory = None
            if directory is not None:
                page = dl.page_of(files, after=after, limit=limit)
            else:
                page = await self._stored_downloads(session, after, limit)
        items = []
        for file in page.files:
            url = None
            if include_urls:
                url = await self._download_url(session, file, base_url, remote)
            items.append(DownloadItem(file.name, file.size, file.last_modified, url))
        return DownloadListing(tuple(items), page.next_cursor)

    def _remote_running(self, session: Session) -> RemoteMedia | None:
        """The browser on a cluster node of a session running here (None: not one)."""
        live = self._live.get(session.id)
        if live is None or session.status is SessionStatus.STOPPED:
            return None
        return live.remote

    async def _remote_files(self, session: Session, remote: RemoteMedia) -> list[dl.DownloadedFile]:
        try:
            return await remote.list_downloads()
        except OSError as error:
            log.warning("downloads not listed: %s", error, extra={"session_id": str(session.id)})
            return []

    def _downloads_here(self, session: Session) -> Path | None:
        """The session's downloads directory while it runs here, or while this server is still
        ending it (its files are not in the store yet); None: list the store."""
        live = self._live.get(session.id)
        if live is not None and session.status is not SessionStatus.STOPPED:
            return live.handle.files.host_downloads
        if self._ending(session.id) and session.id not in self._kept and session.session_dir:
            directory = Path(session.session_dir) / DOWNLOADS_DIR
            return directory if directory.is_dir() else None
        return None

    async def _download_url(
        self,
        session: Session,
        file: dl.DownloadedFile,
        base_url: str,
        remote: RemoteMedia | None = None,
    ) -> str | None:
        """A link to the download; one still beside the browser (in its directory here, or on
        its node) is stored first (it would be at the session's end anyway), so the link works
        at once."""
        key = layout.download_key(session.project_id, session.id, file.name)
        directory = self._downloads_here(session) if remote is None else None
        try:
            if remote is not None:
                await self._store_remote(remote, file, key)
            elif directory is not None:
                await self._blobs.put_file(key, directory / file.name)
        except (StorageError, OSError) as error:
            log.warning("download %r not served: %s", file.name, error)
            return None
        try:
            return await self._link(key, self._config.download_link_ttl, file.name, base_url)
        except StorageError:
            return None

    async def _store_remote(self, remote: RemoteMedia, file: dl.DownloadedFile, key: str) -> None:
        """Fetched from its node into the work dir, then moved into the store."""
        fetched = self._config.work_dir / f".{uuid.uuid4()}.download"
        try:
            await remote.fetch_download(file, fetched)
            await self._blobs.put_file(key, fetched, move=True)
        finally:
            await asyncio.to_thread(fetched.unlink, True)

    async def _stored_downloads(
        self, session: Session, after: str | None, limit: int
    ) -> dl.DownloadPage:
        prefix = layout.downloads_prefix(session.project_id, session.id)
        start_after = prefix + after if after is not None else None
        page = await self._blobs.list_page(prefix, start_after=start_after, limit=limit)
        files = [
            dl.DownloadedFile(info.key[len(prefix) :], info.size, info.last_modified)
            for info in page.items
        ]
        more = page.next_start_after is not None and len(files) == limit
        cursor = dl.encode_cursor(files[-1].name) if more and files else None
        return dl.DownloadPage(tuple(files), cursor)

    async def _link(
        self, key: str, ttl: timedelta, download_name: str | None, base_url: str
    ) -> str | None:
        """A URL for the stored object (None if there is none): the store's presigned URL,
        or for a local store one of ours, signed."""
        if await self._blobs.stat(key) is None:
            return None
        access = await self._blobs.access(key, expires_in=ttl, download_name=download_name)
        if not isinstance(access, LocalFile):
            return access.url
        disposition = Disposition.ATTACHMENT if download_name else Disposition.INLINE
        link = sign(self._secret, key, expires_at=self._clock() + ttl, disposition=disposition)
        return link.url(base_url)

    async def open_signed(
        self, key: str, *, expires: int, disposition: Disposition, signature: str
    ) -> LocalFile | None:
        """The local file a signed link names, if the signature is ours for exactly this key,
        expiry and disposition and has not expired; else None (the route answers 403)."""
        if not verify(
            self._secret,
            key,
            expires=expires,
            disposition=disposition,
            signature=signature,
            now=self._clock(),
        ):
            return None
        name = key.rsplit("/", 1)[-1] if disposition is Disposition.ATTACHMENT else None
        remaining = timedelta(seconds=max(1, expires - int(self._clock().timestamp())))
        access = await self._blobs.access(key, expires_in=remaining, download_name=name)
        return access if isinstance(access, LocalFile) else None

    # -- retention and crash leftovers -------------------------------------------------------
    async def sweep(self) -> int:
        """Delete recordings and downloads past the retention period; how many went."""
        now, deleted = self._clock(), 0
        for prefix in (layout.RECORDINGS + "/", layout.DOWNLOADS + "/"):
            report = await retention.sweep(
                self._blobs, prefix, now=now, max_age=self._config.retention
            )
            deleted += report.deleted
        return deleted

    async def _retention_loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("retention sweep failed")
            await asyncio.sleep(self._config.retention_interval_s)

    async def discard_stale_work(self) -> None:
        """Remove recordings in progress whose session no longer runs anywhere."""
        try:
            names = await asyncio.to_thread(os.listdir, self._config.work_dir)
        except FileNotFoundError:
            return
        for name in names:
            try:
                session = await self._lookup(SessionId(uuid.UUID(name.split(".")[0])))
            except ValueError:
                session = None
            if session is not None and session.is_live:
                continue
            log.warning("discarding an unfinished recording", extra={"session_id": name})
            path = self._config.work_dir / name
            await asyncio.to_thread(_remove, path)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _downloads_dir(end: SessionEnd) -> Path | None:
    if end.browser is not None:
        return end.browser.files.host_downloads
    if end.workdir is not None:
        return end.workdir / DOWNLOADS_DIR
    return None


class FinishRecording:
    """End step: finalize the MP4 while the browser still runs (ffmpeg runs as its uid)."""

    name = "finish-recording"
    phase = EndPhase.LIVE

    def __init__(self, media: MediaService) -> None:
        self._media = media
        self.timeout_s = media.config.finish_timeout_s + 30.0

    def wanted(self, session: Session) -> bool:
        return session.request.enable_recording

    async def run(self, end: SessionEnd) -> None:
        await self._media.finish_recording(end)


class ReleaseMedia:
    """End step: let go of the session's screencast (its viewers see the session end) and of
    anything else this server held for its media."""

    name = "release-media"
    phase = EndPhase.LIVE
    timeout_s = 10.0

    def __init__(self, media: MediaService) -> None:
        self._media = media

    def wanted(self, session: Session) -> bool:
        return True

    async def run(self, end: SessionEnd) -> None:
        await self._media.release(end.session.id)


class KeepDownloads:
    """End step: keep the session's downloads in the store, once nothing of the tenant runs
    any more (the browser is gone, its files are still there)."""

    name = "keep-downloads"
    phase = EndPhase.CLOSED

    def __init__(self, media: MediaService) -> None:
        self._media = media
        self.timeout_s = media.config.keep_timeout_s

    def wanted(self, session: Session) -> bool:
        """Only a session that downloaded something (it costs the session a graceful close)."""
        return self._media.has_downloads(session)

    async def run(self, end: SessionEnd) -> None:
        await self._media.keep_downloads(end)
