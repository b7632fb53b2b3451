"""The operator's country proxy pools (TOML) and the pure choice of an upstream for a session.

strict_countries = false
[countries]
us = ["http://user-{session}:pw@proxy.example:8000"]
"*" = ["socks5://user:pw@fallback.example:1080"]
[rates]            # USD per GB (10^9 bytes), per route kind
managed = "5.00"
custom = "0.20"
direct = "0.20"
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from browserfleet.proxy.upstream import HttpUpstream, Socks5Upstream

FALLBACK = "*"
PLACEHOLDER = "{session}"
DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080}


class PoolConfigError(ValueError):
    """The pool file is invalid; messages never quote a proxy URL (they hold credentials)."""


class NoProxyPool(LookupError):
    """No pool serves this country and the operator set strict_countries."""

    def __init__(self, country_code: str) -> None:
        self.country_code = country_code
        super().__init__(f"no proxy pool is configured for country {country_code!r}")


@dataclass(frozen=True, slots=True)
class ProxyRates:
    """USD per GB for each kind of route (defaults in docs/api.md, "Billing")."""

    managed: Decimal = Decimal("5.00")
    custom: Decimal = Decimal("0.20")
    direct: Decimal = Decimal("0.20")


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Country code (lower case, or "*") to upstream proxy URL templates."""

    countries: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    strict_countries: bool = False
    rates: ProxyRates = field(default_factory=ProxyRates)


def load_pool_config(path: Path) -> PoolConfig:
    """Read and validate a pool file."""
    try:
        return parse_pool_config(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PoolConfigError(f"cannot read proxy pool file {path}: {exc.strerror}") from None


def parse_pool_config(text: str) -> PoolConfig:
    """Parse and validate pool TOML: every URL must parse, every rate be a decimal."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PoolConfigError(f"invalid TOML: {exc}") from None
    countries = _countries(data.get("countries", {}))
    strict = data.get("strict_countries", False)
    if not isinstance(strict, bool):
        raise PoolConfigError("strict_countries must be true or false")
    return PoolConfig(countries, strict, _rates(data.get("rates", {})))


def choose(
    config: PoolConfig, country_code: str, session_key: str
) -> HttpUpstream | Socks5Upstream | None:
    """The upstream for a session in a country; None means direct (no pool for it).

    The same session always gets the same entry of a pool and the same `{session}` token.
    Raises NoProxyPool when nothing serves the country and strict_countries is set.
    """
    code = country_code.lower()
    urls = config.countries.get(code) or config.countries.get(FALLBACK)
    if not urls:
        if config.strict_countries:
            raise NoProxyPool(code)
        return None
    digest = hashlib.sha256(f"{code}\x00{session_key}".encode()).digest()
    url = urls[int.from_bytes(digest[:8], "big") % len(urls)]
    return parse_proxy_url(url, sticky_token(session_key))


def sticky_token(session_key: str) -> str:
    """A stable per-session token for `{session}`: does not reveal our session ids upstream."""
    return hashlib.sha256(f"browserfleet-sticky\x00{session_key}".encode()).hexdigest()[:16]


def parse_proxy_url(url: str, session_token: str = "") -> HttpUpstream | Socks5Upstream:
    """`http://user:pw@host:port` or `socks5://` / `socks5h://` as a route; fills `{session}`."""
    parts = urlsplit(url.replace(PLACEHOLDER, session_token))
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise PoolConfigError("proxy URLs must be http://, socks5:// or socks5h:// with a host")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise PoolConfigError("a proxy URL has an invalid port") from None
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if scheme == "http":
        return HttpUpstream(parts.hostname, port, username, password)
    try:
        return Socks5Upstream(parts.hostname, port, username, password)
    except ValueError:
        raise PoolConfigError("SOCKS5 credentials must be 1-255 bytes") from None


def _countries(raw: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise PoolConfigError("[countries] must be a table")
    countries: dict[str, tuple[str, ...]] = {}
    for code, value in raw.items():
        urls = [value] if isinstance(value, str) else value
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or not urls:
            raise PoolConfigError(f"countries.{code} must be a non-empty list of proxy URLs")
        for url in urls:
            parse_proxy_url(url, "validate")
        countries[code.lower()] = tuple(urls)
    return countries


def _rates(raw: Any) -> ProxyRates:
    if not isinstance(raw, dict):
        raise PoolConfigError("[rates] must be a table")
    unknown = set(raw) - {"managed", "custom", "direct"}
    if unknown:
        raise PoolConfigError(f"unknown rates: {sorted(unknown)}")
    try:
        values = {name: Decimal(str(value)) for name, value in raw.items()}
    except InvalidOperation:
        raise PoolConfigError('rates must be decimal strings such as "5.00"') from None
    if any(not value.is_finite() or value < 0 for value in values.values()):
        raise PoolConfigError("rates must be finite and not negative")
    return ProxyRates(**values)
