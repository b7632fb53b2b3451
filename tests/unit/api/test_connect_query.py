"""The connect URL's query as a create request: the same fields, types and refusals as the body."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from browserfleet import errors as e
from browserfleet.api.connect import ConnectQueryInvalid, parse_query, refusal_for


def test_fields_become_the_create_request() -> None:
    query = parse_query(
        [
            ("apiKey", "bu_secret"),
            ("timeout", "30"),
            ("proxyCountryCode", "DE"),
            ("browserScreenWidth", "1280"),
            ("browserScreenHeight", "720"),
            ("allowResizing", "true"),
            ("customProxy.host", "proxy.example"),
            ("customProxy.port", "3128"),
            ("customProxy.username", "u"),
            ("customProxy.password", "p"),
            ("metadata.run_id", "42"),
            ("somethingNew", "ignored"),
        ]
    )
    assert query.api_key == "bu_secret"
    request = query.body.to_request()
    assert (request.timeout_minutes, request.proxy_country_code) == (30, "de")
    assert (request.screen_width, request.screen_height, request.allow_resizing) == (
        1280,
        720,
        True,
    )
    assert request.custom_proxy is not None
    proxy = request.custom_proxy
    assert (proxy.host, proxy.port, proxy.username, proxy.password) == (
        "proxy.example",
        3128,
        "u",
        "p",
    )
    assert dict(request.metadata) == {"run_id": "42"}


def test_defaults_are_the_bodys_and_null_means_no_managed_proxy() -> None:
    plain = parse_query([]).body.to_request()
    assert (plain.timeout_minutes, plain.proxy_country_code, plain.screen_width) == (60, "us", 1920)
    assert parse_query([("proxyCountryCode", "null")]).body.to_request().proxy_country_code is None
    assert parse_query([("proxyCountryCode", "")]).body.to_request().proxy_country_code is None
    assert parse_query([("proxy_country_code", "fr")]).body.to_request().proxy_country_code == "fr"


@pytest.mark.parametrize(
    ("pairs", "where"),
    [
        ([("timeout", "ten")], "timeout"),
        ([("timeout", "0")], "timeout"),
        ([("browserScreenWidth", "1.5")], "browserScreenWidth"),
        ([("allowResizing", "yes")], "allowResizing"),
        ([("proxyCountryCode", "zz")], "proxyCountryCode"),
        ([("customProxy.port", "3128")], "customProxy.host"),
        ([("customProxy.host", "h"), ("customProxy.port", "99999")], "customProxy.port"),
        ([("profileId", "not-a-uuid")], "profileId"),
        ([("timeout", "5"), ("timeout", "6")], "timeout"),
    ],
)
def test_a_bad_field_is_a_422_naming_the_parameter(
    pairs: list[tuple[str, str]], where: str
) -> None:
    with pytest.raises(ConnectQueryInvalid) as refused:
        parse_query(pairs)
    status, detail, _ = refusal_for(refused.value, 5)
    assert status == 422
    assert isinstance(detail, list)
    assert ["query", where] in [error["loc"] for error in detail]


def test_a_password_or_key_is_never_echoed_in_an_error() -> None:
    with pytest.raises(ConnectQueryInvalid) as refused:
        parse_query([("apiKey", "bu_a"), ("apiKey", "bu_b"), ("customProxy.password", "x" * 300)])
    text = repr(refusal_for(refused.value, 5))
    assert "bu_a" not in text and "bu_b" not in text and "x" * 300 not in text


def test_refusals_are_the_rest_creates() -> None:
    assert refusal_for(e.NotAuthenticated(), 5)[:2] == (401, "Not authenticated")
    assert refusal_for(e.InsufficientCredits(), 5)[0] == 402
    assert refusal_for(e.TimeoutLimitExceeded(), 5)[0] == 403
    status, _, headers = refusal_for(e.ConcurrencyLimitReached(), 7)
    assert (status, headers) == (429, {"Retry-After": "7"})
    assert refusal_for(OperationalError("x", {}, Exception()), 5)[0] == 503
