"""Packing a directory and unpacking archives, including hostile ones built by hand: every
attack is the archive itself, and each must fail with nothing written outside the target."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
import zstandard

from browserfleet.storage.archive import ArchiveLimits, pack, unpack
from browserfleet.storage.archive_format import ArchiveFormat
from browserfleet.storage.errors import ArchiveError, ArchiveTooLarge, UnsafeArchive
from browserfleet.storage.selection import PathFilter

ROOMY = ArchiveLimits(max_bytes=64 * 1024 * 1024)


def make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "Local State": b'{"profile": {}}',
        "Default/Cookies": os.urandom(20_000),
        "Default/Local Storage/leveldb/000003.log": b"localStorage " * 500,
        "Default/IndexedDB/http_127.0.0.1_8000.indexeddb.leveldb/CURRENT": b"MANIFEST-000001\n",
        "Default/Cache/Cache_Data/index": b"cache",
        "Default/Code Cache/js/index": b"code cache",
        "Default/Preferences": '{"name": "Résumé"}'.encode(),
        "SingletonCookie": b"12345",
        "Default/émoji 😀 name.txt": b"unicode names survive",
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


@pytest.mark.parametrize("archive_format", list(ArchiveFormat))
def test_a_directory_round_trips(tmp_path: Path, archive_format: ArchiveFormat) -> None:
    files = make_tree(tmp_path / "src")
    archive = tmp_path / f"profile{archive_format.suffix}"

    packed = pack(tmp_path / "src", archive, limits=ROOMY, archive_format=archive_format)
    unpacked = unpack(archive, tmp_path / "dst", limits=ROOMY)

    assert tree(tmp_path / "dst") == files
    assert packed.files == unpacked.files == len(files)
    assert packed.content_bytes == unpacked.content_bytes == sum(map(len, files.values()))
    assert packed.archive_bytes == archive.stat().st_size < packed.content_bytes
    assert archive.read_bytes().startswith(archive_format.magic)
    for path in (tmp_path / "dst").rglob("*"):
        expected = 0o700 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == expected, path


def test_excluded_folders_and_names_stay_out(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    select = PathFilter(exclude=("Cache", "Code Cache", "Singleton*"))

    pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ROOMY, select=select)
    unpack(tmp_path / "a.tar.zst", tmp_path / "dst", limits=ROOMY)

    kept = set(tree(tmp_path / "dst"))
    assert "Default/Cookies" in kept and "Local State" in kept
    assert not any("Cache" in name or name.startswith("Singleton") for name in kept)


def test_include_patterns_keep_only_what_they_name(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    select = PathFilter(include=("Default/Cookies", "Default/Local Storage"))

    pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ROOMY, select=select)
    unpack(tmp_path / "a.tar.zst", tmp_path / "dst", limits=ROOMY)

    assert set(tree(tmp_path / "dst")) == {
        "Default/Cookies",
        "Default/Local Storage/leveldb/000003.log",
    }


def test_packing_never_follows_links_nor_blocks_on_special_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src)
    secret = tmp_path / "host-secret"
    secret.write_bytes(b"not for the archive")
    (src / "Default" / "link-to-secret").symlink_to(secret)
    (src / "linked-dir").symlink_to(tmp_path)
    os.mkfifo(src / "Default" / "fifo")

    stats = pack(src, tmp_path / "a.tar.zst", limits=ROOMY)
    unpack(tmp_path / "a.tar.zst", tmp_path / "dst", limits=ROOMY)

    assert stats.skipped == 3
    assert b"not for the archive" not in b"".join(tree(tmp_path / "dst").values())
    assert not (tmp_path / "dst" / "linked-dir").exists()


def test_packing_over_the_size_limit_writes_nothing(tmp_path: Path) -> None:
    files = make_tree(tmp_path / "src")
    total = sum(map(len, files.values()))

    with pytest.raises(ArchiveTooLarge, match="over the limit"):
        pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ArchiveLimits(total - 1))
    with pytest.raises(ArchiveTooLarge, match="files"):
        pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ArchiveLimits(total, max_files=3))
    assert not (tmp_path / "a.tar.zst").exists()
    pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ArchiveLimits(total))  # exactly fits


def test_packing_refuses_to_overwrite_an_existing_file(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    existing = tmp_path / "a.tar.zst"
    existing.write_bytes(b"previous version")
    with pytest.raises(FileExistsError):
        pack(tmp_path / "src", existing, limits=ROOMY)
    assert existing.read_bytes() == b"previous version"


# ---------------------------------------------------------------- hostile archives


def hostile(tmp_path: Path, build: list[tuple[tarfile.TarInfo, bytes]], zst: bool = True) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in build:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    body = raw.getvalue()
    path = tmp_path / ("evil.tar.zst" if zst else "evil.tar.gz")
    path.write_bytes(zstandard.compress(body) if zst else gzip.compress(body))
    return path


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


ATTACKS = {
    "parent traversal": [(member("../escaped"), b"x")],
    "deep traversal": [(member("a/../../escaped"), b"x")],
    "absolute path": [(member("/tmp/escaped"), b"x")],
    "dot segment": [(member("./a"), b"x")],
    "empty segment": [(member("a//b"), b"x")],
    "symlink": [(member("link", tarfile.SYMTYPE, "/etc/passwd"), b"")],
    "symlink then write through it": [
        (member("d", tarfile.SYMTYPE, ".."), b""),
        (member("d/escaped"), b"x"),
    ],
    "hard link": [(member("hard", tarfile.LNKTYPE, "/etc/passwd"), b"")],
    "character device": [(member("null", tarfile.CHRTYPE), b"")],
    "fifo": [(member("pipe", tarfile.FIFOTYPE), b"")],
    "duplicate file": [(member("a"), b"first"), (member("a"), b"second")],
    "file used as a folder": [(member("a"), b"x"), (member("a/b"), b"y")],
    "control character": [(member("bad\nname"), b"x")],
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_hostile_archive_is_refused_and_leaves_nothing(tmp_path: Path, attack: str) -> None:
    archive = hostile(tmp_path, ATTACKS[attack])
    target = tmp_path / "work" / "target"
    target.parent.mkdir()

    with pytest.raises(UnsafeArchive):
        unpack(archive, target, limits=ROOMY)

    assert not target.exists()
    assert os.listdir(target.parent) == []
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped").exists()


def test_a_compression_bomb_stops_at_the_limit(tmp_path: Path) -> None:
    # 64 MiB of zeros compress to 64 KiB.
    bomb = tmp_path / "bomb.tar.gz"
    size = 64 * 1024 * 1024
    with gzip.open(bomb, "wb", compresslevel=1) as gz:
        header = tarfile.TarInfo("zeros")
        header.size = size
        gz.write(header.tobuf(format=tarfile.PAX_FORMAT))
        zeros = bytes(1024 * 1024)
        for _ in range(size // len(zeros)):
            gz.write(zeros)
    target = tmp_path / "target"

    with pytest.raises(ArchiveTooLarge):
        unpack(bomb, target, limits=ArchiveLimits(max_bytes=8 * 1024 * 1024))
    assert not target.exists()


def test_a_huge_extended_header_cannot_exhaust_memory(tmp_path: Path) -> None:
    # A pax record tarfile reads whole into memory: the stream budget stops it first.
    info = member("a")
    info.pax_headers = {"comment": "x" * (4 * 1024 * 1024)}
    archive = hostile(tmp_path, [(info, b"tiny")])

    with pytest.raises(ArchiveTooLarge):
        unpack(archive, tmp_path / "target", limits=ArchiveLimits(max_bytes=1024, max_files=10))
    assert not (tmp_path / "target").exists()


def test_too_many_members_are_refused(tmp_path: Path) -> None:
    archive = hostile(tmp_path, [(member(f"f{i}"), b"") for i in range(11)])
    with pytest.raises(ArchiveTooLarge):
        unpack(archive, tmp_path / "target", limits=ArchiveLimits(1024, max_files=10))


def test_declared_sizes_over_the_limit_are_refused(tmp_path: Path) -> None:
    archive = hostile(tmp_path, [(member("big"), b"y" * 5000)])
    with pytest.raises(ArchiveTooLarge):
        unpack(archive, tmp_path / "target", limits=ArchiveLimits(4999))


@pytest.mark.parametrize("archive_format", list(ArchiveFormat))
def test_a_truncated_or_corrupt_archive_is_an_error(
    tmp_path: Path, archive_format: ArchiveFormat
) -> None:
    make_tree(tmp_path / "src")
    archive = tmp_path / f"a{archive_format.suffix}"
    pack(tmp_path / "src", archive, limits=ROOMY, archive_format=archive_format)
    whole = archive.read_bytes()

    archive.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ArchiveError):
        unpack(archive, tmp_path / "half", limits=ROOMY)
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 0xFF
    archive.write_bytes(bytes(flipped))
    with pytest.raises(ArchiveError):
        unpack(archive, tmp_path / "flipped", limits=ROOMY)
    archive.write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(ArchiveError, match="neither"):
        unpack(archive, tmp_path / "zip", limits=ROOMY)
    assert sorted(os.listdir(tmp_path)) == ["a" + archive_format.suffix, "src"]


def test_unpacking_never_reuses_an_existing_folder(tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    pack(tmp_path / "src", tmp_path / "a.tar.zst", limits=ROOMY)
    (tmp_path / "dst").mkdir()
    (tmp_path / "dst" / "keep").write_bytes(b"mine")

    with pytest.raises(FileExistsError):
        unpack(tmp_path / "a.tar.zst", tmp_path / "dst", limits=ROOMY)
    assert os.listdir(tmp_path / "dst") == ["keep"]
