"""BrowserFiles: the session's file areas on both sides of the sandbox."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from browserfleet.browsers.files import BrowserFiles


def test_an_unsandboxed_browser_sees_the_host_paths(tmp_path: Path) -> None:
    files = BrowserFiles.unsandboxed(tmp_path)
    assert files.host_downloads == tmp_path / "downloads"
    assert files.host_uploads == tmp_path / "uploads"
    assert files.downloads == PurePosixPath(tmp_path / "downloads")
    assert files.uploads == PurePosixPath(tmp_path / "uploads")


def test_create_makes_both_directories_private(tmp_path: Path) -> None:
    files = BrowserFiles.unsandboxed(tmp_path)
    files.create()
    files.create()  # idempotent
    for path in (files.host_downloads, files.host_uploads):
        assert path.is_dir()
        assert path.stat().st_mode & 0o777 == 0o700
