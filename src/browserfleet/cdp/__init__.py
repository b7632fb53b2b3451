"""The CDP gateway: per-session /cdp/{token} discovery and DevTools websocket relay."""

from browserfleet.cdp.gateway import BrowserUnreachable, CdpGatewayServer, RouteSpec, TargetNotFound
from browserfleet.cdp.relay import ClientPeer, Counters

__all__ = [
    "BrowserUnreachable",
    "CdpGatewayServer",
    "ClientPeer",
    "Counters",
    "RouteSpec",
    "TargetNotFound",
]
