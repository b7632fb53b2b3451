"""Include and exclude globs, .gitignore style."""

from __future__ import annotations

import pytest

from browserfleet.storage.selection import PathFilter

CHROMIUM = PathFilter(exclude=("Cache", "Code Cache", "Singleton*", "*.tmp", "Default/GPUCache"))


@pytest.mark.parametrize(
    "path",
    [
        "Default/Cache",
        "Default/Code Cache",
        "Cache",
        "SingletonLock",
        "SingletonCookie",
        "Default/foo.tmp",
        "Default/GPUCache",
    ],
)
def test_excluded(path: str) -> None:
    assert CHROMIUM.excluded(path)
    assert not CHROMIUM.keeps_file(path)


@pytest.mark.parametrize(
    "path",
    [
        "Default/Cookies",
        "Default/Cache Storage",  # not "Cache"
        "Default/Service Worker/CacheStorage",
        "Default/x.tmp.db",
        "Other/GPUCache",  # anchored pattern: only Default/GPUCache
        "NotSingleton",
    ],
)
def test_kept(path: str) -> None:
    assert not CHROMIUM.excluded(path)
    assert CHROMIUM.keeps_file(path)


def test_star_stays_within_a_name_and_double_star_spans_folders() -> None:
    single = PathFilter(exclude=("Default/*/LOCK",))
    double = PathFilter(exclude=("Default/**/LOCK",))
    assert single.excluded("Default/Local Storage/LOCK")
    assert not single.excluded("Default/Local Storage/leveldb/LOCK")
    assert double.excluded("Default/Local Storage/leveldb/LOCK")
    assert double.excluded("Default/LOCK")
    assert PathFilter(exclude=("**/x",)).excluded("x")
    assert PathFilter(exclude=("a/**",)).excluded("a/b/c")


def test_classes_and_question_marks() -> None:
    select = PathFilter(exclude=("log-[0-9]?", "[!a]x"))
    assert select.excluded("dir/log-42")
    assert not select.excluded("dir/log-x2")
    assert select.excluded("bx") and not select.excluded("ax")
    assert not PathFilter(exclude=("a[!b]c",)).excluded("a/c")  # never matches the separator


def test_includes_keep_named_files_and_folders_exclusion_wins() -> None:
    select = PathFilter(include=("Default/Cookies", "Default/Local Storage"), exclude=("LOCK",))
    assert select.keeps_file("Default/Cookies")
    assert select.keeps_file("Default/Local Storage/leveldb/000003.log")
    assert not select.keeps_file("Default/Local Storage/leveldb/LOCK")
    assert not select.keeps_file("Default/History")


def test_regex_characters_are_literal() -> None:
    select = PathFilter(exclude=("a.b", "(x)+"))
    assert select.excluded("a.b") and not select.excluded("axb")
    assert select.excluded("(x)+") and not select.excluded("xx")


def test_an_empty_pattern_is_refused() -> None:
    with pytest.raises(ValueError):
        PathFilter(exclude=("/",)).excluded("a")
