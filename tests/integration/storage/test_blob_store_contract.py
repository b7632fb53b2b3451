"""The BlobStore contract, run against both stores: the local directory and S3 (a real
S3-compatible server). Whatever profiles, recordings and downloads rely on is asserted here."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from browserfleet.storage.errors import BlobNotFound, InvalidBlobKey, UnsafeSource
from browserfleet.storage.port import BlobStore
from browserfleet.storage.retention import sweep

MIB = 1024 * 1024


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


async def put_bytes(store: BlobStore, key: str, data: bytes, scratch: Path) -> int:
    source = write(scratch / f"put-{hashlib.sha256(key.encode()).hexdigest()[:12]}", data)
    try:
        return await store.put_file(key, source)
    finally:
        source.unlink(missing_ok=True)


async def all_keys(store: BlobStore, prefix: str, limit: int = 1000) -> list[str]:
    keys: list[str] = []
    start_after: str | None = None
    while True:
        page = await store.list_page(prefix, start_after=start_after, limit=limit)
        keys += [item.key for item in page.items]
        if page.next_start_after is None:
            return keys
        assert page.items and page.next_start_after == page.items[-1].key
        start_after = page.next_start_after


async def test_a_put_file_reads_back_byte_for_byte(store: BlobStore, files: Path) -> None:
    data = os.urandom(300_000)
    before = datetime.now(UTC) - timedelta(seconds=2)

    size = await store.put_file("profiles/p/prof/v1.tar.zst", write(files / "in", data))
    info = await store.get_file("profiles/p/prof/v1.tar.zst", files / "out")

    assert size == len(data)
    assert (files / "out").read_bytes() == data
    assert (files / "in").read_bytes() == data  # a copy: the source is left alone
    assert info.key == "profiles/p/prof/v1.tar.zst" and info.size == len(data)
    assert before <= info.last_modified <= datetime.now(UTC) + timedelta(seconds=2)
    assert await store.stat("profiles/p/prof/v1.tar.zst") == info
    assert sorted(os.listdir(files)) == ["in", "out"]  # no temp file left beside the copy


async def test_a_missing_key_is_absent_everywhere(store: BlobStore, files: Path) -> None:
    assert await store.stat("recordings/p/none.mp4") is None
    with pytest.raises(BlobNotFound) as raised:
        await store.get_file("recordings/p/none.mp4", files / "out")
    assert raised.value.key == "recordings/p/none.mp4"
    with pytest.raises(BlobNotFound):
        await store.access("recordings/p/none.mp4", expires_in=timedelta(minutes=1))
    await store.delete("recordings/p/none.mp4")  # deleting nothing is fine
    assert os.listdir(files) == []  # a failed get leaves no file, whole or partial


async def test_a_second_put_replaces_the_object(store: BlobStore, files: Path) -> None:
    await put_bytes(store, "downloads/p/s/report.pdf", b"first version", files)
    first = await store.stat("downloads/p/s/report.pdf")
    await put_bytes(store, "downloads/p/s/report.pdf", b"second, longer version", files)

    second = await store.stat("downloads/p/s/report.pdf")
    await store.get_file("downloads/p/s/report.pdf", files / "out")

    assert (files / "out").read_bytes() == b"second, longer version"
    assert first is not None and second is not None
    assert second.size == len(b"second, longer version") and second.etag != first.etag
    assert await all_keys(store, "downloads/") == ["downloads/p/s/report.pdf"]


async def test_listing_is_in_s3_key_order_across_folders(store: BlobStore, files: Path) -> None:
    # '-' < '.' < '/' < '0' < 'Z' < 'a' < 'z' < 'é' in UTF-8: a folder sorts by 'name/'.
    keys = ["k/a/b", "k/a-c", "k/a.x", "k/a0", "k/Z", "k/a/a/a", "k/z", "k/é", "k/a b"]
    for key in keys:
        await put_bytes(store, key, key.encode(), files)
    await put_bytes(store, "j/outside", b"x", files)

    listed = await all_keys(store, "k/")

    assert listed == sorted(keys)
    assert listed == sorted(keys, key=lambda k: k.encode())  # byte order, as S3 defines it
    assert await all_keys(store, "") == ["j/outside", *sorted(keys)]


async def test_paging_with_a_cursor_visits_every_key_once(store: BlobStore, files: Path) -> None:
    keys = [f"downloads/p/s/{i:02d}-f" for i in range(23)]
    keys += ["downloads/p/s/sub/a", "downloads/p/s/sub/b"]
    for key in keys:
        await put_bytes(store, key, b"x" * 10, files)

    first = await store.list_page("downloads/p/s/", limit=7)
    paged = await all_keys(store, "downloads/p/s/", limit=7)
    resumed = await store.list_page("downloads/p/s/", start_after="downloads/p/s/10-f", limit=3)
    from_folder = await store.list_page("downloads/p/s/", start_after="downloads/p/s/sub/a")
    last = await store.list_page("downloads/p/s/", start_after=keys[-2], limit=1)

    assert [i.key for i in first.items] == keys[:7] and first.next_start_after == keys[6]
    assert paged == sorted(keys)
    assert [i.key for i in resumed.items] == [
        "downloads/p/s/11-f",
        "downloads/p/s/12-f",
        "downloads/p/s/13-f",
    ]
    assert [i.key for i in from_folder.items] == ["downloads/p/s/sub/b"]
    assert from_folder.next_start_after is None
    # A page that holds exactly the last key says so only when there is nothing after it.
    assert [i.key for i in last.items] == [keys[-1]]


async def test_a_prefix_is_a_plain_string_prefix(store: BlobStore, files: Path) -> None:
    for key in ("d/s1/a", "d/s10/b", "d/s2/c", "d/s1x"):
        await put_bytes(store, key, b"x", files)

    assert await all_keys(store, "d/s1") == ["d/s1/a", "d/s10/b", "d/s1x"]
    assert await all_keys(store, "d/s1/") == ["d/s1/a"]
    assert await all_keys(store, "d/s3") == []
    assert await all_keys(store, "nothing/here/") == []


async def test_delete_prefix_takes_one_folder_only(store: BlobStore, files: Path) -> None:
    for key in ("downloads/p/s1/a", "downloads/p/s1/deep/b", "downloads/p/s10/c", "other"):
        await put_bytes(store, key, b"x", files)

    removed = await store.delete_prefix("downloads/p/s1/")

    assert removed == 2
    assert await all_keys(store, "") == ["downloads/p/s10/c", "other"]
    assert await store.delete_prefix("downloads/p/s1/") == 0
    with pytest.raises(InvalidBlobKey):
        await store.delete_prefix("downloads/p/s1")  # would take s10 as well
    with pytest.raises(InvalidBlobKey):
        await store.delete_prefix("")


async def test_usage_and_delete_many(store: BlobStore, files: Path) -> None:
    sizes = {"recordings/p1/a.mp4": 1000, "recordings/p1/b.mp4": 2345, "recordings/p2/c.mp4": 7}
    for key, size in sizes.items():
        await put_bytes(store, key, b"v" * size, files)

    p1 = await store.usage("recordings/p1/")
    everything = await store.usage("")
    await store.delete_many(["recordings/p1/a.mp4", "recordings/p2/c.mp4", "recordings/none"])

    assert (p1.objects, p1.bytes) == (2, 3345)
    assert (everything.objects, everything.bytes) == (3, 3352)
    assert await all_keys(store, "") == ["recordings/p1/b.mp4"]
    assert (await store.usage("recordings/p2/")).objects == 0


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/abs",
        "../escape",
        "a/../../escape",
        "a/./b",
        "a//b",
        "trailing/",
        "nul\x00byte",
        "new\nline",
        "x" * 256,
        "/".join(["y" * 200] * 6),
        "lone\udc80surrogate",
    ],
    ids=lambda key: repr(key)[:24],
)
async def test_a_bad_key_is_refused_before_anything_is_stored(
    store: BlobStore, files: Path, key: str
) -> None:
    source = write(files / "in", b"data")
    with pytest.raises(InvalidBlobKey):
        await store.put_file(key, source)
    with pytest.raises(InvalidBlobKey):
        await store.stat(key)
    with pytest.raises(InvalidBlobKey):
        await store.get_file(key, files / "out")
    with pytest.raises(InvalidBlobKey):
        await store.delete(key)
    assert await all_keys(store, "") == []
    assert not (files / "out").exists()


async def test_a_symlink_source_is_refused_and_its_target_never_stored(
    store: BlobStore, files: Path, tmp_path: Path
) -> None:
    # The attack: a page's download folder holds a link to a file of the host (or of another
    # tenant); storing "the download" must not copy what it points to.
    secret = write(tmp_path / "host-secret", b"root:password-hash")
    link = files / "invoice.pdf"
    link.symlink_to(secret)
    fifo = files / "pipe"
    os.mkfifo(fifo)

    with pytest.raises(UnsafeSource):
        await store.put_file("downloads/p/s/invoice.pdf", link)
    with pytest.raises(UnsafeSource):
        await store.put_file("downloads/p/s/invoice.pdf", link, move=True)
    with pytest.raises(UnsafeSource):  # refused at once, not blocked waiting for a writer
        await asyncio.wait_for(store.put_file("downloads/p/s/pipe", fifo), 10)

    assert await all_keys(store, "") == []
    assert link.is_symlink() and secret.read_bytes() == b"root:password-hash"


async def test_put_with_move_consumes_the_source(store: BlobStore, files: Path) -> None:
    video = b"\x00\x00\x00\x18ftypmp42" * 1000
    source = write(files / "recording.mp4", video)

    size = await store.put_file("recordings/p/s.mp4", source, move=True)

    assert size == len(video) and not source.exists()
    await store.get_file("recordings/p/s.mp4", files / "back")
    assert (files / "back").read_bytes() == video


async def test_a_large_object_round_trips(store: BlobStore, files: Path) -> None:
    data = os.urandom(12 * MIB + 12345)  # above the test stores' 5 MiB multipart threshold
    size = await store.put_file("profiles/p/prof/big.tar.zst", write(files / "in", data))

    info = await store.get_file("profiles/p/prof/big.tar.zst", files / "out")

    assert size == info.size == len(data)
    assert hashlib.sha256((files / "out").read_bytes()).digest() == hashlib.sha256(data).digest()


async def test_concurrent_puts_of_one_key_never_tear(store: BlobStore, files: Path) -> None:
    """Writers race on one key while readers read it: every read is one writer's whole
    object, and the key ends holding one of them (the last to finish wins)."""
    key = "profiles/p/prof/current.tar.zst"
    versions = [bytes([n]) * (6 * MIB + n) for n in range(1, 5)]
    digests = {hashlib.sha256(v).digest() for v in versions}
    sources = [write(files / f"v{n}", data) for n, data in enumerate(versions)]
    await store.put_file(key, sources[0])
    seen: list[bytes] = []
    done = asyncio.Event()

    async def read_until_done(reader: int) -> None:
        reads = 0
        while not done.is_set() or reads == 0:
            out = files / f"read-{reader}-{reads}"
            await store.get_file(key, out)
            seen.append(hashlib.sha256(out.read_bytes()).digest())
            out.unlink()
            reads += 1

    async def write_all() -> None:
        try:
            await asyncio.gather(*(store.put_file(key, source) for source in sources * 2))
        finally:
            done.set()

    await asyncio.gather(write_all(), read_until_done(1), read_until_done(2))

    assert seen and set(seen) <= digests
    await store.get_file(key, files / "final")
    assert hashlib.sha256((files / "final").read_bytes()).digest() in digests


async def test_access_refuses_lifetimes_a_presigned_url_cannot_have(
    store: BlobStore, files: Path
) -> None:
    await put_bytes(store, "recordings/p/s.mp4", b"video", files)
    for bad in (timedelta(0), timedelta(seconds=-1), timedelta(days=7, seconds=1)):
        with pytest.raises(ValueError):
            await store.access("recordings/p/s.mp4", expires_in=bad)


async def test_retention_sweep_deletes_what_is_old_under_its_prefix_only(
    store: BlobStore, files: Path
) -> None:
    for key in ("recordings/p/a.mp4", "recordings/q/b.mp4", "downloads/p/s/c"):
        await put_bytes(store, key, b"12345", files)
    now = datetime.now(UTC)

    young = await sweep(store, "recordings/", now=now, max_age=timedelta(days=7))
    old = await sweep(store, "recordings/", now=now + timedelta(days=8), max_age=timedelta(days=7))

    assert (young.examined, young.deleted) == (2, 0)
    assert (old.examined, old.deleted, old.bytes_freed) == (2, 2, 10)
    assert await all_keys(store, "") == ["downloads/p/s/c"]
