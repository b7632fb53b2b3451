"""Pure HTTP/1.x for the egress proxy: parse proxy requests, rewrite them, render errors.

No sockets here. The server feeds raw bytes into a `HeadBuffer` until a complete head is found,
parses it with `parse_request_head` / `parse_response_head`, and writes the bytes we return.
"""

from __future__ import annotations

import html
import ipaddress
import re
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024  # Chromium heads are a few KiB; large cookies stay well under this
MAX_HEADER_COUNT = 128
HTTP_VERSIONS = frozenset({"HTTP/1.0", "HTTP/1.1"})
# RFC 9110 §7.6.1 plus the proxy-only ones. Transfer-Encoding and Content-Length are kept on
# purpose: bodies are relayed byte for byte, never re-framed, so their framing must travel too.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")
REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    407: "Proxy Authentication Required",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    504: "Gateway Timeout",
}

Headers = tuple[tuple[str, str], ...]


class ProxyProtocolError(Exception):
    """The peer sent something that is not a request (or response) we can forward."""

    status = 400


class HeadTooLarge(ProxyProtocolError):
    """The head exceeded MAX_HEAD_BYTES or MAX_HEADER_COUNT."""

    status = 431


@dataclass(frozen=True, slots=True)
class Authority:
    """A host and port to reach; `host` holds IPv6 literals without brackets."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def host_header(self) -> str:
        """The Host header value for a plain-HTTP request (port omitted when it is 80)."""
        return str(self).removesuffix(":80")


@dataclass(frozen=True, slots=True)
class RequestHead:
    """A browser's request to its proxy: CONNECT (authority-form) or absolute-form `http://`."""

    method: str
    target: Authority
    path: str  # origin-form ("/a?b") for plain HTTP, "" for CONNECT
    version: str
    headers: Headers

    @property
    def is_connect(self) -> bool:
        return self.method == "CONNECT"


@dataclass(frozen=True, slots=True)
class ResponseHead:
    """A status line and headers, from an origin or an upstream proxy."""

    version: str
    status: int
    reason: str
    headers: Headers


class HeadBuffer:
    """Accumulates bytes until a full head (through the blank line) has arrived."""

    def __init__(self, limit: int = MAX_HEAD_BYTES) -> None:
        self._buffer = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> tuple[bytes, bytes] | None:
        """Add data; return (head, rest) once the head is complete, else None."""
        self._buffer += data
        # RFC 9112 §2.2: ignore empty lines before the request line.
        while self._buffer.startswith(b"\r\n"):
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > self._limit:
                raise HeadTooLarge("request head too large")
            return None
        if end + 4 > self._limit:
            raise HeadTooLarge("request head too large")
        head, rest = bytes(self._buffer[: end + 4]), bytes(self._buffer[end + 4 :])
        self._buffer.clear()
        return head, rest


