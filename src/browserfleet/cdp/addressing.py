"""Where a session's CDP endpoint is published, and which token a request names. Pure.

Two forms, chosen by the operator:
  * path (the default): `{public base}/cdp/{token}`, everything on the server's own host;
  * host: `{scheme}://{label}.cdp.example.com[:port]`, a host of its own per session (a
    wildcard DNS name and certificate point `*.cdp.example.com` at the server). Discovery
    (`/json/version`, `/json/list`, ...) answers at the root of that host, as Chrome's own does
    and as the cloud's `https://{id}.cdpN.browser-use.com` does, so clients that build
    `new URL('/json/version', cdpUrl)` (Puppeteer's `browserURL`, chrome-remote-interface's
    host/port form) work.

A host name is case-insensitive and clients lower-case it (WHATWG URLs do), but the token is
base64url, so the host form carries the same 256 bits as a lower-case base32 label (52
characters, a valid DNS label): `host_label` and `token_of_label` convert either way.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

TOKEN_FIELD = "{token}"
_LABEL = re.compile(r"[a-z2-7]{52}")
_DOMAIN = re.compile(
    r"(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"
)


def host_label(token: str) -> str:
    """The DNS label that stands for `token` (43 base64url characters)."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    return base64.b32encode(raw).decode().rstrip("=").lower()


def token_of_label(label: str) -> str | None:
    """The token a label stands for, or None when it is not one."""
    label = label.lower()
    if not _LABEL.fullmatch(label):
        return None
    try:
        raw = base64.b32decode(label.upper() + "====")
    except binascii.Error:
        return None
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class HostTemplate:
    """`{token}.cdp.example.com` or `{token}.cdp.example.com:8443`: the token is the first label."""

    domain: str  # after `{token}.`, lower case
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostTemplate:
        """ValueError, saying what is wrong, for anything but `{token}.<domain>[:port]`."""
        rest = text.strip().lower()
        if not rest.startswith(TOKEN_FIELD + "."):
            raise ValueError(
                "must start with '{token}.' followed by a domain, e.g. {token}.cdp.example.com"
            )
        rest = rest.removeprefix(TOKEN_FIELD + ".")
        domain, colon, port_text = rest.partition(":")
        port: int | None = None
        if colon:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(f"{port_text!r} is not a port")
            port = int(port_text)
        if not _DOMAIN.fullmatch(domain) or "." not in domain:
            raise ValueError(f"{domain!r} is not a domain name with at least two labels")
        return cls(domain, port)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{TOKEN_FIELD}.{self.domain}{port}"

    def host(self, token: str) -> str:
        """The session's host name (no port)."""
        return f"{host_label(token)}.{self.domain}"

    def token_of(self, host_header: str) -> str | None:
        """The token a request's Host header names, or None when it is not one of ours."""
        name = _host_name(host_header)
        label, dot, domain = name.partition(".")
        if not dot or domain != self.domain:
            return None
        return token_of_label(label)


def _host_name(host_header: str) -> str:
    """The name of a Host header, lower case, without port or a trailing dot."""
    value = host_header.strip().lower()
    if value.startswith("["):  # an IPv6 literal is never one of our names
        return value
    return value.rsplit(":", 1)[0].rstrip(".") if ":" in value else value.rstrip(".")


@dataclass(frozen=True, slots=True)
class CdpAddressing:
    """How the server publishes CDP endpoints: by path (template None) or by host."""

    host_template: HostTemplate | None = None

    def cdp_url(self, public_base: str, token: str) -> str:
        """The session's `cdpUrl`: the HTTP base its discovery answers under."""
        base = public_base.rstrip("/")
        if self.host_template is None:
            return f"{base}/cdp/{token}"
        parts = urlsplit(base)
        port = self.host_template.port if self.host_template.port is not None else parts.port
        netloc = self.host_template.host(token) + (f":{port}" if port is not None else "")
        return f"{parts.scheme}://{netloc}"

    def websocket_prefix(self, public_base: str, token: str) -> str:
        """What replaces Chrome's `ws://127.0.0.1:PORT` in the session's websocket URLs."""
        return websocket_base(self.cdp_url(public_base, token))

    def token_of_host(self, host_header: str | None) -> str | None:
        """The token a request's Host names in the host form; None in the path form."""
        if self.host_template is None or not host_header:
            return None
        return self.host_template.token_of(host_header)


PATH_ADDRESSING = CdpAddressing()


def websocket_base(http_base: str) -> str:
    """`https://h/p/` -> `wss://h/p`; `http://h` -> `ws://h`."""
    base = http_base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base.removeprefix("https://")
    if base.startswith("http://"):
        return "ws://" + base.removeprefix("http://")
    return base
