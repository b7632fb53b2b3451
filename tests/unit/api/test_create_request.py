"""CreateBrowserSessionRequest: every field's bounds, both casings, and the trip to the domain."""

from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from browserfleet.api.schemas.browsers import (
    CreateBrowserSessionRequest,
    UpdateBrowserSessionRequest,
    parse_metadata_terms,
)
from browserfleet.sessions.model import CustomProxy, SessionRequest


def parse(body: dict[str, Any]) -> CreateBrowserSessionRequest:
    return CreateBrowserSessionRequest.model_validate(body)


def test_empty_body_gives_the_documented_defaults() -> None:
    request = parse({}).to_request()
    assert request == SessionRequest()
    assert (request.timeout_minutes, request.screen_width, request.screen_height) == (
        60,
        1920,
        1080,
    )
    assert request.proxy_country_code == "us"
    assert request.allow_resizing is False
    assert request.pdf_viewer is True


def test_every_field_reaches_the_domain() -> None:
    profile = uuid4()
    body = {
        "profileId": str(profile),
        "proxyCountryCode": "DE",
        "metadata": {"job": "nightly"},
        "timeout": 5,
        "browserScreenWidth": 1280,
        "browserScreenHeight": 720,
        "allowResizing": True,
        "pdfRendererEnabled": False,
        "solveCaptchas": False,
        "customProxy": {
            "host": "proxy.example",
            "port": 3128,
            "username": "u",
            "password": "p",
            "ignoreCertErrors": True,
        },
        "enableRecording": True,
        "extensionIds": [],
    }
    request = parse(body).to_request()
    assert request == SessionRequest(
        timeout_minutes=5,
        screen_width=1280,
        screen_height=720,
        allow_resizing=True,
        pdf_viewer=False,
        enable_recording=True,
        solve_captchas=False,
        proxy_country_code="de",
        custom_proxy=CustomProxy("proxy.example", 3128, "u", "p", True),
        profile_id=str(profile),
        metadata={"job": "nightly"},
    )


def test_snake_case_keys_are_accepted() -> None:
    request = parse({"proxy_country_code": None, "timeout": 5, "browser_screen_width": 800})
    domain = request.to_request()
    assert (domain.proxy_country_code, domain.timeout_minutes, domain.screen_width) == (
        None,
        5,
        800,
    )


def test_unknown_fields_are_ignored() -> None:
    assert parse({"futureField": 1, "timeout": 3}).to_request().timeout_minutes == 3


def test_null_timeout_means_sixty() -> None:
    assert parse({"timeout": None}).to_request().timeout_minutes == 60


def test_timeout_above_240_passes_schema_and_is_refused_by_the_service() -> None:
    assert parse({"timeout": 241}).to_request().timeout_minutes == 241


def test_one_dimension_keeps_the_other_default() -> None:
    assert parse({"browserScreenWidth": 1024}).to_request().screen_height == 1080
    assert parse({"browserScreenHeight": 700}).to_request().screen_width == 1920


@pytest.mark.parametrize(
    "body",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": "ten"},
        {"browserScreenWidth": 319},
        {"browserScreenWidth": 6145},
        {"browserScreenHeight": 319},
        {"browserScreenHeight": 3457},
        {"proxyCountryCode": "gb"},
        {"proxyCountryCode": "zz"},
        {"profileId": "not-a-uuid"},
        {"metadata": {f"k{i}": "v" for i in range(11)}},
        {"metadata": {"k" * 65: "v"}},
        {"metadata": {"": "v"}},
        {"metadata": {"k": "v" * 513}},
        {"metadata": {"k": 1}},
        {"extensionIds": [str(uuid4())]},
        {"extensionIds": "x"},
        {"customProxy": {"host": "", "port": 80}},
        {"customProxy": {"host": "h", "port": 0}},
        {"customProxy": {"host": "h", "port": 65536}},
        {"customProxy": {"host": "h" * 256, "port": 80}},
        {"customProxy": {"host": "h", "port": 80, "username": ""}},
        {"customProxy": {"host": "h", "port": 80, "password": "p" * 256}},
        {"customProxy": {"port": 80}},
        {"allowResizing": "maybe"},
    ],
)
def test_out_of_bounds_values_are_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse(body)


@pytest.mark.parametrize(
    "body",
    [
        {"timeout": 1},
        {"timeout": 240},
        {"browserScreenWidth": 320, "browserScreenHeight": 320},
        {"browserScreenWidth": 6144, "browserScreenHeight": 3456},
        {"metadata": {f"k{i}": "v" * 512 for i in range(10)}},
        {"metadata": {"k" * 64: ""}},
        {"proxyCountryCode": "uk"},
        {"customProxy": {"host": "h", "port": 65535}},
    ],
)
def test_boundary_values_are_accepted(body: dict[str, Any]) -> None:
    parse(body)


def test_extension_error_says_why() -> None:
    with pytest.raises(ValidationError, match="extensions are not supported"):
        parse({"extensionIds": [str(uuid4())]})


def test_only_stop_is_an_action() -> None:
    assert UpdateBrowserSessionRequest.model_validate({"action": "stop"}).action == "stop"
    with pytest.raises(ValidationError):
        UpdateBrowserSessionRequest.model_validate({"action": "start"})


def test_metadata_terms() -> None:
    assert parse_metadata_terms(["env", "team=growth", "a=b=c", "empty="]) == (
        ("env", None),
        ("team", "growth"),
        ("a", "b=c"),
        ("empty", ""),
    )
