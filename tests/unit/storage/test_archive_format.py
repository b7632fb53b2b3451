"""Archive formats are told apart by their magic numbers, never by their names."""

from __future__ import annotations

import gzip

import zstandard

from browserfleet.storage.archive_format import ArchiveFormat


def test_each_format_is_recognised_by_its_first_bytes() -> None:
    assert ArchiveFormat.sniff(gzip.compress(b"x")) is ArchiveFormat.TAR_GZ
    assert ArchiveFormat.sniff(zstandard.compress(b"x")) is ArchiveFormat.TAR_ZST
    assert ArchiveFormat.sniff(b"PK\x03\x04") is None
    assert ArchiveFormat.sniff(b"") is None


def test_suffixes() -> None:
    assert ArchiveFormat.TAR_GZ.suffix == ".tar.gz"
    assert ArchiveFormat.TAR_ZST.suffix == ".tar.zst"
