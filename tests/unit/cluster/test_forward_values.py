"""RemoteDialer and DevtoolsForwarder as values: what they tell, and what they never show."""

from __future__ import annotations

import pytest

from browserfleet.cdp.dial import LoopbackDialer
from browserfleet.cluster.forward import DevtoolsForwarder, RemoteDialer
from browserfleet.cluster.preface import new_token


def test_its_port_is_the_browsers_own_devtools_port() -> None:
    dialer = RemoteDialer("10.0.0.7", 47001, new_token(), 9222)
    assert dialer.port == 9222


def test_its_repr_names_the_forwarder_and_hides_the_token() -> None:
    token = new_token()
    shown = repr(RemoteDialer("10.0.0.7", 47001, token, 9222))
    assert shown == "RemoteDialer(10.0.0.7:47001, port=9222)"
    for form in (token.hex(), repr(token), str(token), token.hex().upper()):
        assert form not in shown


@pytest.mark.parametrize("host", ["node-1.internal", "", "10.0.0"])
def test_the_forwarder_is_named_by_its_ip_address(host: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        RemoteDialer(host, 47001, new_token(), 9222)


def test_a_token_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RemoteDialer("10.0.0.7", 47001, b"short", 9222)


def test_a_forwarders_repr_names_its_address_and_browser_and_hides_its_token() -> None:
    forwarder = DevtoolsForwarder(LoopbackDialer(9222), "127.0.0.3", 47002)
    shown = repr(forwarder)
    assert shown == "DevtoolsForwarder(127.0.0.3:47002, browser=LoopbackDialer(9222))"
    token = forwarder.token
    for form in (token.hex(), repr(token), str(token), token.hex().upper()):
        assert form not in shown
