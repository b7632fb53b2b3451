"""Egress planning: which route a session's traffic takes, at what price (docs/api.md, "Proxies").

An adapter between the domain's SessionRequest and the proxy runtime's routes: a custom proxy
wins, then the operator's country pools, then direct. Credentials stay inside the routes.
"""

from __future__ import annotations

import logging

from browserfleet.billing.pricing import usd_to_micros
from browserfleet.errors import ProxyCountryUnavailable
from browserfleet.proxy import (
    DirectRoute,
    EgressGuard,
    HttpUpstream,
    PoolConfig,
    Socks5Upstream,
    choose,
)
from browserfleet.proxy.pools import NoProxyPool
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


class PoolPlanner:
    def __init__(self, config: PoolConfig, guard: EgressGuard) -> None:
        self._config = config
        self._guard = guard
        self._direct = DirectRoute(guard)
        rates = config.rates
        self._managed = usd_to_micros(rates.managed)
        self._custom = usd_to_micros(rates.custom)
        self._direct_rate = usd_to_micros(rates.direct)

    def plan(self, request: SessionRequest, session_key: str) -> EgressPlan:
        if request.custom_proxy is not None:
            route = upstream_for(request.custom_proxy, self._guard)
            return EgressPlan(route=route, kind="custom", micros_per_gb=self._custom)
        country = request.proxy_country_code
        if country is None:
            return self._direct_plan()
        try:
            upstream = choose(self._config, country, session_key)
        except NoProxyPool:
            raise ProxyCountryUnavailable(country) from None
        if upstream is None:
            log.warning("no proxy pool for country %r: this session goes direct", country)
            return self._direct_plan()
        return EgressPlan(route=upstream, kind="managed", micros_per_gb=self._managed)

    def _direct_plan(self) -> EgressPlan:
        return EgressPlan(route=self._direct, kind="direct", micros_per_gb=self._direct_rate)
