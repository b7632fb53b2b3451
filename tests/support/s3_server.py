"""A real S3-compatible server for tests: moto's server on 127.0.0.1, behind a SigV4 check.

moto serves S3's API but takes any credentials and ignores presigned URLs' signatures and
expiry. The WSGI layer in front checks what S3 itself checks, written from AWS's Signature V4
specification (not with botocore's signer): the access key, the signature of every request
(Authorization header or presigned query), a presigned URL's expiry and the request's clock
skew. Its clock is adjustable, so a test can move past an expiry without waiting for it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import boto3
from botocore.config import Config
from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

from browserfleet.storage.s3 import AddressingStyle, S3Config

REGION = "us-east-1"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
TEST_PART = 5 * 1024 * 1024
Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


class SignatureCheck:
    """WSGI middleware: only requests signed with a known key, in time, reach the app."""

    def __init__(self, app: WsgiApp, credentials: dict[str, str]) -> None:
        self.app = app
        self.credentials = credentials
        self.clock_offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        refusal = self.refusal(environ)
        if refusal is None:
            return self.app(environ, start_response)
        code, message = refusal
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        ).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body] if environ["REQUEST_METHOD"] != "HEAD" else []

    def refusal(self, environ: Environ) -> tuple[str, str] | None:
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ["PATH_INFO"]
        path, _, query = raw.partition("?")
        params = parse_qsl(query, keep_blank_values=True)
        query_auth = dict(params)
        if "X-Amz-Signature" in query_auth:
            return self._check(environ, path, params, _from_query(query_auth), presigned=True)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization.startswith(ALGORITHM + " "):
            return self._check(environ, path, params, _from_header(environ, authorization), False)
        return ("AccessDenied", "Anonymous access is not allowed")

    def _check(
        self,
        environ: Environ,
        path: str,
        params: list[tuple[str, str]],
        auth: dict[str, str],
        presigned: bool,
    ) -> tuple[str, str] | None:
        key_id, date, region, service, _ = auth["credential"].split("/")
        secret = self.credentials.get(key_id)
        if secret is None:
            return ("InvalidAccessKeyId", "The AWS Access Key Id does not exist")
        signed_at = datetime.strptime(auth["date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        if presigned:
            if self.now() > signed_at + timedelta(seconds=int(auth["expires"])):
                return ("AccessDenied", "Request has expired")
        elif abs(self.now() - signed_at) > MAX_SKEW:
            return ("RequestTimeTooSkewed", "The difference between times is too large")
        unsigned = [(k, v) for k, v in params if k != "X-Amz-Signature"]
        canonical = "\n".join(
            [
                environ["REQUEST_METHOD"],
                quote(unquote(path), safe="/~"),
                "&".join(f"{k}={v}" for k, v in sorted((_enc(k), _enc(v)) for k, v in unsigned)),
                "".join(f"{h}:{_header(environ, h)}\n" for h in auth["headers"].split(";")),
                auth["headers"],
                auth["payload"],
            ]
        )
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join([ALGORITHM, auth["date"], scope, _sha256(canonical.encode())])
        key = f"AWS4{secret}".encode()
        for part in (date, region, service, "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, auth["signature"]):
            return ("SignatureDoesNotMatch", "The request signature we calculated does not match")
        return None


def _from_query(query: dict[str, str]) -> dict[str, str]:
    return {
        "credential": query["X-Amz-Credential"],
        "date": query["X-Amz-Date"],
        "expires": query.get("X-Amz-Expires", "0"),
        "headers": query["X-Amz-SignedHeaders"],
        "signature": query["X-Amz-Signature"],
        "payload": "UNSIGNED-PAYLOAD",
    }


def _from_header(environ: Environ, authorization: str) -> dict[str, str]:
    fields = dict(
        part.strip().split("=", 1) for part in authorization[len(ALGORITHM) + 1 :].split(",")
    )
    return {
        "credential": fields["Credential"],
        "date": environ.get("HTTP_X_AMZ_DATE", ""),
        "headers": fields["SignedHeaders"],
        "signature": fields["Signature"],
        "payload": environ.get("HTTP_X_AMZ_CONTENT_SHA256", "UNSIGNED-PAYLOAD"),
    }


def _header(environ: Environ, name: str) -> str:
    if name in ("content-type", "content-length"):
        value = environ.get(name.upper().replace("-", "_"), "")
    else:
        value = environ.get("HTTP_" + name.upper().replace("-", "_"), "")
    return " ".join(str(value).split())


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class S3TestServer(ThreadedMotoServer):
    """moto in this process on 127.0.0.1 and a free port, every request signature-checked."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1", 0, verbose=False)
        self.access_key_id = "AKIDBROWSERFLEETTEST"
        self.secret_access_key = secrets.token_urlsafe(30)
        self.check = SignatureCheck(
            DomainDispatcherApplication(create_backend_app),
            {self.access_key_id: self.secret_access_key},
        )

    def _server_entry(self) -> None:
        self._server = make_server(
            self._ip_address, self._port, self.check, True, request_handler=MotoRequestHandler
        )
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def port(self) -> int:
        return self.get_host_and_port()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @functools.cached_property
    def client(self) -> Any:
        """A plain boto3 client of this server (to create buckets, look at raw objects)."""
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def store_config(self, bucket: str, **overrides: Any) -> S3Config:
        """Settings of a browserfleet S3 store on this server (path style, small parts)."""
        values: dict[str, Any] = {
            "bucket": bucket,
            "endpoint_url": self.url,
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "addressing_style": AddressingStyle.PATH,
            # A 12 MiB object takes boto3's multipart path (S3's smallest part is 5 MiB).
            "multipart_threshold": TEST_PART,
            "multipart_chunksize": TEST_PART,
            "connect_timeout_s": 5.0,
            "read_timeout_s": 30.0,
        }
        return S3Config(**(values | overrides))

    def create_bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def remove_bucket(self, name: str) -> None:
        for key in self.raw_keys(name):
            self.client.delete_object(Bucket=name, Key=key)
        self.client.delete_bucket(Bucket=name)

    def raw_keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    @contextlib.contextmanager
    def clock_moved(self, offset: timedelta) -> Iterator[None]:
        """The server's clock runs `offset` ahead (or behind) while inside."""
        self.check.clock_offset = offset
        try:
            yield
        finally:
            self.check.clock_offset = timedelta(0)
