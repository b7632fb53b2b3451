"""What a node serves of a browser's media: only names directly in its downloads directory,
only regular files (never through a link the tenant planted), in bounded chunks; and the
recordings of browsers whose actor died are removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from runtime_fakes import FakeBrowser

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.cluster.node_media import MAX_CHUNK, NodeMedia, remove_dead_recordings
from browserfleet.storage.errors import UnsafeSource

GUID = "7fa59118-aefa-45e6-987f-679dbb576d1f"


@pytest.fixture
async def node(tmp_path: Path) -> NodeMedia:
    browser = FakeBrowser(LaunchSpec(HeadlessMode.SHELL, 800, 600), tmp_path / "sessions" / "b1")
    downloads = browser.files.host_downloads
    downloads.mkdir(parents=True)
    (downloads / "report.csv").write_bytes(b"0123456789")
    (downloads / "link").symlink_to(tmp_path / "server-secret")
    (tmp_path / "server-secret").write_bytes(b"never served")
    (downloads / GUID).write_bytes(b"unnamed")
    (downloads / "c.zip.crdownload").write_bytes(b"partial")
    return NodeMedia(
        browser,  # type: ignore[arg-type]  # the fake has what NodeMedia uses
        "b1",
        tmp_path / "work",
        downloads_max_bytes=1000,
        ffmpeg="/usr/bin/ffmpeg",
        bwrap=None,
    )


async def test_a_download_is_read_in_chunks_by_its_name(node: NodeMedia) -> None:
    assert [f.name for f in await node.downloads()] == ["report.csv"]
    assert await node.read_download("report.csv", 0, 4) == b"0123"
    assert await node.read_download("report.csv", 8, 100) == b"89"
    assert await node.read_download("report.csv", 10, 100) == b""


@pytest.mark.parametrize(
    "name", ["../server-secret", "sub/report.csv", "/etc/passwd", GUID, "c.zip.crdownload", ""]
)
async def test_only_names_the_listing_could_show_are_read(node: NodeMedia, name: str) -> None:
    with pytest.raises(FileNotFoundError):
        await node.read_download(name, 0, 10)


async def test_a_link_the_tenant_planted_is_never_followed(node: NodeMedia) -> None:
    with pytest.raises(UnsafeSource):
        await node.read_download("link", 0, 10)


@pytest.mark.parametrize(("offset", "size"), [(-1, 10), (0, 0), (0, MAX_CHUNK + 1)])
async def test_reads_are_bounded(node: NodeMedia, offset: int, size: int) -> None:
    with pytest.raises(ValueError, match="a read of"):
        await node.read_download("report.csv", offset, size)


async def test_no_recording_is_served_before_one_is_finished(node: NodeMedia) -> None:
    assert await node.finish_recording(5.0) is None  # never started
    with pytest.raises(FileNotFoundError):
        await node.read_recording(0, 10)
    await node.close()


def test_recordings_whose_browser_is_gone_are_removed(tmp_path: Path) -> None:
    sessions, work = tmp_path / "sessions", tmp_path / "work"
    (sessions / "alive").mkdir(parents=True)
    work.mkdir()
    for name in ("alive.mp4", "dead.mp4", "notes.txt"):
        (work / name).write_bytes(b"x")
    assert remove_dead_recordings(work, sessions) == 1
    assert sorted(os.listdir(work)) == ["alive.mp4", "notes.txt"]
    assert remove_dead_recordings(tmp_path / "missing", sessions) == 0
