"""Recordings and downloads kept in S3 (a SigV4-checking test server), and the per-session total
download size limit enforced while the session runs. One server, one session: it records, it
downloads past its 1 MiB limit, it stops; then the store's presigned URLs serve exact bytes, a
tampered one is refused by S3 itself, and retention empties the bucket.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fleet_server import Janitor, Server, start_server, wait_for
from pages import HeldServer
from s3_server import S3TestServer

pytestmark = pytest.mark.e2e

MIB = 1024 * 1024
FIRST = bytes(range(256)) * 2400  # 600 KiB: kept
BIG = 4 * MIB  # runs past the limit: cancelled while it downloads
SECOND = b"second" * 50_000  # ~293 KiB: still fits once the big one is cancelled
THIRD = b"third!" * 50_000  # past the limit: refused


class Files(HeldServer):
    def __init__(self) -> None:
        super().__init__(FilesHandler)


class FilesHandler(BaseHTTPRequestHandler):
    server: Files
    protocol_version = "HTTP/1.0"
    BODIES: ClassVar[dict[str, bytes]] = {"/first": FIRST, "/second": SECOND, "/third": THIRD}

    def do_GET(self) -> None:
        if self.path == "/":
            links = "".join(f"<a id='{p[1:]}' href='{p}'>{p}</a> " for p in self.BODIES)
            page = (links + "<a id='big' href='/big'>big</a>").encode()
            self._head("text/html", len(page), None)
            self.wfile.write(page)
        elif self.path == "/big":
            # 2 MiB at once (past the limit), the rest only once the test is done with it.
            self._head("application/octet-stream", BIG, "big.bin")
            with contextlib.suppress(OSError):
                self.wfile.write(b"\x00" * (2 * MIB))
                self.wfile.flush()
                self.server.release.wait(60)
                self.wfile.write(b"\x00" * (BIG - 2 * MIB))
        else:
            body = self.BODIES[self.path]
            self._head("application/octet-stream", len(body), self.path[1:] + ".bin")
            self.wfile.write(body)

    def _head(self, content_type: str, length: int, name: str | None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        if name is not None:
            self.send_header("Content-Disposition", f'attachment; filename="{name}"')
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def s3() -> Iterator[S3TestServer]:
    server = S3TestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bucket(s3: S3TestServer) -> Iterator[str]:
    name = f"media-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(name)
    try:
        yield name
    finally:
        s3.remove_bucket(name)


@pytest.fixture(scope="module")
def s3_server(suite_resources: Any, s3: S3TestServer, bucket: str) -> Iterator[Server]:
    served = start_server(
        suite_resources,
        BROWSERFLEET_STORAGE__BACKEND="s3",
        BROWSERFLEET_STORAGE__BUCKET=bucket,
        BROWSERFLEET_STORAGE__ENDPOINT_URL=s3.url,
        BROWSERFLEET_STORAGE__ACCESS_KEY_ID=s3.access_key_id,
        BROWSERFLEET_STORAGE__SECRET_ACCESS_KEY=s3.secret_access_key,
        BROWSERFLEET_STORAGE__ADDRESSING_STYLE="path",
        BROWSERFLEET_MEDIA__DOWNLOADS_MAX_MB="1",
    )
    try:
        yield served
    finally:
        served.close()


def download(page: Any, link: str) -> Any:
    with page.expect_download() as event:
        page.click(f"#{link}")
    return event.value


def test_downloads_past_the_limit_are_cancelled_and_s3_serves_the_rest_until_retention(
    s3_server: Server, janitor: Janitor, playwright: Any, s3: S3TestServer, bucket: str
) -> None:
    server = s3_server
    view = janitor.create(server, timeout=3, enableRecording=True)
    sid = view["id"]
    browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
    with Files() as files:
        try:
            page = browser.contexts[0].pages[0]
            page.goto(files.url + "/")
            assert download(page, "first").failure() is None
            big = download(page, "big")
            # Stuck at 2 MiB of 4: the server cancels it for the 1 MiB limit.
            assert big.failure() == "canceled"
            files.release.set()
            assert download(page, "second").failure() is None
            download(page, "third").failure()  # cancelled or discarded: either way not kept
            expected = {"first.bin": FIRST, "second.bin": SECOND}

            def listed() -> list[str]:
                return [f["path"] for f in downloads(server, sid)["files"]]

            wait_for(lambda: listed() == sorted(expected), timeout=30, what="two downloads")
            wait_for(
                lambda: server.log_tail(400).count("passed their limit of 1 MB") >= 2,
                timeout=30,
                what="the limit's log lines",
            )
        finally:
            browser.close()
    with server.http() as client:
        assert client.patch(f"/browsers/{sid}", json={"action": "stop"}).status_code == 200
    final = wait_for(
        lambda: (v := session(server, sid))["recordingUrl"] and v,
        timeout=60,
        what="the recording URL",
    )

    # Every URL is the store's own presigned URL, and S3 serves the exact bytes.
    recording_url = final["recordingUrl"]
    assert recording_url.startswith(f"{s3.url}/{bucket}/") and "X-Amz-Signature=" in recording_url
    video = httpx.get(recording_url, timeout=60)
    assert video.status_code == 200
    key = urlsplit(recording_url).path.removeprefix(f"/{bucket}/")
    assert video.content == s3.client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert 0 <= video.content.find(b"moov") < video.content.find(b"mdat")
    items = downloads(server, sid, includeUrls="true")["files"]
    assert [(f["path"], f["size"]) for f in items] == [
        (name, len(data)) for name, data in sorted(expected.items())
    ]
    for item in items:
        assert item["url"].startswith(f"{s3.url}/{bucket}/")
        assert httpx.get(item["url"], timeout=30).content == expected[item["path"]]
    stored = [k for k in s3.raw_keys(bucket) if sid in k]
    assert sorted(k.rsplit("/", 1)[-1] for k in stored) == sorted(
        [*expected, key.rsplit("/", 1)[-1]]
    )

    # S3 itself refuses a presigned URL that was tampered with.
    signature = parse_qs(urlsplit(recording_url).query)["X-Amz-Signature"][0]
    forged = signature[:-4] + ("0000" if not signature.endswith("0000") else "1111")
    tampered = [
        recording_url.replace(signature, forged),
        items[0]["url"].replace("first.bin", "second.bin"),
        recording_url.replace("X-Amz-Expires=", "X-Amz-Expires=9"),
    ]
    for bad in tampered:
        assert httpx.get(bad, timeout=30).status_code == 403, bad

    # Retention: restarted with a retention shorter than the objects' age, the server sweeps
    # at start and the bucket no longer holds them.
    retention_s = 1.0

    def youngest_age() -> float:
        heads = [s3.client.head_object(Bucket=bucket, Key=k) for k in stored]
        return time.time() - max(float(head["LastModified"].timestamp()) for head in heads)

    wait_for(lambda: youngest_age() > retention_s + 1, what="objects past the retention")
    server.env["BROWSERFLEET_MEDIA__RETENTION_DAYS"] = str(retention_s / 86400)
    server.restart()
    wait_for(
        lambda: not [k for k in s3.raw_keys(bucket) if sid in k],
        timeout=60,
        what="retention deleting the session's objects from the bucket",
    )
    assert downloads(server, sid)["files"] == []
    assert session(server, sid)["recordingUrl"] is None


def session(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/browsers/{session_id}")
    assert answer.status_code == 200, answer.text
    view: dict[str, Any] = answer.json()
    return view


def downloads(server: Server, session_id: str, **params: Any) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/browsers/{session_id}/downloads", params=params)
    assert answer.status_code == 200, answer.text
    listing: dict[str, Any] = answer.json()
    return listing
