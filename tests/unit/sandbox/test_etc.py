"""The sandbox's /etc and Chromium's managed policy (pure)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath as P

from browserfleet.sandbox.etc import POLICY_FILE, etc_files, managed_policy


def test_the_policy_blocks_local_and_internal_schemes_but_the_browsers_own_ui_and_probe() -> None:
    policy = managed_policy(256)
    assert policy["URLBlocklist"] == [
        "file://*",
        "chrome://*",
        "chrome-untrusted://*",
        "devtools://*",
    ]
    assert policy["URLAllowlist"] == ["chrome://omnibox-popup.top-chrome", "file:///dev/null"]


def test_downloads_default_to_the_sessions_own_directory_without_asking() -> None:
    policy = managed_policy(256)
    assert policy["DownloadDirectory"] == "/session/downloads"
    assert policy["PromptForDownloadLocation"] is False


def test_the_cache_is_capped_and_webrtc_sends_no_direct_udp() -> None:
    policy = managed_policy(123_456)
    assert policy["DiskCacheSize"] == 123_456
    assert policy["WebRtcIPHandling"] == "disable_non_proxied_udp"


def test_only_known_policy_names_are_set() -> None:
    assert set(managed_policy(1)) == {
        "URLBlocklist",
        "URLAllowlist",
        "DownloadDirectory",
        "PromptForDownloadLocation",
        "DiskCacheSize",
        "WebRtcIPHandling",
    }


def test_etc_holds_the_sandbox_user_and_no_host_user() -> None:
    files = etc_files(256)
    assert set(files) == {
        P("/etc/passwd"),
        P("/etc/group"),
        P("/etc/nsswitch.conf"),
        P("/etc/hosts"),
        POLICY_FILE,
    }
    passwd = files[P("/etc/passwd")].decode().splitlines()
    assert "browser:x:1000:1000:browser:/session/home:/usr/sbin/nologin" in passwd
    assert [line.split(":")[0] for line in passwd] == ["root", "browser", "nobody"]
    assert all(line.endswith("/usr/sbin/nologin") for line in passwd)
    assert b"hosts: files\n" in files[P("/etc/nsswitch.conf")]


def test_the_policy_file_is_the_managed_policy_as_json() -> None:
    assert P("/etc/chromium/policies/managed/browserfleet.json") == POLICY_FILE
    assert json.loads(etc_files(99)[POLICY_FILE]) == managed_policy(99)
