"""CDP addressing: the path form, the host form, and the token <-> host label round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from browserfleet.auth.signing import ServerSecret
from browserfleet.cdp.addressing import (
    PATH_ADDRESSING,
    CdpAddressing,
    HostTemplate,
    host_label,
    token_of_label,
)

SECRET = ServerSecret(b"k" * 32)
TOKEN = SECRET.cdp_token("0b9a4b3e-5d55-4a3c-9d0a-3f5f0c1e2d3c")
HOSTED = CdpAddressing(HostTemplate.parse("{token}.cdp.example.com"))


@given(st.uuids())
def test_every_token_has_a_lower_case_dns_label_that_gives_it_back(session_id: object) -> None:
    token = SECRET.cdp_token(str(session_id))
    label = host_label(token)
    assert label == label.lower() and len(label) == 52 and label.isalnum()
    assert token_of_label(label) == token
    assert token_of_label(label.upper()) == token  # clients may send the Host in any case


@pytest.mark.parametrize(
    "label", ["", "abc", "a" * 51, "a" * 53, "0" * 52, "1" * 52, "-" * 52, "é" * 52]
)
def test_anything_else_names_no_token(label: str) -> None:
    assert token_of_label(label) is None


def test_the_path_form_is_the_default() -> None:
    assert PATH_ADDRESSING.cdp_url("https://gw.example/fleet/", TOKEN) == (
        f"https://gw.example/fleet/cdp/{TOKEN}"
    )
    assert PATH_ADDRESSING.websocket_prefix("http://127.0.0.1:8000", TOKEN) == (
        f"ws://127.0.0.1:8000/cdp/{TOKEN}"
    )
    assert PATH_ADDRESSING.token_of_host(f"{host_label(TOKEN)}.cdp.example.com") is None


def test_the_host_form_keeps_the_public_scheme_and_port_unless_the_template_names_one() -> None:
    label = host_label(TOKEN)
    assert HOSTED.cdp_url("https://api.example.com", TOKEN) == f"https://{label}.cdp.example.com"
    assert HOSTED.cdp_url("http://127.0.0.1:8123/", TOKEN) == f"http://{label}.cdp.example.com:8123"
    assert HOSTED.websocket_prefix("https://api.example.com", TOKEN) == (
        f"wss://{label}.cdp.example.com"
    )
    pinned = CdpAddressing(HostTemplate.parse("{token}.cdp.example.com:8443"))
    assert pinned.cdp_url("https://api.example.com", TOKEN) == (
        f"https://{label}.cdp.example.com:8443"
    )


@pytest.mark.parametrize(
    "host",
    [
        "{label}.cdp.example.com",
        "{label}.cdp.example.com:8123",
        "{LABEL}.CDP.EXAMPLE.COM",
        "{label}.cdp.example.com.",
    ],
)
def test_a_host_names_its_token(host: str) -> None:
    label = host_label(TOKEN)
    assert HOSTED.token_of_host(host.format(label=label, LABEL=label.upper())) == TOKEN


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "cdp.example.com",
        "{label}.cdp.example.org",
        "{label}.evil.cdp.example.com",
        "x.{label}.cdp.example.com",
        "{label}.cdp.example.com.evil.test",
        "[::1]:8000",
        "127.0.0.1:8000",
    ],
)
def test_other_hosts_name_no_token(host: str | None) -> None:
    value = None if host is None else host.format(label=host_label(TOKEN))
    assert HOSTED.token_of_host(value) is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("cdp.example.com", "must start with"),
        ("x{token}.cdp.example.com", "must start with"),
        ("{token}", "must start with"),
        ("{token}.com", "at least two labels"),
        ("{token}.cdp.exa_mple.com", "not a domain"),
        ("{token}.cdp.example.com:0", "not a port"),
        ("{token}.cdp.example.com:http", "not a port"),
        ("{token}.{token}.example.com", "not a domain"),
    ],
)
def test_a_bad_template_is_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        HostTemplate.parse(text)


def test_a_template_is_normalized() -> None:
    assert str(HostTemplate.parse(" {TOKEN}.CDP.Example.com:8443 ")) == (
        "{token}.cdp.example.com:8443"
    )
