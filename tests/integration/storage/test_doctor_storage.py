"""`browserfleet doctor`'s storage check, against a real directory and a real S3 server."""

from __future__ import annotations

import os
from pathlib import Path

from s3_server import S3TestServer

from browserfleet.cli.doctor_storage import check_storage
from browserfleet.cli.findings import Status
from browserfleet.settings import Settings


def s3_settings(server: S3TestServer, tmp_path: Path, bucket: str, **overrides: object) -> Settings:
    storage: dict[str, object] = {
        "backend": "s3",
        "bucket": bucket,
        "endpoint_url": server.url,
        "access_key_id": server.access_key_id,
        "secret_access_key": server.secret_access_key,
        "addressing_style": "path",
        "max_attempts": 1,
        "connect_timeout_s": 2,
    }
    return Settings(data_dir=tmp_path, storage=storage | overrides)


async def test_a_local_directory_passes_and_no_trace_is_left(tmp_path: Path) -> None:
    finding = await check_storage(Settings(data_dir=tmp_path / "data"))

    assert finding.status is Status.OK, finding.line()
    assert finding.line().startswith(
        f"OK   storage: local directory {tmp_path / 'data' / 'blobs'}: write, read, delete OK in"
    )
    assert os.listdir(tmp_path) == []  # the directories made for the probe are gone again


async def test_an_existing_local_directory_keeps_its_objects(tmp_path: Path) -> None:
    objects = tmp_path / "blobs" / "objects" / "recordings"
    objects.mkdir(parents=True)
    (objects / "kept.mp4").write_bytes(b"stays")

    finding = await check_storage(Settings(data_dir=tmp_path))

    assert finding.status is Status.OK, finding.line()
    assert (objects / "kept.mp4").read_bytes() == b"stays"
    assert sorted(os.listdir(tmp_path / "blobs" / "objects")) == ["recordings"]


async def test_an_unusable_local_directory_fails(tmp_path: Path) -> None:
    (tmp_path / "blobs").write_bytes(b"a file where the directory should be")

    finding = await check_storage(Settings(data_dir=tmp_path))

    assert finding.status is Status.FAIL
    assert finding.fix.startswith("fix the directory's owner or mode")


async def test_a_reachable_bucket_passes(
    s3_server: S3TestServer, tmp_path: Path, bucket: str
) -> None:
    finding = await check_storage(s3_settings(s3_server, tmp_path, bucket))

    assert finding.status is Status.OK, finding.line()
    assert finding.detail.startswith(f"S3 bucket '{bucket}' at {s3_server.url}: write, read")
    assert s3_server.raw_keys(bucket) == []


async def test_wrong_credentials_fail_without_showing_them(
    s3_server: S3TestServer, tmp_path: Path, bucket: str
) -> None:
    wrong = "wrong-secret-value-1234567890"

    finding = await check_storage(s3_settings(s3_server, tmp_path, bucket, secret_access_key=wrong))

    assert finding.status is Status.FAIL
    assert "SignatureDoesNotMatch" in finding.detail
    assert finding.fix.startswith("check the access key and secret")
    assert wrong not in finding.line() and s3_server.access_key_id not in finding.line()


async def test_a_missing_bucket_fails_with_what_to_do(
    s3_server: S3TestServer, tmp_path: Path
) -> None:
    finding = await check_storage(s3_settings(s3_server, tmp_path, "bf-not-created"))
    assert finding.status is Status.FAIL
    assert "'bf-not-created' does not exist" in finding.detail
    assert finding.fix == "create the bucket, or fix BROWSERFLEET_STORAGE__BUCKET"


async def test_an_unreachable_endpoint_fails(tmp_path: Path, unused_tcp_port: int) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage={
            "backend": "s3",
            "bucket": "bf-doctor",
            "endpoint_url": f"http://127.0.0.1:{unused_tcp_port}",
            "access_key_id": "AKIDNOWHERE",
            "secret_access_key": "nothing",
            "max_attempts": 1,
        },
    )
    finding = await check_storage(settings)
    assert finding.status is Status.FAIL
    assert finding.fix.startswith("check BROWSERFLEET_STORAGE__ENDPOINT_URL")


async def test_presigned_urls_clients_cannot_fetch_are_a_warning(
    s3_server: S3TestServer, tmp_path: Path, bucket: str, unused_tcp_port: int
) -> None:
    nowhere = f"http://127.0.0.1:{unused_tcp_port}"

    finding = await check_storage(
        s3_settings(s3_server, tmp_path, bucket, public_endpoint_url=nowhere)
    )

    assert finding.status is Status.WARN, finding.line()
    assert "presigned URL could not be fetched" in finding.detail
    assert s3_server.raw_keys(bucket) == []
