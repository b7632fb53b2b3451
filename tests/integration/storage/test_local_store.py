"""What only the local store does: its files on disk, their modes, what a crash leaves, folder
pruning, keys that would need a file to be a folder, and serving a file to the API."""

from __future__ import annotations

import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.model import LocalFile
from browserfleet.storage.retention import sweep


def source(files: Path, data: bytes, name: str = "in") -> Path:
    path = files / name
    path.write_bytes(data)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_objects_are_private_files_under_objects(tmp_path: Path, files: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    try:
        await store.put_file("downloads/p/s/report.pdf", source(files, b"%PDF-1.7"))
    finally:
        await store.aclose()

    stored = tmp_path / "blobs" / "objects" / "downloads" / "p" / "s" / "report.pdf"
    assert stored.read_bytes() == b"%PDF-1.7"
    assert mode(stored) == 0o600
    assert mode(stored.parent) == mode(tmp_path / "blobs") == 0o700
    assert os.listdir(tmp_path / "blobs" / "partial") == []


async def test_a_moved_file_keeps_nothing_of_its_past(
    local_store: LocalBlobStore, files: Path, tmp_path: Path
) -> None:
    recording = source(files, b"mp4 data", "recording.mp4")
    recording.chmod(0o644)
    old = time.time() - 30 * 86400
    os.utime(recording, (old, old))

    await local_store.put_file("recordings/p/s.mp4", recording, move=True)
    info = await local_store.stat("recordings/p/s.mp4")

    stored = tmp_path / "blobs" / "objects" / "recordings" / "p" / "s.mp4"
    assert mode(stored) == 0o600
    assert info is not None and datetime.now(UTC) - info.last_modified < timedelta(minutes=1)


async def test_a_hard_linked_source_is_copied_not_moved(
    local_store: LocalBlobStore, files: Path
) -> None:
    # Another name of the same inode could still write to it after it was stored.
    original = source(files, b"as downloaded", "a.bin")
    other_name = files / "b.bin"
    os.link(original, other_name)

    await local_store.put_file("downloads/p/s/a.bin", original, move=True)
    other_name.write_bytes(b"changed through the other name")
    await local_store.get_file("downloads/p/s/a.bin", files / "back")

    assert not original.exists()
    assert (files / "back").read_bytes() == b"as downloaded"


async def test_deleting_the_last_object_prunes_its_folders(
    local_store: LocalBlobStore, files: Path, tmp_path: Path
) -> None:
    await local_store.put_file("downloads/p/s/a", source(files, b"1"))
    await local_store.put_file("downloads/p/t/b", source(files, b"2"))

    await local_store.delete("downloads/p/s/a")
    await local_store.delete_prefix("downloads/p/t/")

    assert os.listdir(tmp_path / "blobs" / "objects") == []
    assert os.listdir(tmp_path / "blobs" / "partial") == []


async def test_a_key_cannot_be_the_folder_of_another(
    local_store: LocalBlobStore, files: Path
) -> None:
    await local_store.put_file("a/b", source(files, b"file"))
    with pytest.raises(InvalidBlobKey, match="clashes"):
        await local_store.put_file("a/b/c", source(files, b"under a file"))
    await local_store.put_file("x/y/z", source(files, b"deep"))
    with pytest.raises(InvalidBlobKey, match="clashes"):
        await local_store.put_file("x/y", source(files, b"over a folder"))

    assert [i.key for i in (await local_store.list_page("")).items] == ["a/b", "x/y/z"]
    assert await local_store.stat("x/y") is None  # a folder is not an object
    await local_store.delete("x/y")  # nor deletable as one
    assert await local_store.stat("x/y/z") is not None


async def test_partial_files_a_crash_left_are_removed_after_an_hour(
    tmp_path: Path, files: Path
) -> None:
    partial = tmp_path / "blobs" / "partial"
    partial.mkdir(parents=True)
    stale, fresh = partial / "stale.part", partial / "fresh.part"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"an upload in progress")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))

    store = LocalBlobStore(tmp_path / "blobs")
    try:
        await store.put_file("k", source(files, b"v"))
    finally:
        await store.aclose()

    assert not stale.exists() and fresh.exists()


async def test_foreign_entries_are_never_listed_or_served(
    local_store: LocalBlobStore, files: Path, tmp_path: Path
) -> None:
    await local_store.put_file("d/real", source(files, b"ours"))
    objects = tmp_path / "blobs" / "objects" / "d"
    (objects / "link").symlink_to(files / "in")
    os.mkfifo(objects / "fifo")

    listed = await local_store.list_page("d/")

    assert [item.key for item in listed.items] == ["d/real"]
    assert await local_store.stat("d/link") is None
    assert await local_store.stat("d/fifo") is None


async def test_access_hands_the_api_a_file_with_safe_headers(
    local_store: LocalBlobStore, files: Path
) -> None:
    await local_store.put_file("downloads/p/s/page.svg", source(files, b"<svg onload=x()>"))

    access = await local_store.access(
        "downloads/p/s/page.svg", expires_in=timedelta(minutes=15), download_name="page.svg"
    )

    assert isinstance(access, LocalFile)
    assert access.path.read_bytes() == b"<svg onload=x()>"
    assert access.info.size == 16
    assert access.headers.content_type == "application/octet-stream"  # never rendered
    assert access.headers.content_disposition == (
        "attachment; filename=\"page.svg\"; filename*=UTF-8''page.svg"
    )


async def test_retention_compares_each_files_own_age(
    local_store: LocalBlobStore, files: Path, tmp_path: Path
) -> None:
    for name in ("old.mp4", "new.mp4"):
        await local_store.put_file(f"recordings/p/{name}", source(files, b"frames"))
    eight_days_ago = time.time() - 8 * 86400
    old = tmp_path / "blobs" / "objects" / "recordings" / "p" / "old.mp4"
    os.utime(old, (eight_days_ago, eight_days_ago))

    report = await sweep(
        local_store, "recordings/", now=datetime.now(UTC), max_age=timedelta(days=7)
    )

    assert (report.examined, report.deleted, report.bytes_freed) == (2, 1, 6)
    assert [i.key for i in (await local_store.list_page("")).items] == ["recordings/p/new.mp4"]
