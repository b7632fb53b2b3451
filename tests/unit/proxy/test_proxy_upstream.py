"""Route values: credentials stay out of repr; SOCKS5 messages are what RFC 1928/1929 say."""

from __future__ import annotations

import base64

import pytest

from browserfleet.proxy import chromium_proxy_args, socks5
from browserfleet.proxy.upstream import DirectRoute, HttpUpstream, Socks5Upstream


@pytest.mark.parametrize("kind", [HttpUpstream, Socks5Upstream])
def test_repr_and_str_never_show_credentials(
    kind: type[HttpUpstream] | type[Socks5Upstream],
) -> None:
    route = kind("proxy.example", 8000, "the-user", "the-password")
    for text in (repr(route), str(route), repr(DirectRoute()), repr([route])):
        assert "the-password" not in text
        assert "the-user" not in text
    assert "proxy.example" in repr(route)


def test_basic_proxy_authorization_encodes_user_and_password() -> None:
    value = HttpUpstream("h", 1, "us:er", "pässword").proxy_authorization()
    assert value is not None
    assert base64.b64decode(value.removeprefix("Basic ")) == "us:er:pässword".encode()
    assert HttpUpstream("h", 1).proxy_authorization() is None


def test_socks5_credentials_over_255_bytes_are_refused_at_construction() -> None:
    with pytest.raises(ValueError):
        Socks5Upstream("h", 1, "u" * 256, "p")


def test_socks5_greeting_offers_only_the_method_we_can_do() -> None:
    assert socks5.greeting(True) == b"\x05\x01\x02"
    assert socks5.greeting(False) == b"\x05\x01\x00"


def test_socks5_auth_request_is_rfc1929() -> None:
    assert socks5.auth_request("ab", "xyz") == b"\x01\x02ab\x03xyz"


def test_socks5_connect_sends_host_names_as_names_and_ips_as_addresses() -> None:
    assert socks5.connect_request("example.com", 443) == b"\x05\x01\x00\x03\x0bexample.com\x01\xbb"
    assert socks5.connect_request("127.0.0.1", 80) == b"\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"
    assert socks5.connect_request("::1", 80)[3] == socks5.ATYP_IPV6


def test_socks5_reply_lengths_and_refusals() -> None:
    assert socks5.reply_address_length(b"\x05\x00\x00\x01\x00") == 5
    assert socks5.reply_address_length(b"\x05\x00\x00\x04\x00") == 17
    assert socks5.reply_address_length(b"\x05\x00\x00\x03\x07") == 9
    with pytest.raises(socks5.Socks5Error, match="connection refused"):
        socks5.reply_address_length(b"\x05\x05\x00\x01\x00")
    with pytest.raises(socks5.Socks5Error):
        socks5.reply_address_length(b"\x04\x00\x00\x01\x00")


def test_chromium_args_send_everything_through_the_proxy() -> None:
    assert chromium_proxy_args(4321) == [
        "--proxy-server=http://127.0.0.1:4321",
        "--proxy-bypass-list=<-loopback>",
        "--disable-quic",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]
