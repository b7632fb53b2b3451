"""The serving header table: nothing a page downloaded is ever rendered as active content."""

from __future__ import annotations

import pytest

from browserfleet.storage.serving import SAFE_TYPES, attachment, content_type, serve_headers

ACTIVE = [
    "page.html",
    "page.HTM",
    "image.svg",
    "feed.xml",
    "app.js",
    "page.xhtml",
    "style.css",
    "movie.mp4.html",
    "no-extension",
    "archive.tar.gz.svg",
]


@pytest.mark.parametrize("name", ACTIVE)
def test_active_or_unknown_types_are_octet_stream(name: str) -> None:
    assert content_type(f"downloads/p/s/{name}") == "application/octet-stream"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("s.mp4", "video/mp4"),
        ("S.MP4", "video/mp4"),
        ("v1.tar.zst", "application/zstd"),
        ("v1.tar.gz", "application/gzip"),
        ("report.pdf", "application/pdf"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("shot.png", "image/png"),
    ],
)
def test_known_safe_types(name: str, expected: str) -> None:
    assert content_type(f"x/{name}") == expected


def test_no_listed_type_can_run_script() -> None:
    for kind in SAFE_TYPES.values():
        assert not any(word in kind for word in ("html", "svg", "xml", "javascript", "css"))


def test_only_the_last_segment_decides() -> None:
    assert content_type("recordings.mp4/p/page.html") == "application/octet-stream"


def test_an_attachment_name_cannot_break_out_of_its_header() -> None:
    header = attachment('evil"; filename="x.exe\r\nSet-Cookie: a=b')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="evil_; filename=_x.exe__Set-Cookie: a=b"; ')
    assert header.endswith(
        "filename*=UTF-8''evil%22%3B%20filename%3D%22x.exe%0D%0ASet-Cookie%3A%20a%3Db"
    )


def test_a_download_name_makes_it_an_attachment() -> None:
    plain = serve_headers("recordings/p/s.mp4")
    named = serve_headers("downloads/p/s/a.pdf", "Übersicht.pdf")
    assert plain.content_disposition is None
    assert named.content_type == "application/pdf"
    assert named.content_disposition == (
        "attachment; filename=\"_bersicht.pdf\"; filename*=UTF-8''%C3%9Cbersicht.pdf"
    )
