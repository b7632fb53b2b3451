"""The operator's country proxy pools (TOML) and the pure choice of an upstream for a session.

strict_countries = false
[countries]
us = ["http://user-{session}:pw@proxy.example:8000",
      # An entry may say where it is (else the country's defaults apply, see regions.py):
      {url = "http://user:pw@us-west.example:8000", timezone = "America/Los_Angeles"}]
de = [{url = "socks5://user:pw@de.example:1080", locale = "de-DE"}]
"*" = ["socks5://user:pw@fallback.example:1080"]
[rates]            # USD per GB (10^9 bytes) per route kind; defaults 5.00, 0 and 0
managed = "5.00"
custom = "0.10"
direct = "0.10"
"""

from __future__ import annotations

import hashlib
import re
import tomllib
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from browserfleet.proxy.upstream import HttpUpstream, Socks5Upstream

FALLBACK = "*"
PLACEHOLDER = "{session}"
DEFAULT_PORTS = {"http": 80, "socks5": 1080, "socks5h": 1080}
# language[-Script][-REGION], e.g. de-DE, zh-Hant-TW, es-419
_LOCALE = re.compile(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?")


class PoolConfigError(ValueError):
    """The pool file is invalid; messages never quote a proxy URL (they hold credentials)."""


class NoProxyPool(LookupError):
    """No pool serves this country and the operator set strict_countries."""

    def __init__(self, country_code: str) -> None:
        self.country_code = country_code
        super().__init__(f"no proxy pool is configured for country {country_code!r}")


@dataclass(frozen=True, slots=True)
class ProxyRates:
    """USD per GB for each kind of route (docs/api.md, "Billing"). The defaults follow the
    cloud: traffic through a managed pool carries a rate, traffic through the user's own proxy
    or straight out costs nothing unless the operator sets a rate."""

    managed: Decimal = Decimal("5.00")
    custom: Decimal = Decimal("0")
    direct: Decimal = Decimal("0")


@dataclass(frozen=True, slots=True)
class PoolEntry:
    """One upstream proxy URL template, and where its traffic appears to come from (None: the
    country's default)."""

    url: str = field(repr=False)
    timezone: str | None = None
    locale: str | None = None


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """Country code (lower case, or "*") to upstream proxy entries."""

    countries: dict[str, tuple[PoolEntry, ...]] = field(default_factory=dict, repr=False)
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


def pick(config: PoolConfig, country_code: str, session_key: str) -> PoolEntry | None:
    """The pool entry for a session in a country; None means direct (no pool for it).

    The same session always gets the same entry of a pool.
    Raises NoProxyPool when nothing serves the country and strict_countries is set.
    """
    code = country_code.lower()
    entries = config.countries.get(code) or config.countries.get(FALLBACK)
    if not entries:
        if config.strict_countries:
            raise NoProxyPool(code)
        return None
    digest = hashlib.sha256(f"{code}\x00{session_key}".encode()).digest()
    return entries[int.from_bytes(digest[:8], "big") % len(entries)]


def choose(
    config: PoolConfig, country_code: str, session_key: str
) -> HttpUpstream | Socks5Upstream | None:
    """The upstream of pick()'s entry, its `{session}` filled with the session's own token."""
    entry = pick(config, country_code, session_key)
    return None if entry is None else upstream_of(entry, session_key)


def upstream_of(entry: PoolEntry, session_key: str) -> HttpUpstream | Socks5Upstream:
    return parse_proxy_url(entry.url, sticky_token(session_key))


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


def _countries(raw: Any) -> dict[str, tuple[PoolEntry, ...]]:
    if not isinstance(raw, dict):
        raise PoolConfigError("[countries] must be a table")
    countries: dict[str, tuple[PoolEntry, ...]] = {}
    for code, value in raw.items():
        items = [value] if isinstance(value, str | dict) else value
        if not isinstance(items, list) or not items:
            raise PoolConfigError(f"countries.{code} must be a non-empty list of proxy URLs")
        countries[code.lower()] = tuple(_entry(code, item) for item in items)
    return countries


def _entry(code: str, item: object) -> PoolEntry:
    """A URL string, or a table {url = "...", timezone = "Area/City", locale = "ll-CC"}."""
    fields = {"url": item} if isinstance(item, str) else item
    if not isinstance(fields, dict) or not isinstance(fields.get("url"), str):
        raise PoolConfigError(f"countries.{code}: an entry is a URL or a table with a url")
    unknown = set(fields) - {"url", "timezone", "locale"}
    if unknown:
        raise PoolConfigError(f"countries.{code}: unknown entry keys {sorted(unknown)}")
    parse_proxy_url(fields["url"], "validate")
    timezone, locale = fields.get("timezone"), fields.get("locale")
    if timezone is not None and not _is_timezone(timezone):
        raise PoolConfigError(f"countries.{code}: {timezone!r} is not an IANA time zone")
    if locale is not None and not (isinstance(locale, str) and _LOCALE.fullmatch(locale)):
        raise PoolConfigError(f"countries.{code}: {locale!r} is not a locale such as de-DE")
    return PoolEntry(fields["url"], timezone, locale)


def _is_timezone(name: object) -> bool:
    if not isinstance(name, str) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


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
