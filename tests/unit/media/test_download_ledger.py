"""Naming downloads and enforcing a session's total download size, as pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserfleet.media.download_ledger import (
    Action,
    DownloadLedger,
    Step,
    is_guid,
    safe_name,
    unique_name,
)
from browserfleet.media.downloads import discard, listable, name_download
from browserfleet.storage.keys import check_segment

G1 = "7fa59118-aefa-45e6-987f-679dbb576d1f"
G2 = "c7fe5352-2354-4fb5-b129-6d0b86bb9b84"
G3 = "4b1bdad5-b8ca-4d30-a392-44473c0c279c"


@pytest.mark.parametrize(
    ("suggested", "expected"),
    [
        ("report.csv", "report.csv"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("a\x00b\x1fc.txt", "abc.txt"),
        ("..", "download"),
        ("", "download"),
        (None, "download"),
        ("   ", "download"),
        (".bashrc", "bashrc"),
        ("x.crdownload", "x.download"),
        (G1, G1 + ".download"),
        ("résumé.pdf", "résumé.pdf"),
    ],
)
def test_hostile_names_become_one_safe_segment(suggested: object, expected: str) -> None:
    name = safe_name(suggested)
    assert name == expected
    assert check_segment(name) == name and listable(name)


def test_a_very_long_name_is_cut_on_a_character_and_keeps_its_extension() -> None:
    name = safe_name("é" * 400 + ".pdf")
    assert name.endswith("é.pdf") and len(name.encode()) <= 255 - len(".crdownload")
    assert listable(unique_name(name, {name}))  # still fits with " (1)"


def test_a_taken_name_gets_the_first_free_number_before_its_extension() -> None:
    assert unique_name("a.bin", set()) == "a.bin"
    assert unique_name("a.bin", {"a.bin", "a (1).bin"}) == "a (2).bin"
    assert unique_name("README", {"README"}) == "README (1)"
    assert unique_name("archive.tar.gz", {"archive.tar.gz"}) == "archive.tar (1).gz"


def test_guids_and_unfinished_files_are_never_listed() -> None:
    assert is_guid(G1) and not listable(G1)
    assert not listable(G1 + ".crdownload") and not listable("report.csv.crdownload")
    assert listable("report.csv")


def test_a_finished_download_is_named_once() -> None:
    ledger = DownloadLedger(max_total_bytes=100)
    assert ledger.begin(G1, "../x.txt") == []
    assert ledger.progress(G1, 10, "inProgress") == []
    assert ledger.progress(G1, 40, "completed") == [Action(Step.NAME, G1, "x.txt")]
    assert ledger.progress(G1, 40, "completed") == []  # a repeated event changes nothing
    assert ledger.kept_bytes == 40


def test_the_limit_cancels_what_runs_past_it_and_refuses_what_comes_after() -> None:
    ledger = DownloadLedger(max_total_bytes=100)
    ledger.begin(G1, "a")
    ledger.progress(G1, 60, "completed")
    ledger.begin(G2, "b")
    assert ledger.progress(G2, 30, "inProgress") == []
    assert ledger.progress(G2, 41, "inProgress") == [Action(Step.CANCEL, G2, "b")]
    assert ledger.progress(G2, 50, "inProgress") == []  # cancelled once
    assert ledger.progress(G2, 50, "canceled") == []
    assert ledger.kept_bytes == 60
    # A download that completes past the limit before the cancel lands is discarded.
    ledger.begin(G3, "c")
    assert ledger.progress(G3, 45, "completed") == [Action(Step.DISCARD, G3, "c")]
    assert ledger.over_limit == 2


def test_once_the_limit_is_used_up_a_new_download_is_cancelled_as_it_begins() -> None:
    ledger = DownloadLedger(max_total_bytes=10)
    ledger.begin(G1, "a")
    ledger.progress(G1, 10, "completed")
    assert ledger.begin(G2, "b") == [Action(Step.CANCEL, G2, "b")]


@pytest.mark.parametrize("guid", [None, 7, "not-a-guid", "../" + G1])
def test_events_with_a_foreign_guid_are_ignored(guid: object) -> None:
    ledger = DownloadLedger(max_total_bytes=10)
    assert ledger.begin(guid, "x") == []
    assert ledger.progress(guid, 99, "completed") == []


def test_a_complete_download_is_named_without_replacing_anything(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"older")
    (tmp_path / G1).write_bytes(b"newer")
    assert name_download(tmp_path, G1, "a.txt") == "a (1).txt"
    assert (tmp_path / "a.txt").read_bytes() == b"older"
    assert (tmp_path / "a (1).txt").read_bytes() == b"newer"
    assert not (tmp_path / G1).exists()


def test_naming_and_discarding_never_follow_a_planted_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"the server's")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / G1).symlink_to(outside)
    (downloads / G2).mkdir()
    assert name_download(downloads, G1, "x") is None
    assert name_download(downloads, G2, "y") is None
    assert name_download(downloads, G3, "z") is None  # not there: Chrome named it itself
    discard(downloads / G1)
    assert outside.read_bytes() == b"the server's"
    assert sorted(p.name for p in downloads.iterdir()) == sorted([G1, G2])
    (downloads / G3).write_bytes(b"over the limit")
    discard(downloads / G3)
    assert not (downloads / G3).exists()
