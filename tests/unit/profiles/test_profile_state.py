"""What a save reads of the tenant's files, and what a load takes back: the state table, and the
attacks a tenant can plant in its profile (links out, FIFOs, sparse giants, forged files)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from browserfleet.profiles.snapshot import SESSION_COOKIES_FILE, STATE
from browserfleet.profiles.state import (
    check_profile_dir,
    cookie_domains,
    session_cookies,
    take_session_cookies,
    write_session_cookies,
)
from browserfleet.storage.archive import ArchiveLimits, pack, unpack
from browserfleet.storage.errors import UnsafeSource

KEPT = [
    "Local State",
    "Default/Cookies",
    "Default/Local Storage/leveldb/000003.log",
    "Default/IndexedDB/http_127.0.0.1_0.indexeddb.leveldb/CURRENT",
    "Default/Login Data",
    "Default/Web Data",
    "Default/Preferences",
    "Default/Secure Preferences",
    SESSION_COOKIES_FILE,
]
LEFT_OUT = [
    "SingletonLock",
    "DevToolsActivePort",
    "Default/Cache/Cache_Data/data_0",
    "Default/Code Cache/js/index",
    "GrShaderCache/data_0",
    "Default/GPUCache/index",
    "Crashpad/reports/x.dmp",
    "Default/History",
    "Default/Local Storage/leveldb/LOCK",
    "BrowserMetrics/x.pma",
]


@pytest.mark.parametrize("path", KEPT)
def test_state_files_are_kept(path: str) -> None:
    assert STATE.keeps_file(path)


@pytest.mark.parametrize("path", LEFT_OUT)
def test_caches_locks_and_crash_dumps_are_left_out(path: str) -> None:
    parts = path.split("/")
    folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
    assert any(STATE.excluded(f) for f in folders) or not STATE.keeps_file(path)


def _cookies_db(path: Path, hosts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE cookies (host_key TEXT, name TEXT)")
        db.executemany("INSERT INTO cookies VALUES (?, 'n')", [(h,) for h in hosts])


def test_cookie_domains_are_the_distinct_hosts_of_the_jar_and_the_session_cookies(
    tmp_path: Path,
) -> None:
    profile, scratch = tmp_path / "profile", tmp_path / "scratch"
    scratch.mkdir()
    _cookies_db(profile / "Default" / "Cookies", [".github.com", "127.0.0.1", ".github.com"])
    domains = cookie_domains(profile, scratch, [{"domain": "app.example"}])
    assert domains == (".github.com", "127.0.0.1", "app.example")
    assert list(scratch.iterdir()) == []  # the copy is gone


def test_a_cookies_link_to_a_host_file_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "host-secret.db"
    _cookies_db(secret, ["secret.example"])
    profile, scratch = tmp_path / "profile", tmp_path / "scratch"
    (profile / "Default").mkdir(parents=True)
    scratch.mkdir()
    (profile / "Default" / "Cookies").symlink_to(secret)
    assert cookie_domains(profile, scratch) == ()


def test_a_fifo_or_a_sparse_giant_as_cookies_is_not_read(tmp_path: Path) -> None:
    profile, scratch = tmp_path / "profile", tmp_path / "scratch"
    (profile / "Default").mkdir(parents=True)
    scratch.mkdir()
    os.mkfifo(profile / "Default" / "Cookies")
    assert cookie_domains(profile, scratch) == ()  # and it did not block on the FIFO
    (profile / "Default" / "Cookies").unlink()
    with open(profile / "Default" / "Cookies", "wb") as giant:
        giant.truncate(1 << 40)
    assert cookie_domains(profile, scratch) == ()
    assert list(scratch.iterdir()) == []


def test_a_profile_dir_that_is_a_link_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    check_profile_dir(real)
    (tmp_path / "profile").symlink_to("/etc")
    with pytest.raises(UnsafeSource):
        check_profile_dir(tmp_path / "profile")


def test_only_session_cookies_are_kept_as_set_cookies_params() -> None:
    answer = [
        {"name": "s", "value": "1", "domain": "a", "session": True, "size": 2, "expires": -1},
        {"name": "p", "value": "2", "domain": "a", "session": False, "expires": 2e9},
        {"name": 5, "value": "x", "session": True},
        "junk",
    ]
    assert session_cookies(answer) == [{"name": "s", "value": "1", "domain": "a"}]


def test_session_cookies_round_trip_through_a_saved_archive(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    cookies = [{"name": "s", "value": "1", "domain": "127.0.0.1", "httpOnly": True}]
    write_session_cookies(profile, cookies)
    archive = tmp_path / "state.tar.zst"
    pack(profile, archive, limits=ArchiveLimits(1 << 20), select=STATE)
    unpack(archive, tmp_path / "loaded", limits=ArchiveLimits(1 << 20))
    assert take_session_cookies(tmp_path / "loaded") == cookies
    assert not (tmp_path / "loaded" / SESSION_COOKIES_FILE).exists()  # never reaches the browser


def test_a_planted_link_at_the_session_cookies_name_is_replaced_not_followed(
    tmp_path: Path,
) -> None:
    target = tmp_path / "host-file"
    target.write_text("host content")
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / SESSION_COOKIES_FILE).symlink_to(target)
    write_session_cookies(profile, [{"name": "s", "value": "1"}])
    assert target.read_text() == "host content"
    written = profile / SESSION_COOKIES_FILE
    assert not written.is_symlink() and json.loads(written.read_text())[0]["name"] == "s"


def test_a_forged_session_cookies_file_yields_only_well_formed_params(tmp_path: Path) -> None:
    (tmp_path / SESSION_COOKIES_FILE).write_text(
        json.dumps([{"name": "a", "value": "b", "evil": 1}, {"name": None}, 7])
    )
    assert take_session_cookies(tmp_path) == [{"name": "a", "value": "b"}]
    (tmp_path / SESSION_COOKIES_FILE).write_text("{not json")
    assert take_session_cookies(tmp_path) == []
