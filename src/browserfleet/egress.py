"""Egress planning: which route a session's traffic takes, at what price (docs/api.md,
"Proxies"), and where it appears to be (timezone, locale: regions.py).

An adapter between the domain's SessionRequest and the proxy runtime's routes: a custom proxy
wins, then the operator's country pools, then direct. Credentials stay inside the routes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from browserfleet.billing.pricing import usd_to_micros
from browserfleet.browsers.stealth import Region
from browserfleet.errors import ProxyCountryUnavailable
from browserfleet.proxy import (
    DirectRoute,
    EgressGuard,
    HttpUpstream,
    PoolConfig,
    Socks5Upstream,
)
from browserfleet.proxy.pools import NoProxyPool, pick, upstream_of
from browserfleet.regions import region_for
from browserfleet.sessions.model import CustomProxy, SessionRequest
from browserfleet.sessions.ports import EgressPlan

log = logging.getLogger(__name__)

_SOCKS_SCHEMES = ("socks5://", "socks5h://")
_HTTP_SCHEMES = ("http://",)


def upstream_for(proxy: CustomProxy, guard: EgressGuard) -> HttpUpstream | Socks5Upstream:
    """A caller's own proxy, checked by the egress guard like any direct destination. The SDK
    has no scheme field: `socks5://host` selects SOCKS5, a bare host (or `http://host`) HTTP."""
    host = proxy.host
    for scheme in _SOCKS_SCHEMES:
        if host.startswith(scheme):
            return Socks5Upstream(
                host[len(scheme) :], proxy.port, proxy.username, proxy.password, guard
            )
    for scheme in _HTTP_SCHEMES:
        if host.startswith(scheme):
            host = host[len(scheme) :]
    return HttpUpstream(host, proxy.port, proxy.username, proxy.password, guard)


@dataclass(frozen=True, slots=True)
class RouteRegions:
    """Where sessions whose route has no country appear to be (None: the host's own settings)."""

    custom: Region | None = None
    direct: Region | None = None


class PoolPlanner:
    def __init__(
        self, config: PoolConfig, guard: EgressGuard, regions: RouteRegions | None = None
    ) -> None:
        self._config = config
        self._guard = guard
        self._regions = regions or RouteRegions()
        self._direct = DirectRoute(guard)
        rates = config.rates
        self._managed = usd_to_micros(rates.managed)
        self._custom = usd_to_micros(rates.custom)
        self._direct_rate = usd_to_micros(rates.direct)

    def plan(self, request: SessionRequest, session_key: str) -> EgressPlan:
        if request.custom_proxy is not None:
            route = upstream_for(request.custom_proxy, self._guard)
            return EgressPlan(
                route=route,
                kind="custom",
                micros_per_gb=self._custom,
                region=self._regions.custom,
            )
        country = request.proxy_country_code
        if country is None:
            return self._direct_plan()
        try:
            entry = pick(self._config, country, session_key)
        except NoProxyPool:
            raise ProxyCountryUnavailable(country) from None
        if entry is None:
            log.warning("no proxy pool for country %r: this session goes direct", country)
            return self._direct_plan()
        return EgressPlan(
            route=upstream_of(entry, session_key),
            kind="managed",
            micros_per_gb=self._managed,
            region=region_for(country, timezone=entry.timezone, locale=entry.locale),
        )

    def _direct_plan(self) -> EgressPlan:
        return EgressPlan(
            route=self._direct,
            kind="direct",
            micros_per_gb=self._direct_rate,
            region=self._regions.direct,
        )
