"""Where each kind of file goes, and that no part of a key can name another's files."""

from __future__ import annotations

from uuid import UUID

import pytest

from browserfleet.storage.archive_format import ArchiveFormat
from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.layout import (
    download_key,
    downloads_prefix,
    profile_prefix,
    profile_version_key,
    project_prefixes,
    recording_key,
)

PROJECT = UUID("6f9c1d2e-0000-4000-8000-000000000001")
SESSION = UUID("0b7c3a4d-0000-4000-8000-000000000002")
PROFILE = UUID("9f1e5b6c-0000-4000-8000-000000000003")
P, S, F = str(PROJECT), str(SESSION), str(PROFILE)


def test_each_kind_has_its_shape() -> None:
    assert profile_prefix(PROJECT, PROFILE) == f"profiles/{P}/{F}/"
    assert profile_version_key(PROJECT, PROFILE, "v7", ArchiveFormat.TAR_ZST) == (
        f"profiles/{P}/{F}/v7.tar.zst"
    )
    assert recording_key(PROJECT, SESSION) == f"recordings/{P}/{S}.mp4"
    assert downloads_prefix(PROJECT, SESSION) == f"downloads/{P}/{S}/"
    assert download_key(PROJECT, SESSION, "Report 2024.pdf") == f"downloads/{P}/{S}/Report 2024.pdf"
    assert project_prefixes(PROJECT) == (f"profiles/{P}/", f"recordings/{P}/", f"downloads/{P}/")


def test_every_key_of_a_session_lies_under_its_downloads_folder() -> None:
    key = download_key(PROJECT, SESSION, "a.txt")
    assert key.startswith(downloads_prefix(PROJECT, SESSION))
    assert key.startswith(project_prefixes(PROJECT)[2])


@pytest.mark.parametrize("name", ["../other-session/file", "..", ".", "a/b", "", "x\x00.pdf"])
def test_a_download_name_cannot_reach_another_folder(name: str) -> None:
    with pytest.raises(InvalidBlobKey):
        download_key(PROJECT, SESSION, name)


@pytest.mark.parametrize("bad", ["..", "a/b", ""])
def test_ids_are_single_segments_too(bad: str) -> None:
    with pytest.raises(InvalidBlobKey):
        recording_key(bad, SESSION)
    with pytest.raises(InvalidBlobKey):
        profile_version_key(PROJECT, PROFILE, bad, ArchiveFormat.TAR_GZ)
