"""An egress route planned in the API process, made the node's: every guard it carries is
replaced by the node's own (its allow-list and its interface addresses, which the API process
cannot know). Pure."""

from __future__ import annotations

from dataclasses import replace

from browserfleet.proxy import DirectRoute, EgressGuard, HttpUpstream, Socks5Upstream


def rebind_guard(route: object, guard: EgressGuard) -> DirectRoute | HttpUpstream | Socks5Upstream:
    """`route` guarded by `guard` wherever it was guarded; TypeError if it is not a route."""
    if isinstance(route, DirectRoute):
        return DirectRoute(guard)
    if isinstance(route, HttpUpstream | Socks5Upstream):
        # An operator's upstream carries no guard (trusted); a tenant's is checked here too.
        return route if route.guard is None else replace(route, guard=guard)
    raise TypeError(f"not an egress route: {type(route).__name__}")
