"""BROWSERFLEET_STORAGE__* settings: parsed, validated, secrets kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from browserfleet.bootstrap import build_blob_store
from browserfleet.settings import Settings, StorageBackend, StorageSettings
from browserfleet.storage.local import LocalBlobStore
from browserfleet.storage.s3 import S3BlobStore

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


async def test_the_default_is_a_local_directory_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.storage.backend is StorageBackend.LOCAL
    assert settings.storage.effective_local_dir(tmp_path) == tmp_path / "blobs"
    store = build_blob_store(settings)
    assert isinstance(store, LocalBlobStore)
    assert store.describe() == f"local directory {tmp_path / 'blobs'}"
    await store.aclose()
    assert not (tmp_path / "blobs").exists()  # built lazily: nothing on disk until used


async def test_s3_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "BACKEND": "s3",
        "BUCKET": "fleet-blobs",
        "ENDPOINT_URL": "http://127.0.0.1:9000/",
        "PUBLIC_ENDPOINT_URL": "https://blobs.example.com",
        "REGION": "eu-central-1",
        "ACCESS_KEY_ID": "AKIDEXAMPLE",
        "SECRET_ACCESS_KEY": SECRET,
        "KEY_PREFIX": "browserfleet/",
        "ADDRESSING_STYLE": "path",
        "MAX_ATTEMPTS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(f"BROWSERFLEET_STORAGE__{name}", value)

    settings = Settings(data_dir=tmp_path)
    store = build_blob_store(settings)
    await store.aclose()

    storage = settings.storage
    assert storage.backend is StorageBackend.S3 and storage.bucket == "fleet-blobs"
    assert storage.endpoint_url == "http://127.0.0.1:9000"
    assert storage.secret_access_key is not None
    assert storage.secret_access_key.get_secret_value() == SECRET
    assert isinstance(store, S3BlobStore)
    assert store.describe() == (
        "S3 bucket 'fleet-blobs' at http://127.0.0.1:9000, key prefix 'browserfleet/'"
    )
    for text in (repr(settings), str(settings.model_dump()), store.describe()):
        assert SECRET not in text and "AKIDEXAMPLE" not in text


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"backend": "s3"}, "needs a bucket"),
        ({"backend": "s3", "bucket": "b1b", "access_key_id": "a"}, "both"),
        ({"backend": "s3", "bucket": "b1b", "secret_access_key": "s"}, "both"),
        ({"endpoint_url": "ftp://x"}, "http"),
        ({"key_prefix": "no-slash"}, "end with '/'"),
        ({"key_prefix": "/abs/"}, "end with '/'"),
        ({"backend": "gcs"}, "backend"),
        ({"bucket_name": "typo"}, "Extra inputs"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_wrong_storage_settings_fail_loudly(values: dict[str, object], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        StorageSettings.model_validate(values)


def test_a_local_dir_can_live_anywhere(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", storage={"local_dir": tmp_path / "elsewhere"})
    assert settings.storage.effective_local_dir(settings.data_dir) == tmp_path / "elsewhere"
