"""What crosses between the API process and a browser's actor, as values: routes made the
node's, and the values and errors that must survive pickling."""

from __future__ import annotations

import ipaddress
import pickle
from pathlib import Path, PurePosixPath

import pytest

from browserfleet.browsers.files import BrowserFiles
from browserfleet.cdp.client import CdpError
from browserfleet.cluster.routes import rebind_guard
from browserfleet.cluster.wire import Launched
from browserfleet.proxy import DirectRoute, EgressGuard, HttpUpstream, Socks5Upstream

API_GUARD = EgressGuard(local_addresses=frozenset({ipaddress.ip_address("10.0.0.1")}))
NODE_GUARD = EgressGuard(
    allow_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    local_addresses=frozenset({ipaddress.ip_address("10.0.0.7")}),
)


def test_a_direct_route_gets_the_nodes_guard() -> None:
    assert rebind_guard(DirectRoute(API_GUARD), NODE_GUARD) == DirectRoute(NODE_GUARD)


@pytest.mark.parametrize("kind", [HttpUpstream, Socks5Upstream])
def test_a_tenants_upstream_is_checked_by_the_nodes_guard(
    kind: type[HttpUpstream] | type[Socks5Upstream],
) -> None:
    route = kind("proxy.example", 3128, "user", "secret", guard=API_GUARD)
    assert rebind_guard(route, NODE_GUARD) == kind(
        "proxy.example", 3128, "user", "secret", guard=NODE_GUARD
    )


@pytest.mark.parametrize("kind", [HttpUpstream, Socks5Upstream])
def test_an_operators_upstream_stays_unguarded(
    kind: type[HttpUpstream] | type[Socks5Upstream],
) -> None:
    route = kind("pool.example", 8000)
    assert rebind_guard(route, NODE_GUARD) is route


def test_anything_else_is_not_a_route() -> None:
    with pytest.raises(TypeError, match="not an egress route: str"):
        rebind_guard("direct", NODE_GUARD)


def test_launched_survives_pickling_and_hides_its_token() -> None:
    token = bytes(range(32))
    launched = Launched(
        pid=4242,
        devtools_port=9222,
        forward_host="10.0.0.7",
        forward_port=47001,
        forward_token=token,
        workdir=Path("/var/lib/browserfleet/sessions/abc"),
        files=BrowserFiles(
            Path("/var/lib/browserfleet/sessions/abc/downloads"),
            Path("/var/lib/browserfleet/sessions/abc/uploads"),
            PurePosixPath("/session/downloads"),
            PurePosixPath("/session/uploads"),
        ),
    )
    assert pickle.loads(pickle.dumps(launched)) == launched
    assert token.hex() not in repr(launched) and repr(token) not in repr(launched)


def test_a_cdp_error_survives_pickling() -> None:
    error = pickle.loads(pickle.dumps(CdpError("Nope.nope", "'Nope.nope' wasn't found")))
    assert isinstance(error, CdpError)
    assert (error.method, error.detail) == ("Nope.nope", "'Nope.nope' wasn't found")
    assert str(error) == "Nope.nope: 'Nope.nope' wasn't found"
