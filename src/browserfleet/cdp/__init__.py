"""The CDP gateway: per-session /cdp/{token} discovery and DevTools websocket relay."""

from browserfleet.cdp.gateway import BrowserUnreachable, CdpGatewayServer, RouteSpec, TargetNotFound
from browserfleet.cdp.relay import ClientGone, ClientSocket, Counters

__all__ = [
    "BrowserUnreachable",
    "CdpGatewayServer",
    "ClientGone",
    "ClientSocket",
    "Counters",
    "RouteSpec",
    "TargetNotFound",
]
