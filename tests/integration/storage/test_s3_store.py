"""What only the S3 store does: presigned URLs (exact bytes, ranges, expiry, tampering), several
hosts sharing one bucket, key prefixes, and clear errors for wrong settings."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
from s3_server import S3TestServer

from browserfleet.storage.errors import (
    BlobNotFound,
    BucketNotFound,
    StorageAccessDenied,
    StorageUnavailable,
)
from browserfleet.storage.model import PresignedUrl
from browserfleet.storage.s3 import AddressingStyle, S3BlobStore, S3Config

MIB = 1024 * 1024


async def put(store: S3BlobStore, key: str, data: bytes, scratch: Path) -> None:
    source = scratch / "upload"
    source.write_bytes(data)
    await store.put_file(key, source)


async def presigned(store: S3BlobStore, key: str, **kwargs: object) -> PresignedUrl:
    access = await store.access(key, **kwargs)  # type: ignore[arg-type]
    assert isinstance(access, PresignedUrl)
    return access


async def test_a_presigned_url_serves_the_exact_bytes_and_ranges(
    s3_store: S3BlobStore, files: Path
) -> None:
    video = os.urandom(2 * MIB)
    await put(s3_store, "recordings/p/s.mp4", video, files)

    link = await presigned(s3_store, "recordings/p/s.mp4", expires_in=timedelta(hours=1))
    async with httpx.AsyncClient(trust_env=False) as client:
        whole = await client.get(link.url)
        part = await client.get(link.url, headers={"Range": "bytes=1000-1999"})
        tail = await client.get(link.url, headers={"Range": "bytes=-10"})

    assert whole.status_code == 200 and whole.content == video
    assert whole.headers["content-type"] == "video/mp4"  # playable in a <video>
    assert part.status_code == 206 and part.content == video[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(video)}"
    assert tail.status_code == 206 and tail.content == video[-10:]
    assert link.info.size == len(video)
    assert link.headers.content_type == "video/mp4" and link.headers.content_disposition is None
    assert abs(link.expires_at - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=1)


async def test_a_presigned_url_expires_and_cannot_be_bent_to_another_key(
    s3_store: S3BlobStore, s3_server: S3TestServer, files: Path
) -> None:
    await put(s3_store, "downloads/p/s1/a.txt", b"mine", files)
    await put(s3_store, "downloads/p/s2/b.txt", b"someone else's", files)
    link = await presigned(s3_store, "downloads/p/s1/a.txt", expires_in=timedelta(minutes=15))
    other_key = link.url.replace("/s1/a.txt", "/s2/b.txt")
    parts = urlsplit(link.url)
    longer = link.url.replace("X-Amz-Expires=900", "X-Amz-Expires=604800")
    unsigned = f"{parts.scheme}://{parts.netloc}{parts.path}"

    async with httpx.AsyncClient(trust_env=False) as client:
        with s3_server.clock_moved(timedelta(minutes=14, seconds=50)):
            still_valid = await client.get(link.url)
        with s3_server.clock_moved(timedelta(minutes=15, seconds=5)):
            expired = await client.get(link.url)
        bent = await client.get(other_key)
        stretched = await client.get(longer)
        bare = await client.get(unsigned)

    assert still_valid.status_code == 200 and still_valid.content == b"mine"
    assert expired.status_code == 403 and b"Request has expired" in expired.content
    assert bent.status_code == 403 and b"SignatureDoesNotMatch" in bent.content
    assert stretched.status_code == 403 and b"SignatureDoesNotMatch" in stretched.content
    assert bare.status_code == 403
    assert "X-Amz-Expires=900" in link.url


async def test_a_download_name_makes_the_browser_save_it_under_that_name(
    s3_store: S3BlobStore, files: Path
) -> None:
    await put(s3_store, "downloads/p/s/page.html", b"<script>alert(1)</script>", files)

    link = await presigned(
        s3_store,
        "downloads/p/s/page.html",
        expires_in=timedelta(minutes=15),
        download_name='Résumé "final".html',
    )
    async with httpx.AsyncClient(trust_env=False) as client:
        response = await client.get(link.url)

    assert response.content == b"<script>alert(1)</script>"
    # Never served as HTML from the bucket's origin, and saved rather than shown.
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == (
        'attachment; filename="R_sum_ _final_.html"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%20%22final%22.html"
    )


async def test_a_public_endpoint_signs_for_the_name_clients_use(
    s3_server: S3TestServer, bucket: str, files: Path, boto_session: boto3.session.Session
) -> None:
    public = f"http://localhost:{s3_server.port}"
    store = S3BlobStore(
        s3_server.store_config(bucket, public_endpoint_url=public), session=boto_session
    )
    try:
        await put(store, "recordings/p/s.mp4", b"frames", files)
        link = await presigned(store, "recordings/p/s.mp4", expires_in=timedelta(minutes=5))
        async with httpx.AsyncClient(trust_env=False) as client:
            response = await client.get(link.url)
    finally:
        await store.aclose()

    assert link.url.startswith(f"{public}/{bucket}/recordings/p/s.mp4?")
    assert response.status_code == 200 and response.content == b"frames"


async def test_two_hosts_sharing_a_bucket_see_each_others_objects(
    s3_server: S3TestServer, bucket: str, files: Path, boto_session: boto3.session.Session
) -> None:
    host_a = S3BlobStore(s3_server.store_config(bucket, key_prefix="fleet/"), session=boto_session)
    host_b = S3BlobStore(s3_server.store_config(bucket, key_prefix="fleet/"), session=boto_session)
    other_fleet = S3BlobStore(
        s3_server.store_config(bucket, key_prefix="staging/"), session=boto_session
    )
    try:
        await put(host_a, "profiles/p/prof/v1.tar.zst", b"saved on host a", files)
        on_b = await host_b.get_file("profiles/p/prof/v1.tar.zst", files / "loaded-on-b")
        await put(host_b, "profiles/p/prof/v1.tar.zst", b"saved again on host b", files)
        await host_a.get_file("profiles/p/prof/v1.tar.zst", files / "loaded-on-a")
        staging_sees = await other_fleet.stat("profiles/p/prof/v1.tar.zst")
        await host_b.delete_prefix("profiles/p/")
        after_delete = await host_a.stat("profiles/p/prof/v1.tar.zst")
    finally:
        for store in (host_a, host_b, other_fleet):
            await store.aclose()

    assert (files / "loaded-on-b").read_bytes() == b"saved on host a"
    assert on_b.key == "profiles/p/prof/v1.tar.zst"  # keys never show the store's prefix
    assert (files / "loaded-on-a").read_bytes() == b"saved again on host b"
    assert staging_sees is None  # another key prefix is another namespace
    assert after_delete is None
    assert s3_server.raw_keys(bucket) == []


async def test_the_key_prefix_is_applied_below_the_bucket(
    s3_server: S3TestServer, bucket: str, files: Path, boto_session: boto3.session.Session
) -> None:
    store = S3BlobStore(s3_server.store_config(bucket, key_prefix="bf/prod/"), session=boto_session)
    try:
        await put(store, "recordings/p/s.mp4", b"x", files)
        listed = await store.list_page("")
    finally:
        await store.aclose()

    assert s3_server.raw_keys(bucket) == ["bf/prod/recordings/p/s.mp4"]
    assert [item.key for item in listed.items] == ["recordings/p/s.mp4"]
    head = s3_server.client.head_object(Bucket=bucket, Key="bf/prod/recordings/p/s.mp4")
    assert head["ContentType"] == "video/mp4"  # stored with the object, not only in links


async def test_a_large_object_is_uploaded_in_parts(s3_store: S3BlobStore, files: Path) -> None:
    data = os.urandom(11 * MIB)  # 5 MiB parts in the test stores: 5 + 5 + 1
    await put(s3_store, "profiles/p/prof/v2.tar.zst", data, files)

    info = await s3_store.get_file("profiles/p/prof/v2.tar.zst", files / "back")

    assert info.etag.endswith("-3")  # S3's ETag of a three-part multipart upload
    assert (files / "back").read_bytes() == data


async def test_wrong_credentials_are_refused_without_revealing_them(
    s3_server: S3TestServer, bucket: str, files: Path, boto_session: boto3.session.Session
) -> None:
    wrong = "not-the-secret-" + "x" * 20
    config = s3_server.store_config(bucket, secret_access_key=wrong)
    store = S3BlobStore(config, session=boto_session)
    (files / "in").write_bytes(b"data")
    try:
        with pytest.raises(StorageAccessDenied) as on_put:
            await store.put_file("a/b", files / "in")
        with pytest.raises(StorageAccessDenied) as on_stat:
            await store.stat("a/b")
        with pytest.raises(StorageAccessDenied):
            await store.list_page("")
    finally:
        await store.aclose()

    for text in (str(on_put.value), str(on_stat.value), repr(config), store.describe()):
        assert wrong not in text and s3_server.access_key_id not in text
    assert s3_server.raw_keys(bucket) == []


async def test_a_missing_bucket_is_named_as_such(
    s3_server: S3TestServer, files: Path, boto_session: boto3.session.Session
) -> None:
    store = S3BlobStore(s3_server.store_config("bf-no-such-bucket"), session=boto_session)
    (files / "in").write_bytes(b"data")
    try:
        with pytest.raises(BucketNotFound, match="bf-no-such-bucket"):
            await store.put_file("a/b", files / "in")
        with pytest.raises(BucketNotFound):
            await store.list_page("")
    finally:
        await store.aclose()


async def test_an_unreachable_endpoint_fails_fast_and_clearly(files: Path) -> None:
    with socket.socket() as reserved:  # bound, never listening: connections are refused
        reserved.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{reserved.getsockname()[1]}"
        config = S3Config(
            bucket="bf-anything",
            endpoint_url=url,
            access_key_id="AKIDNOWHERE",
            secret_access_key="nothing",
            addressing_style=AddressingStyle.PATH,
            connect_timeout_s=2.0,
            max_attempts=1,
        )
        store = S3BlobStore(config)
        (files / "in").write_bytes(b"data")
        try:
            with pytest.raises(StorageUnavailable, match="unreachable"):
                await store.put_file("a/b", files / "in")
            with pytest.raises(StorageUnavailable):
                await store.get_file("a/b", files / "out")
        finally:
            await store.aclose()
    assert not (files / "out").exists()


async def test_an_object_deleted_between_listing_and_reading_is_not_found(
    s3_store: S3BlobStore, files: Path
) -> None:
    await put(s3_store, "downloads/p/s/gone", b"x", files)
    page = await s3_store.list_page("downloads/")
    await s3_store.delete(page.items[0].key)
    with pytest.raises(BlobNotFound):
        await s3_store.get_file(page.items[0].key, files / "out")
