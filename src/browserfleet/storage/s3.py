"""The S3-compatible blob store (AWS S3, MinIO, Ceph RGW, R2, ...), through boto3.

boto3 blocks, so every call runs on the store's own bounded thread pool. Uploads stream through
s3transfer (multipart above a threshold); a download is one streamed GET, which S3 answers from
one version of the object, so a concurrent replacement never mixes into it. Several hosts may
share one bucket: S3's atomic puts make the last writer win.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from botocore.response import StreamingBody

from browserfleet.storage.errors import (
    BlobNotFound,
    BucketNotFound,
    InvalidBlobKey,
    StorageAccessDenied,
    StorageError,
    StorageUnavailable,
)
from browserfleet.storage.fileio import open_regular, write_then_rename
from browserfleet.storage.keys import MAX_KEY_BYTES, check_folder, check_key, check_prefix
from browserfleet.storage.model import BlobAccess, BlobInfo, BlobPage, PresignedUrl, Usage
from browserfleet.storage.port import MAX_PAGE, check_lifetime, check_limit
from browserfleet.storage.serving import content_type, serve_headers
from browserfleet.storage.threads import Offload

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef, ObjectTypeDef

log = logging.getLogger(__name__)
MIB = 1024 * 1024
DOWNLOAD_ATTEMPTS = 3
CHUNK = 1024 * 1024
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "403"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
# Their DEBUG lines carry request signatures and headers: never at DEBUG, whatever the root.
SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


class AddressingStyle(StrEnum):
    AUTO = "auto"  # virtual-hosted where the bucket name allows (AWS)
    PATH = "path"  # endpoint/bucket/key: MinIO, Ceph and most self-hosted servers
    VIRTUAL = "virtual"


@dataclass(frozen=True, slots=True)
class S3Config:
    """Where and how to reach the bucket. Without keys boto3's usual chain applies (environment,
    ~/.aws, an instance or pod role)."""

    bucket: str
    endpoint_url: str | None = None
    # Signs the URLs handed to clients when they reach the store by another name than we do.
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    key_prefix: str = ""
    addressing_style: AddressingStyle = AddressingStyle.AUTO
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_attempts: int = 5
    workers: int = 8
    multipart_threshold: int = 8 * MIB
    multipart_chunksize: int = 8 * MIB


def quiet_sdk_loggers() -> None:
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


class S3BlobStore:
    """Blobs as objects of one bucket, optionally below a key prefix."""

    def __init__(self, config: S3Config, *, session: boto3.session.Session | None = None) -> None:
        """`session` may be shared between stores: it caches boto3's service models, which
        take a noticeable part of a second to load (the credentials are per store)."""
        if config.key_prefix:
            check_folder(config.key_prefix)
        self._config = config
        self._bucket = config.bucket
        self._prefix = config.key_prefix
        session = session or boto3.session.Session()
        self._client = _client(session, config, config.endpoint_url)
        self._signer = (
            _client(session, config, config.public_endpoint_url)
            if config.public_endpoint_url
            else self._client
        )
        self._transfer = TransferConfig(
            multipart_threshold=config.multipart_threshold,
            multipart_chunksize=config.multipart_chunksize,
            max_concurrency=4,
        )
        self._offload = Offload("blobs-s3", config.workers)

    def describe(self) -> str:
        endpoint = self._config.endpoint_url
        where = f" at {_without_userinfo(endpoint)}" if endpoint else ""
        prefix = f", key prefix {self._prefix!r}" if self._prefix else ""
        return f"S3 bucket {self._bucket!r}{where}{prefix}"

    async def put_file(self, key: str, source: Path, *, move: bool = False) -> int:
        full = self._full(key)
        return await self._offload.run(self._put, full, source, move)

    async def get_file(self, key: str, dest: Path) -> BlobInfo:
        full = self._full(key)
        return await self._offload.run(self._get, key, full, dest)

    async def stat(self, key: str) -> BlobInfo | None:
        full = self._full(key)
        return await self._offload.run(self._stat, key, full)

    async def list_page(
        self, prefix: str, *, start_after: str | None = None, limit: int = MAX_PAGE
    ) -> BlobPage:
        check_prefix(prefix)
        check_limit(limit)
        return await self._offload.run(self._list, prefix, start_after, limit)

    async def delete(self, key: str) -> None:
        full = self._full(key)
        with self._translated(key):
            await self._offload.run(self._client.delete_object, Bucket=self._bucket, Key=full)

    async def delete_many(self, keys: Sequence[str]) -> None:
        full = [self._full(key) for key in keys]
        await self._offload.run(self._delete_batches, full)

    async def delete_prefix(self, prefix: str) -> int:
        check_folder(prefix)
        return await self._offload.run(self._delete_under, prefix)

    async def usage(self, prefix: str) -> Usage:
        check_prefix(prefix)
        return await self._offload.run(self._usage, prefix)

    async def access(
        self, key: str, *, expires_in: timedelta, download_name: str | None = None
    ) -> BlobAccess:
        check_lifetime(expires_in)
        info = await self.stat(key)
        if info is None:
            raise BlobNotFound(key)
        headers = serve_headers(key, download_name)
        params = {"Bucket": self._bucket, "Key": self._full(key)}
        params["ResponseContentType"] = headers.content_type
        if headers.content_disposition is not None:
            params["ResponseContentDisposition"] = headers.content_disposition
        seconds = max(1, int(expires_in.total_seconds()))
        with self._translated(key):
            url = await self._offload.run(
                self._signer.generate_presigned_url, "get_object", Params=params, ExpiresIn=seconds
            )
        expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
        return PresignedUrl(url, expires_at, info, headers)

    async def aclose(self) -> None:
        await self._offload.aclose()
        self._client.close()
        if self._signer is not self._client:
            self._signer.close()

    # ------------------------------------------------------------ blocking parts (worker threads)

    def _full(self, key: str) -> str:
        full = self._prefix + check_key(key)
        if len(full.encode()) > MAX_KEY_BYTES:
            raise InvalidBlobKey(f"{key!r} with the key prefix is over {MAX_KEY_BYTES} bytes")
        return full

    def _put(self, full: str, source: Path, move: bool) -> int:
        with (
            open_regular(source) as (fd, info),
            os.fdopen(os.dup(fd), "rb") as stream,
            self._translated(None),
        ):
            self._client.upload_fileobj(
                stream,
                self._bucket,
                full,
                ExtraArgs={"ContentType": content_type(full)},
                Config=self._transfer,
            )
        if move:
            os.unlink(source)
        return info.st_size

    def _get(self, key: str, full: str, dest: Path) -> BlobInfo:
        """One GET streamed to `dest`: a single response is a single version of the object,
        so a concurrent replacement can never mix into it. A broken stream is tried again."""
        for attempt in range(DOWNLOAD_ATTEMPTS):
            with self._translated(key):
                reply = self._client.get_object(Bucket=self._bucket, Key=full)
            info = BlobInfo(
                key, reply["ContentLength"], _utc(reply["LastModified"]), _etag(reply["ETag"])
            )
            body = reply["Body"]
            try:
                write_then_rename(dest, functools.partial(_drain, body, info))
            except (ResponseStreamingError, ReadTimeoutError) as error:
                if attempt + 1 == DOWNLOAD_ATTEMPTS:
                    raise _translate(error, key, self._bucket) from error
                continue
            finally:
                body.close()
            return info
        raise AssertionError("unreachable")

    def _stat(self, key: str, full: str) -> BlobInfo | None:
        try:
            head = self._client.head_object(Bucket=self._bucket, Key=full)
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise _translate(error, key, self._bucket) from error
        except BotoCoreError as error:
            raise _translate(error, key, self._bucket) from error
        return BlobInfo(key, head["ContentLength"], _utc(head["LastModified"]), _etag(head["ETag"]))

    def _list(self, prefix: str, start_after: str | None, limit: int) -> BlobPage:
        args: dict[str, Any] = {"Bucket": self._bucket, "Prefix": self._prefix + prefix}
        args["MaxKeys"] = limit
        if start_after is not None:
            args["StartAfter"] = self._prefix + start_after
        with self._translated(None):
            page = self._client.list_objects_v2(**args)
        items = tuple(self._info(item) for item in page.get("Contents", []))
        more = page.get("IsTruncated", False) and items
        return BlobPage(items, items[-1].key if more else None)

    def _pages(self, prefix: str) -> Iterator[tuple[BlobInfo, ...]]:
        start_after: str | None = None
        while True:
            page = self._list(prefix, start_after, MAX_PAGE)
            yield page.items
            if page.next_start_after is None:
                return
            start_after = page.next_start_after

    def _delete_under(self, prefix: str) -> int:
        count = 0
        for items in self._pages(prefix):
            self._delete_batches([self._prefix + item.key for item in items])
            count += len(items)
        return count

    def _delete_batches(self, full_keys: list[str]) -> None:
        for start in range(0, len(full_keys), MAX_PAGE):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": key} for key in full_keys[start : start + MAX_PAGE]
            ]
            with self._translated(None):
                reply = self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
            if errors := reply.get("Errors", []):
                first = errors[0]
                raise StorageUnavailable(
                    f"{len(errors)} of {len(batch)} deletions failed, first "
                    f"{first.get('Key')!r}: {first.get('Code')}"
                )

    def _usage(self, prefix: str) -> Usage:
        objects = size = 0
        for items in self._pages(prefix):
            objects += len(items)
            size += sum(item.size for item in items)
        return Usage(objects, size)

    def _info(self, item: ObjectTypeDef) -> BlobInfo:
        key = item["Key"].removeprefix(self._prefix)
        return BlobInfo(key, item["Size"], _utc(item["LastModified"]), _etag(item["ETag"]))

    @contextlib.contextmanager
    def _translated(self, key: str | None) -> Iterator[None]:
        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise _translate(error, key, self._bucket) from error


def _drain(body: StreamingBody, info: BlobInfo, fd: int) -> None:
    written = 0
    for chunk in body.iter_chunks(CHUNK):
        written += os.write(fd, chunk)  # a regular file takes the whole chunk
    if written != info.size:
        raise StorageUnavailable(f"{info.key!r}: got {written} bytes of {info.size}")


def _client(session: boto3.session.Session, config: S3Config, url: str | None) -> S3Client:
    botocore_config = Config(
        signature_version="s3v4",
        s3={"addressing_style": config.addressing_style.value},
        connect_timeout=config.connect_timeout_s,
        read_timeout=config.read_timeout_s,
        retries={"max_attempts": config.max_attempts, "mode": "standard"},
        max_pool_connections=config.workers * 4,
        # Only the checksums S3 itself requires: many S3-compatible servers reject the others.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client(
        "s3",
        endpoint_url=url,
        region_name=config.region,
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        config=botocore_config,
    )


def _translate(error: Exception, key: str | None, bucket: str) -> StorageError:
    """One StorageError for any SDK failure; messages carry codes, never credentials."""
    if isinstance(error, NoCredentialsError):
        return StorageAccessDenied("no S3 credentials found (settings, environment or role)")
    if isinstance(error, ClientError):
        code = _code(error)
        if code == "NoSuchBucket":
            return BucketNotFound(f"bucket {bucket!r} does not exist")
        if code in _MISSING and key is not None:
            return BlobNotFound(key)
        if code in _DENIED:
            return StorageAccessDenied(f"S3 refused the request: {code}")
        return StorageUnavailable(f"S3 request failed: {code}")
    return StorageUnavailable(f"S3 unreachable: {type(error).__name__}: {error}")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _etag(raw: str) -> str:
    return raw.strip('"')


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _without_userinfo(url: str | None) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
