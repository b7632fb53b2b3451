"""A stored profile put in place before Chromium starts; the launcher's preferences over it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from browserfleet.browsers.seeding import install_profile, merged_preferences


def _empty_profile(root: Path) -> Path:
    profile = root / "profile"
    (profile / "Default").mkdir(parents=True)
    return profile


def test_the_seed_replaces_the_empty_profile_and_stale_chromium_files_are_dropped(
    tmp_path: Path,
) -> None:
    profile = _empty_profile(tmp_path)

    def fill(dest: Path) -> None:
        (dest / "Default").mkdir(parents=True)
        (dest / "Default" / "Cookies").write_bytes(b"jar")
        (dest / "DevToolsActivePort").write_text("9222\n/devtools/browser/x")
        (dest / "SingletonLock").write_text("host-1")

    install_profile(profile, fill, owner=None)
    assert (profile / "Default" / "Cookies").read_bytes() == b"jar"
    assert not (profile / "DevToolsActivePort").exists()
    assert not (profile / "SingletonLock").exists()
    assert not (tmp_path / "profile.seed").exists()


def test_a_seed_without_default_still_gets_one(tmp_path: Path) -> None:
    profile = _empty_profile(tmp_path)

    def fill(dest: Path) -> None:
        dest.mkdir()
        (dest / "Local State").write_text("{}")

    install_profile(profile, fill, owner=None)
    assert (profile / "Default").is_dir() and (profile / "Local State").exists()


def test_the_seed_is_given_to_the_browsers_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("changing owners needs root")
    profile = _empty_profile(tmp_path)

    def fill(dest: Path) -> None:
        (dest / "Default" / "IndexedDB").mkdir(parents=True)
        (dest / "Default" / "IndexedDB" / "x").write_bytes(b"1")

    install_profile(profile, fill, owner=54321)
    for path in (profile, profile / "Default", profile / "Default" / "IndexedDB" / "x"):
        assert (path.stat().st_uid, path.stat().st_gid) == (54321, 54321), path


def test_a_failing_seed_leaves_the_empty_profile(tmp_path: Path) -> None:
    profile = _empty_profile(tmp_path)

    def fill(dest: Path) -> None:
        dest.mkdir()
        raise OSError("corrupt archive")

    with pytest.raises(OSError):
        install_profile(profile, fill, owner=None)
    assert (profile / "Default").is_dir() and not (tmp_path / "profile.seed").exists()


def test_preferences_are_laid_over_the_profiles_own(tmp_path: Path) -> None:
    path = tmp_path / "Preferences"
    path.write_text(json.dumps({"plugins": {"a": 1}, "profile": {"name": "kept"}}))
    merged = merged_preferences(path, {"plugins": {"always_open_pdf_externally": True}})
    assert merged == {
        "plugins": {"a": 1, "always_open_pdf_externally": True},
        "profile": {"name": "kept"},
    }


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_unusable_preferences_are_replaced(tmp_path: Path, content: str) -> None:
    path = tmp_path / "Preferences"
    path.write_text(content)
    assert merged_preferences(path, {"x": 1}) == {"x": 1}
    assert merged_preferences(tmp_path / "missing", {"x": 1}) == {"x": 1}


def test_a_preferences_link_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps({"secret": 1}))
    (tmp_path / "Preferences").symlink_to(target)
    assert merged_preferences(tmp_path / "Preferences", {"x": 1}) == {"x": 1}
