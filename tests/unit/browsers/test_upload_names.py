"""Upload names made safe, and files that never replace or follow anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browserfleet.browsers.uploads import MAX_NAME_BYTES, create_unique, safe_name


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("/abs/path/cv.txt", "cv.txt"),
        ("..", "upload"),
        ("", "upload"),
        ("   ", "upload"),
        ("a\x00b\nc.txt", "a_b_c.txt"),
        ('what?*:"<>|.txt', "what_______.txt"),
        (".bashrc", "bashrc"),
        ("é.txt", "é.txt"),
    ],
)
def test_names_become_one_plain_component(raw: str, safe: str) -> None:
    assert safe_name(raw) == safe


def test_long_names_are_cut_keeping_the_extension() -> None:
    name = safe_name("x" * 500 + ".pdf")
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".pdf")
    assert len(safe_name("é" * 300).encode()) <= MAX_NAME_BYTES


def test_a_taken_name_gets_a_number_and_nothing_is_overwritten(tmp_path: Path) -> None:
    (tmp_path / "cv.txt").write_text("first")
    path, fd = create_unique(tmp_path, "cv.txt")
    os.close(fd)
    assert path.name == "cv (2).txt"
    assert (tmp_path / "cv.txt").read_text() == "first"


def test_a_link_planted_under_the_name_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "x").symlink_to(target)
    path, fd = create_unique(tmp_path / "up", "x")
    os.write(fd, b"new")
    os.close(fd)
    assert path.name == "x (2)"
    assert target.read_text() == "keep"
