"""POST /browsers/{id}/uploads on a real server, and the files reaching a real page through the
gateway with Playwright's own upload calls (paths and buffers)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server
from node_clients import needs_node
from pages import PageServer
from stealth_pages import JS_DIR

from browserfleet.sandbox.spec import UPLOADS as BROWSER_UPLOADS

pytestmark = pytest.mark.e2e

MB = 1024 * 1024
PUPPETEER = JS_DIR  # tests/support/js: puppeteer-core, installed by make setup
FILE_INPUT = "<input type=file id=f multiple>"


def upload(
    server: Server, session_id: str, *files: tuple[str, bytes], key: str | None = None
) -> httpx.Response:
    with server.http(key) as client:
        return client.post(
            f"/browsers/{session_id}/uploads",
            files=[("file", (name, data, "application/octet-stream")) for name, data in files],
        )


def page_with_input(playwright: Any, cdp_url: str, pages: PageServer) -> tuple[Any, Any]:
    browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=20_000)
    page = browser.contexts[0].pages[0]
    page.goto(pages.url("/"))
    page.set_content(FILE_INPUT)
    return browser, page


def test_puppeteer_upload_file_takes_uploaded_files_and_nothing_else(
    server: Server, janitor: Janitor, tag: str
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    answer = upload(server, view["id"], ("../../etc/cv.txt", b"my cv"), ("cv.txt", b"again"))
    assert answer.status_code == 201, answer.text
    first, second = answer.json()["files"]
    assert (first["name"], first["size"], second["name"]) == ("cv.txt", 5, "cv (2).txt")
    uploads = server.data_dir / "sessions" / view["id"] / "uploads"
    # The path the browser sees inside its sandbox; the file is in the session's dir on the host.
    assert first["path"] == str(BROWSER_UPLOADS / "cv.txt")
    assert (uploads / "cv.txt").read_bytes() == b"my cv"

    endpoint = browser_ws_url(view["cdpUrl"])
    # Puppeteer sends the path itself (DOM.setFileInputFiles): the uploaded file is taken...
    assert puppeteer_upload(endpoint, first["path"]) == {"names": ["cv.txt:5"]}
    # ...and a path outside the session's upload area is refused by the gateway.
    refused = puppeteer_upload(endpoint, str(server.data_dir / "initial-api-key"))
    assert "uploads" in refused["error"]


def puppeteer_upload(endpoint: str, path: str) -> dict[str, Any]:
    needs_node()
    done = subprocess.run(
        ["node", str(PUPPETEER / "upload.mjs"), endpoint, path],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=PUPPETEER,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def browser_ws_url(cdp_url: str) -> str:
    return str(httpx.get(f"{cdp_url}/json/version", timeout=10).json()["webSocketDebuggerUrl"])


def test_playwright_sends_file_contents_itself_and_needs_no_upload(
    server: Server, janitor: Janitor, tag: str, pages: PageServer, playwright: Any, tmp_path: Path
) -> None:
    """connect_over_cdp treats the browser as remote: set_input_files reads paths on the
    client and sends their bytes (at most 50 MB, Playwright's own limit), buffers likewise."""
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    local = tmp_path / "notes.txt"
    local.write_bytes(b"client side")
    browser, page = page_with_input(playwright, view["cdpUrl"], pages)
    try:
        page.set_input_files("#f", str(local))
        assert page.evaluate("document.getElementById('f').files[0].text()") == "client side"
        page.set_input_files("#f", {"name": "b.bin", "mimeType": "text/plain", "buffer": b"buf"})
        assert page.evaluate("document.getElementById('f').files[0].name") == "b.bin"
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(20 * MB))  # ~27 MB of base64 in one CDP message
        page.set_input_files("#f", str(big))
        assert page.evaluate("document.getElementById('f').files[0].size") == 20 * MB
    finally:
        browser.close()
    uploads = server.data_dir / "sessions" / view["id"] / "uploads"
    assert not any(uploads.iterdir())


def test_uploads_are_scoped_to_the_project_and_to_active_sessions(
    server: Server, janitor: Janitor, tag: str
) -> None:
    view = janitor.create(server, timeout=3, metadata={"suite": tag})
    _name, other_key = server.new_project()
    assert upload(server, view["id"], ("a.txt", b"x"), key=other_key).status_code == 404
    with httpx.Client(base_url=server.api()) as anonymous:
        assert anonymous.post(f"/browsers/{view['id']}/uploads").status_code == 401
    with server.http() as client:
        not_multipart = client.post(f"/browsers/{view['id']}/uploads", json={"a": 1})
        assert not_multipart.status_code == 400
        assert "multipart" in not_multipart.json()["detail"]
        client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
    assert upload(server, view["id"], ("a.txt", b"x")).status_code == 409


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))


def test_a_large_upload_streams_to_disk_and_one_over_the_cap_leaves_nothing(
    make_server: Any, janitor: Janitor
) -> None:
    fresh: Server = make_server(BROWSERFLEET_HTTP__MAX_UPLOAD_BYTES=str(60 * MB))
    view = janitor.create(fresh, timeout=2)
    uploads = fresh.data_dir / "sessions" / view["id"] / "uploads"
    big = os.urandom(50 * MB)
    with open(f"/proc/{fresh.pid}/clear_refs", "w") as f:
        f.write("5")
    before = peak_rss(fresh.pid)
    answer = upload(fresh, view["id"], ("big.bin", big))
    assert answer.status_code == 201, answer.text
    assert peak_rss(fresh.pid) - before < 20 * MB  # streamed, never held whole
    assert (uploads / "big.bin").read_bytes() == big
    refused = upload(fresh, view["id"], ("too-big.bin", big + big))
    assert refused.status_code == 413
    assert sorted(p.name for p in uploads.iterdir()) == ["big.bin"]
