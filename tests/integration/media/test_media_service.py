"""MediaService on a real local blob store and a real (hostile) downloads directory: what is
listed, what is kept at the end, what retention deletes, and what recordingAvailable says."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from browserfleet.auth.signing import ServerSecret
from browserfleet.ids import ProjectId, SessionId
from browserfleet.media.service import MediaConfig, MediaService
from browserfleet.sessions.ending import SessionEnd
from browserfleet.sessions.model import Session, SessionRequest, SessionStatus
from browserfleet.storage import layout
from browserfleet.storage.local import LocalBlobStore

START = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def session(recording: bool = False, status: SessionStatus = SessionStatus.STOPPED) -> Session:
    return Session(
        id=SessionId(uuid.uuid4()),
        project_id=ProjectId(uuid.uuid4()),
        status=status,
        token="",
        request=SessionRequest(enable_recording=recording),
        created_at=START,
        started_at=START,
        timeout_at=START + timedelta(hours=1),
        upfront_micros=0,
        finished_at=START + timedelta(minutes=1),
    )


def hostile_downloads(workdir: Path, outside: Path) -> None:
    """What a tenant's browser could leave: real files, a half-finished download, and things
    that are not files of its own (a link out, a FIFO, a directory)."""
    downloads = workdir / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "b.pdf").write_bytes(b"%PDF-1.7 b")
    (downloads / "a.csv").write_bytes(b"x,y\n1,2\n")
    (downloads / "big.bin").write_bytes(b"\0" * 5000)
    (downloads / "c.zip.crdownload").write_bytes(b"partial")
    (downloads / "secret-link").symlink_to(outside)
    os.mkfifo(downloads / "pipe")
    (downloads / "folder").mkdir()


def build(
    tmp_path: Path,
    clock: Clock,
    ending: Callable[[SessionId], bool] = lambda _session_id: False,
    **config: object,
) -> tuple[MediaService, LocalBlobStore]:
    blobs = LocalBlobStore(tmp_path / "blobs")

    async def lookup(_session_id: SessionId) -> Session | None:
        return None

    media = MediaService(
        MediaConfig(work_dir=tmp_path / "work", **config),  # type: ignore[arg-type]
        blobs,
        ServerSecret(b"s" * 32),
        clock,
        lookup,
        ending,
    )
    return media, blobs


def test_downloads_are_kept_without_following_links_listed_paged_and_swept(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "server-secret"
    outside.write_bytes(b"never copied")
    workdir = tmp_path / "session"
    hostile_downloads(workdir, outside)
    clock = Clock()
    media, blobs = build(tmp_path, clock, downloads_max_bytes=4096)
    stopped = session()

    async def scenario() -> None:
        await media.keep_downloads(SessionEnd(stopped, None, workdir))
        listing = await media.downloads(
            stopped, cursor=None, limit=1, include_urls=True, base_url="http://api"
        )
        assert [(f.name, f.size) for f in listing.files] == [("a.csv", 8)]
        url = listing.files[0].url
        assert url is not None and "disposition=attachment" in url
        rest = await media.downloads(
            stopped, cursor=listing.next_cursor, limit=10, include_urls=False, base_url="x"
        )
        # big.bin is over the 4096-byte limit; the link, FIFO, folder and partial file are
        # never kept.
        assert [f.name for f in rest.files] == ["b.pdf"] and rest.next_cursor is None
        prefix = layout.downloads_prefix(stopped.project_id, stopped.id)
        kept = await blobs.list_page(prefix)
        assert [i.key.removeprefix(prefix) for i in kept.items] == ["a.csv", "b.pdf"]

        recording = layout.recording_key(stopped.project_id, stopped.id)
        await blobs.put_file(recording, _file(tmp_path / "r.mp4", b"mp4"))
        clock.now = datetime.now(UTC)
        assert await media.sweep() == 0  # everything was stored just now
        for path in (tmp_path / "blobs").rglob("*"):
            if path.is_file():  # as if stored eight days ago
                old = (clock.now - timedelta(days=8)).timestamp()
                os.utime(path, (old, old))
        assert await media.sweep() == 3  # two downloads and the recording, past 7 days
        assert (await blobs.list_page("")).items == ()
        await blobs.aclose()

    asyncio.run(scenario())


def test_an_ending_session_lists_its_directory_until_its_downloads_are_kept_then_the_store(
    tmp_path: Path,
) -> None:
    """Between the stop and the end of the teardown, the files are in the session's directory
    first, then in the store; the teardown then removes the directory. A listing at any moment
    shows them all: once kept, an emptied directory is never what is listed."""
    workdir = tmp_path / "session"
    (workdir / "downloads").mkdir(parents=True)
    (workdir / "downloads" / "report.pdf").write_bytes(b"%PDF-1.7")
    (workdir / "downloads" / "data.csv").write_bytes(b"a,b\n")
    stopped = replace(session(), session_dir=str(workdir))
    media, blobs = build(tmp_path, Clock(), ending=lambda session_id: session_id == stopped.id)

    async def names() -> list[str]:
        listing = await media.downloads(
            stopped, cursor=None, limit=10, include_urls=False, base_url="http://api"
        )
        return [f.name for f in listing.files]

    async def scenario() -> None:
        prefix = layout.downloads_prefix(stopped.project_id, stopped.id)
        assert await names() == ["data.csv", "report.pdf"]  # from the directory: nothing stored
        assert (await blobs.list_page(prefix)).items == ()
        await media.keep_downloads(SessionEnd(stopped, None, workdir))
        shutil.rmtree(workdir / "downloads")  # the teardown, under way
        (workdir / "downloads").mkdir()
        assert await names() == ["data.csv", "report.pdf"]  # from the store
        await blobs.aclose()

    asyncio.run(scenario())


def test_recording_available_is_false_only_from_proof(tmp_path: Path) -> None:
    clock = Clock()
    media, blobs = build(tmp_path, clock)

    async def scenario() -> None:
        assert (await media.recording(session(recording=False), "x")).available is False
        running = session(recording=True, status=SessionStatus.ACTIVE)
        assert await media.recording(running, "x") == type(await media.recording(running, "x"))(
            None, True
        )
        stopped = session(recording=True)
        clock.now = START + timedelta(minutes=2)  # a minute after the stop: it may still come
        view = await media.recording(stopped, "http://api")
        assert (view.url, view.available) == (None, True)
        clock.now = START + timedelta(minutes=30)  # long past the grace: it never will
        assert (await media.recording(stopped, "http://api")).available is False
        key = layout.recording_key(stopped.project_id, stopped.id)
        await blobs.put_file(key, _file(tmp_path / "r.mp4", b"mp4"))
        ready = await media.recording(stopped, "http://api")
        assert ready.available and ready.url is not None
        assert ready.url.startswith(f"http://api/files/{key}?expires=")
        assert "disposition=inline" in ready.url
        await blobs.aclose()

    asyncio.run(scenario())


def _file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


G1 = "7fa59118-aefa-45e6-987f-679dbb576d1f"
G2 = "c7fe5352-2354-4fb5-b129-6d0b86bb9b84"


def test_the_browsers_download_events_name_files_and_cancel_past_the_limit(
    tmp_path: Path,
) -> None:
    """The service's side of the download events: a complete GUID file gets its safe name,
    a download past the limit is cancelled on the server's own connection, and the session's
    end stops the watch once the names are given."""
    from runtime_fakes import FakeBrowser

    from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec

    media, blobs = build(tmp_path, Clock(), downloads_max_bytes=100)
    running = session(status=SessionStatus.ACTIVE)

    async def scenario() -> None:
        browser = FakeBrowser(LaunchSpec(HeadlessMode.SHELL, 800, 600), tmp_path / "session")
        downloads = browser.files.host_downloads
        downloads.mkdir(parents=True)
        media.session_active(running, browser)
        listener = browser.download_listener
        assert listener is not None
        listener("Browser.downloadWillBegin", {"guid": G1, "suggestedFilename": "../r.csv"})
        (downloads / G1).write_bytes(b"a,b\n")
        listener("Browser.downloadProgress", {"guid": G1, "receivedBytes": 4, "state": "completed"})
        listener("Browser.downloadWillBegin", {"guid": G2, "suggestedFilename": "huge.iso"})
        listener(
            "Browser.downloadProgress", {"guid": G2, "receivedBytes": 97, "state": "inProgress"}
        )
        await media.release(running.id)  # waits for what the events started
        assert browser.download_listener is None
        assert sorted(p.name for p in downloads.iterdir()) == ["r.csv"]
        assert ("Browser.cancelDownload", {"guid": G2}) in browser.calls
        await media.aclose()
        await blobs.aclose()

    asyncio.run(scenario())


def test_a_browser_on_a_cluster_node_is_recorded_there_and_its_files_fetched_for_the_store(
    tmp_path: Path,
) -> None:
    """A browser whose media live on its node (RemoteMedia): the recording is started and
    finalized there and fetched for the store; its downloads are named and limited there
    (nothing is watched here), listed through it while it runs (a file given a URL is
    fetched and stored first), settled at the release, and kept from what the session's end
    brings here."""
    from runtime_fakes import FakeBrowser

    from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
    from browserfleet.media.downloads import DownloadedFile
    from browserfleet.media.recorder import RecordingSpec

    class NodeBrowser(FakeBrowser):
        def __init__(self, workdir: Path) -> None:
            super().__init__(LaunchSpec(HeadlessMode.SHELL, 800, 600), workdir)
            self.specs: list[RecordingSpec] = []
            self.on_node = {"report.csv": b"a,b\n1,2\n", "data.bin": b"\1" * 40}
            self.settled = 0

        async def start_recording(self, spec: RecordingSpec) -> None:
            self.specs.append(spec)

        async def fetch_recording(self, dest: Path, timeout_s: float) -> bool:
            await asyncio.to_thread(dest.write_bytes, b"an mp4 from the node")
            return bool(self.specs)

        async def list_downloads(self) -> list[DownloadedFile]:
            return [DownloadedFile(n, len(d), START) for n, d in sorted(self.on_node.items())]

        async def fetch_download(self, file: DownloadedFile, dest: Path) -> None:
            await asyncio.to_thread(dest.write_bytes, self.on_node[file.name])

        async def settle_downloads(self) -> None:
            self.settled += 1

    media, blobs = build(tmp_path, Clock(), recording_max_width=640)
    running = replace(
        session(recording=True, status=SessionStatus.ACTIVE),
        request=SessionRequest(enable_recording=True, screen_width=1280, screen_height=720),
    )
    prefix = layout.downloads_prefix(running.project_id, running.id)

    async def scenario() -> None:
        await media.start()
        browser = NodeBrowser(tmp_path / "node-path")  # never made: the node's own path
        media.session_active(running, browser)
        assert browser.download_listener is None  # its node watches them
        async with asyncio.timeout(5):
            while not browser.specs:
                await asyncio.sleep(0.005)
        assert browser.specs == [RecordingSpec(10, 640, 360)]

        listing = await media.downloads(
            running, cursor=None, limit=1, include_urls=True, base_url="http://api"
        )
        assert [(f.name, f.size) for f in listing.files] == [("data.bin", 40)]
        assert listing.files[0].url is not None and listing.next_cursor is not None
        stored = await blobs.list_page(prefix)
        assert [i.key.removeprefix(prefix) for i in stored.items] == ["data.bin"]
        assert list((tmp_path / "work").iterdir()) == []  # fetched, stored, gone

        await media.finish_recording(SessionEnd(running, browser, None))
        key = layout.recording_key(running.project_id, running.id)
        assert await blobs.stat(key) is not None
        assert list((tmp_path / "work").iterdir()) == []
        await media.release(running.id)
        assert browser.settled == 1

        stopped = replace(running, status=SessionStatus.STOPPED)
        assert media.has_downloads(stopped)  # listed by its node at the release: brought here
        brought = tmp_path / "brought"
        (brought / "downloads").mkdir(parents=True)
        (brought / "downloads" / "report.csv").write_bytes(browser.on_node["report.csv"])
        await media.keep_downloads(SessionEnd(stopped, None, brought))
        assert not media.has_downloads(stopped)
        kept = await blobs.list_page(prefix)
        assert [i.key.removeprefix(prefix) for i in kept.items] == ["data.bin", "report.csv"]

        # A node with no finished download: no graceful close for them at the end.
        other = session(status=SessionStatus.ACTIVE)
        empty = NodeBrowser(tmp_path / "node-path-2")
        empty.on_node = {}
        media.session_active(other, empty)
        assert media.has_downloads(other)  # unknown while it runs
        await media.release(other.id)
        assert empty.settled == 1 and not media.has_downloads(other)
        await media.aclose()
        await blobs.aclose()

    asyncio.run(scenario())


def test_a_session_gone_without_its_end_steps_is_let_go_of(tmp_path: Path) -> None:
    """Fenced, or taken over by another server: what the service held for it is dropped, its
    downloads no longer followed, and nothing of it is kept."""
    from runtime_fakes import FakeBrowser

    from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec

    media, blobs = build(tmp_path, Clock())
    running = session(status=SessionStatus.ACTIVE)

    async def scenario() -> None:
        browser = FakeBrowser(LaunchSpec(HeadlessMode.SHELL, 800, 600), tmp_path / "session")
        media.session_active(running, browser)
        assert browser.download_listener is not None
        media.session_gone(running.id)
        assert browser.download_listener is None
        async with media.viewer(running.id) as slot:
            assert slot is None  # it no longer runs here
        media.session_gone(running.id)  # idempotent
        await media.aclose()
        await blobs.aclose()

    asyncio.run(scenario())
