"""Per-session egress: a forwarding proxy every byte of a browser goes through.

The session layer needs only this surface: pick a route (`DirectRoute`, `HttpUpstream`,
`Socks5Upstream`, or `pools.choose(...)`), `proxy = await open_egress(route)`, launch Chromium
with `chromium_proxy_args(proxy.port)`, read `proxy.meter.total` live, and `await proxy.aclose()`.
"""

from browserfleet.proxy.chromium_args import chromium_proxy_args
from browserfleet.proxy.errors import (
    ConnectTimeout,
    EgressBlocked,
    EgressError,
    TargetUnreachable,
    UpstreamAuthRefused,
    UpstreamRefusedTarget,
    UpstreamUnreachable,
)
from browserfleet.proxy.guard import EgressGuard, parse_networks
from browserfleet.proxy.meter import ByteMeter
from browserfleet.proxy.pools import (
    NoProxyPool,
    PoolConfig,
    PoolConfigError,
    PoolEntry,
    ProxyRates,
    choose,
    load_pool_config,
    parse_pool_config,
    parse_proxy_url,
)
from browserfleet.proxy.server import EgressProxy, open_egress
from browserfleet.proxy.upstream import DirectRoute, HttpUpstream, Route, Socks5Upstream

__all__ = [
    "ByteMeter",
    "ConnectTimeout",
    "DirectRoute",
    "EgressBlocked",
    "EgressError",
    "EgressGuard",
    "EgressProxy",
    "HttpUpstream",
    "NoProxyPool",
    "PoolConfig",
    "PoolConfigError",
    "PoolEntry",
    "ProxyRates",
    "Route",
    "Socks5Upstream",
    "TargetUnreachable",
    "UpstreamAuthRefused",
    "UpstreamRefusedTarget",
    "UpstreamUnreachable",
    "choose",
    "chromium_proxy_args",
    "load_pool_config",
    "open_egress",
    "parse_networks",
    "parse_pool_config",
    "parse_proxy_url",
]
