"""The CDP gateway: per-session /cdp/{token} discovery and DevTools websocket relay."""

from browserfleet.cdp.gateway import (
    BrowserUnreachable,
    CdpGatewayServer,
    GatewayLimits,
    RouteSpec,
    TargetNotFound,
    TooManyConnections,
)
from browserfleet.cdp.relay import ClientPeer, Counters, RelayLimits

__all__ = [
    "BrowserUnreachable",
    "CdpGatewayServer",
    "ClientPeer",
    "Counters",
    "GatewayLimits",
    "RelayLimits",
    "RouteSpec",
    "TargetNotFound",
    "TooManyConnections",
]