def parse_request_head(raw: bytes) -> RequestHead:
    """Parse a complete request head (as returned by HeadBuffer) sent to a forward proxy."""
    request_line, headers = _split_head(raw)
    parts = request_line.split(" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]):
        raise ProxyProtocolError("malformed request line")
    method, target, version = parts
    if version not in HTTP_VERSIONS:
        raise ProxyProtocolError(f"unsupported protocol version {version[:16]!r}")
    if method == "CONNECT":
        return RequestHead(method, parse_authority(target, default_port=None), "", version, headers)
    authority, path = _split_absolute_form(target)
    _check_body_framing(headers)
    return RequestHead(method, authority, path, version, headers)


def parse_response_head(raw: bytes) -> ResponseHead:
    """Parse a complete response head from an origin server or an upstream proxy."""
    status_line, headers = _split_head(raw)
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProxyProtocolError("malformed status line")
    if len(parts[1]) != 3:
        raise ProxyProtocolError("malformed status code")
    reason = parts[2] if len(parts) == 3 else ""
    return ResponseHead(parts[0], int(parts[1]), reason, headers)


def parse_authority(text: str, *, default_port: int | None) -> Authority:
    """Parse `host:port`, `[v6]:port` or (with a default port) a bare host."""
    host, port_text = _split_host_port(text)
    if port_text is None:
        if default_port is None:
            raise ProxyProtocolError("CONNECT target needs a port")
        return Authority(_valid_host(host), default_port)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ProxyProtocolError("invalid port")
    return Authority(_valid_host(host), int(port_text))


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of a header (case-insensitive name), or None."""
    wanted = name.lower()
    return next((value for key, value in headers if key.lower() == wanted), None)


def content_length(head: ResponseHead) -> int | None:
    """The body's length when one valid Content-Length alone frames it; None when the body is
    chunked or runs until the connection closes (or the length is ambiguous)."""
    if header_value(head.headers, "transfer-encoding") is not None:
        return None
    lengths = {value for key, value in head.headers if key.lower() == "content-length"}
    if len(lengths) != 1:
        return None
    (value,) = lengths
    return int(value) if value.isdigit() else None


def end_to_end(headers: Headers) -> Headers:
    """Drop hop-by-hop headers, including every header the Connection header names."""
    named = {
        token.strip().lower()
        for key, value in headers
        if key.lower() in ("connection", "proxy-connection")
        for token in value.split(",")
    }
    drop = HOP_BY_HOP | named - {"content-length", "transfer-encoding"}
    return tuple((key, value) for key, value in headers if key.lower() not in drop)


def origin_request(head: RequestHead) -> bytes:
    """The request rewritten for the origin itself: origin-form target, `Connection: close`."""
    headers = _with_host(end_to_end(head.headers), head.target)
    return _render(f"{head.method} {head.path} {head.version}", (*headers, ("Connection", "close")))


def upstream_request(head: RequestHead, proxy_authorization: str | None) -> bytes:
    """The request rewritten for an upstream HTTP proxy: absolute-form, our credentials."""
    headers = _with_host(end_to_end(head.headers), head.target)
    extra = (("Proxy-Authorization", proxy_authorization),) if proxy_authorization else ()
    target = f"http://{head.target.host_header}{head.path}"
    return _render(
        f"{head.method} {target} {head.version}", (*headers, *extra, ("Connection", "close"))
    )


def connect_request(target: Authority, proxy_authorization: str | None) -> bytes:
    """A CONNECT request to an upstream HTTP proxy."""
    headers: list[tuple[str, str]] = [("Host", str(target))]
    if proxy_authorization:
        headers.append(("Proxy-Authorization", proxy_authorization))
    return _render(f"CONNECT {target} HTTP/1.1", tuple(headers))


def client_response(head: ResponseHead) -> bytes:
    """The response head passed to the browser: end-to-end headers plus `Connection: close`."""
    headers = (*end_to_end(head.headers), ("Connection", "close"))
    return _render(f"{head.version} {head.status} {head.reason}", headers)


CONNECTION_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def error_response(status: int, detail: str, *, extra: Headers = ()) -> bytes:
    """A complete, self-contained error response with a small HTML page explaining it."""
    reason = REASONS.get(status, "Error")
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{status} {reason}</title></head><body><h1>{status} {reason}</h1>"
        f"<p>{html.escape(detail)}</p><p><small>browserfleet egress proxy</small></p>"
        "</body></html>"
    ).encode()
    headers = (
        *extra,
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        ("Connection", "close"),
    )
    return _render(f"HTTP/1.1 {status} {reason}", headers) + body


def _split_head(raw: bytes) -> tuple[str, Headers]:
    lines = raw.decode("latin-1").removesuffix("\r\n\r\n").split("\r\n")
    if len(lines) - 1 > MAX_HEADER_COUNT:
        raise HeadTooLarge("too many header fields")
    return lines[0], tuple(_parse_header(line) for line in lines[1:])


def _parse_header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    # No whitespace before the colon, no obsolete line folding (RFC 9112 §5.1, §5.2).
    if not sep or not _TOKEN.match(name):
        raise ProxyProtocolError("malformed header field")
    value = value.strip(" \t")
    if any(ch in value for ch in "\r\n\x00"):
        raise ProxyProtocolError("malformed header value")
    return name, value


def _split_absolute_form(target: str) -> tuple[Authority, str]:
    if not target[:7].lower() == "http://":
        raise ProxyProtocolError("a proxy request needs an absolute http:// URL or CONNECT")
    rest = target[7:]
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority_text, path = rest[:cut], rest[cut:].partition("#")[0]
    if "@" in authority_text:
        raise ProxyProtocolError("credentials in the request URL are not forwarded")
    path = path if path.startswith("/") else "/" + path
    return parse_authority(authority_text, default_port=80), path


def _split_host_port(text: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, bracket, after = text[1:].partition("]")
        if not bracket or ":" not in host or (after and not after.startswith(":")):
            raise ProxyProtocolError("malformed IPv6 literal")
        return host, after[1:] if after else None
    host, colon, port = text.rpartition(":")
    return (host, port) if colon else (text, None)


def _valid_host(host: str) -> str:
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            raise ProxyProtocolError("malformed IPv6 literal") from None
    if not _HOSTNAME.match(host) or ".." in host:
        raise ProxyProtocolError("malformed host name")
    return host.lower().rstrip(".")


def _check_body_framing(headers: Headers) -> None:
    """Reject ambiguous framing (RFC 9112 §6.3): the request-smuggling ingredients."""
    names = [key.lower() for key, _ in headers]
    if "transfer-encoding" in names and "content-length" in names:
        raise ProxyProtocolError("both Transfer-Encoding and Content-Length")
    lengths = {value for key, value in headers if key.lower() == "content-length"}
    if len(lengths) > 1 or any(not value.isdigit() for value in lengths):
        raise ProxyProtocolError("invalid Content-Length")


def _with_host(headers: Headers, target: Authority) -> Headers:
    """RFC 9112 §3.2.2: a proxy replaces Host with the request target's authority."""
    rest = tuple((key, value) for key, value in headers if key.lower() != "host")
    return (("Host", target.host_header), *rest)


def _render(start_line: str, headers: Headers) -> bytes:
    lines = [start_line, *(f"{key}: {value}" for key, value in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1")
