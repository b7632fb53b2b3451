"""The key rule table: every key a store accepts stays inside it."""

from __future__ import annotations

import pytest

from browserfleet.storage.errors import InvalidBlobKey
from browserfleet.storage.keys import check_folder, check_key, check_prefix, check_segment

GOOD_KEYS = [
    "a",
    "profiles/0b7c/9f1e/v1.tar.zst",
    "downloads/p/s/Report (final) v2.pdf",
    "downloads/p/s/Résumé ünïcödé 😀.txt",
    "downloads/p/s/..hidden..",
    "downloads/p/s/.env",
    "a/b\\c",  # a backslash is an ordinary character on Linux and in S3
    "x" * 255,
    "/".join(["y" * 200] * 5),  # 1004 bytes
]
BAD_KEYS = {
    "empty": "",
    "absolute": "/etc/passwd",
    "parent": "..",
    "parent segment": "a/../b",
    "escape": "../../etc/passwd",
    "dot": ".",
    "dot segment": "a/./b",
    "double slash": "a//b",
    "trailing slash": "a/b/",
    "nul": "a\x00b",
    "newline": "a\nb",
    "escape char": "a\x1b[31mb",
    "delete char": "a\x7fb",
    "c1 control": "a\x85b",
    "long segment": "x" * 256,
    "long multibyte segment": "é" * 128,  # 256 bytes
    "long key": "/".join(["y" * 200] * 6),  # 1205 bytes
    "lone surrogate": "a\udc80b",
}


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_good_keys_pass_unchanged(key: str) -> None:
    assert check_key(key) == key


@pytest.mark.parametrize("key", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_bad_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_key(key)


@pytest.mark.parametrize("prefix", ["", "a/", "a/b", "downloads/p/s1/", "d/.", "d/..", "d/.x"])
def test_prefixes_may_end_anywhere_in_a_name(prefix: str) -> None:
    assert check_prefix(prefix) == prefix


@pytest.mark.parametrize("prefix", ["/a", "../", "a/../", "a//", "./x", "a\x00", "a/b\n"])
def test_prefixes_follow_the_key_rules_for_their_complete_segments(prefix: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_prefix(prefix)


def test_a_folder_prefix_must_end_with_a_slash() -> None:
    assert check_folder("downloads/p/s1/") == "downloads/p/s1/"
    for bad in ("", "downloads/p/s1", "/", "../", "a//"):
        with pytest.raises(InvalidBlobKey):
            check_folder(bad)


@pytest.mark.parametrize("name", ["a/b", "..", ".", "", "x\x00", "x" * 256])
def test_a_file_name_must_be_one_safe_segment(name: str) -> None:
    with pytest.raises(InvalidBlobKey):
        check_segment(name)
