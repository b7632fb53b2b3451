"""Stealth's pure values: the desktop user agent, the identity read back, the priming steps."""

from __future__ import annotations

import pytest

from browserfleet.browsers.stealth import (
    FOCUS,
    BrowserIdentity,
    Region,
    accept_language,
    desktop_user_agent,
    identity_from,
    priming,
)
from browserfleet.cdp.primer import RESUME, Priming, TargetKind, fits, target_kind

HEADLESS_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/156.0.0.0 Safari/537.36"
)
# What Chromium 156's headless=new answers to IDENTITY_JS (measured).
ANSWER = {
    "userAgent": HEADLESS_UA,
    "platform": "Linux x86_64",
    "data": {
        "architecture": "x86",
        "bitness": "64",
        "brands": [
            {"brand": "Not:A-Brand", "version": "8"},
            {"brand": "Chromium", "version": "156"},
        ],
        "fullVersionList": [
            {"brand": "Not:A-Brand", "version": "8.0.0.0"},
            {"brand": "Chromium", "version": "156.0.8078.108"},
        ],
        "mobile": False,
        "model": "",
        "platform": "Linux",
        "platformVersion": "",
        "wow64": False,
    },
}
IDENTITY = identity_from(ANSWER)


def test_the_desktop_user_agent_names_chrome_with_the_same_version() -> None:
    assert desktop_user_agent(HEADLESS_UA) == HEADLESS_UA.replace("HeadlessChrome", "Chrome")
    assert "Headless" not in desktop_user_agent(HEADLESS_UA)
    assert desktop_user_agent(IDENTITY.user_agent) == IDENTITY.user_agent  # idempotent


def test_the_identity_keeps_the_browsers_own_client_hints() -> None:
    assert IDENTITY.user_agent.endswith("Chrome/156.0.0.0 Safari/537.36")
    assert IDENTITY.platform == "Linux x86_64"
    assert IDENTITY.metadata == {
        "brands": ANSWER["data"]["brands"],  # type: ignore[index]
        "fullVersionList": ANSWER["data"]["fullVersionList"],  # type: ignore[index]
        "fullVersion": "156.0.8078.108",
        "platform": "Linux",
        "platformVersion": "",
        "architecture": "x86",
        "model": "",
        "mobile": False,
        "bitness": "64",
        "wow64": False,
    }


@pytest.mark.parametrize(
    "answer",
    [None, [], {"userAgent": HEADLESS_UA}, {**ANSWER, "data": None}, {**ANSWER, "platform": 1}],
)
def test_an_answer_that_is_not_a_chromiums_is_refused(answer: object) -> None:
    with pytest.raises(ValueError):
        identity_from(answer)


@pytest.mark.parametrize(
    ("locale", "header"),
    [
        ("de-DE", "de-DE,de,en-US,en"),
        ("en-US", "en-US,en"),
        ("en-GB", "en-GB,en"),
        ("pt-BR", "pt-BR,pt,en-US,en"),
        ("sr-RS", "sr-RS,sr,en-US,en"),
    ],
)
def test_languages_are_the_locale_its_language_then_english(locale: str, header: str) -> None:
    assert accept_language(locale) == header


def test_without_a_region_targets_get_the_user_agent_and_focus() -> None:
    steps = priming(IDENTITY, None)
    assert steps.frame == (steps.frame[0], FOCUS)
    assert [m for m, _ in steps.frame] == [
        "Network.setUserAgentOverride",
        "Emulation.setFocusEmulationEnabled",
    ]
    assert steps.worker == steps.frame[:1]
    (_, params) = steps.frame[0]
    assert params["userAgent"] == IDENTITY.user_agent
    assert params["userAgentMetadata"] == IDENTITY.metadata
    assert "acceptLanguage" not in params


def test_a_region_sets_zone_locale_languages_and_position_on_frames() -> None:
    steps = priming(IDENTITY, Region("Europe/Berlin", "de-DE", 52.5, 13.367))
    assert steps.frame == (
        (
            "Network.setUserAgentOverride",
            {
                "userAgent": IDENTITY.user_agent,
                "platform": "Linux x86_64",
                "userAgentMetadata": IDENTITY.metadata,
                "acceptLanguage": "de-DE,de,en-US,en",
            },
        ),
        ("Emulation.setFocusEmulationEnabled", {"enabled": True}),
        ("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Berlin"}),
        ("Emulation.setLocaleOverride", {"locale": "de-DE"}),
        (
            "Emulation.setGeolocationOverride",
            {"latitude": 52.5, "longitude": 13.367, "accuracy": 5000},
        ),
    )
    # Workers have no Emulation domain: they get the user agent and languages only.
    assert steps.worker == steps.frame[:1]


def test_a_region_without_a_point_sets_no_position() -> None:
    steps = priming(IDENTITY, Region("America/Los_Angeles", "en-US"))
    assert "Emulation.setGeolocationOverride" not in [m for m, _ in steps.frame]


def test_the_steps_never_resume_a_target_themselves() -> None:
    region = Region("Europe/Berlin", "de-DE", 52.5, 13.367)
    for steps in (priming(IDENTITY, None), priming(IDENTITY, region)):
        assert RESUME not in [m for m, _ in (*steps.frame, *steps.worker)]


@pytest.mark.parametrize(
    ("target_type", "kind"),
    [
        ("page", TargetKind.FRAME),
        ("iframe", TargetKind.FRAME),
        ("worker", TargetKind.WORKER),
        ("shared_worker", TargetKind.WORKER),
        ("service_worker", TargetKind.WORKER),
        ("browser", TargetKind.OTHER),
        ("tab", TargetKind.OTHER),
        ("auction_worklet", TargetKind.OTHER),
    ],
)
def test_target_kinds(target_type: str, kind: TargetKind) -> None:
    assert target_kind(target_type) is kind


def test_identity_is_a_value() -> None:
    assert identity_from(ANSWER) == IDENTITY
    assert isinstance(IDENTITY, BrowserIdentity)


@pytest.mark.parametrize(
    ("window", "fits_it"),
    [
        ({"width": 1280, "height": 672}, True),
        ({"width": 400, "height": 300}, True),  # a popup keeps its own smaller size
        ({"width": 1920, "height": 1032}, False),  # launched for a bigger screen
        ({"width": 1280, "height": 673}, False),
        ({"width": "1280"}, False),
        (None, False),
    ],
)
def test_a_new_window_fits_the_rule_when_no_larger(window: object, fits_it: bool) -> None:
    assert fits(window, {"left": 0, "top": 0, "width": 1280, "height": 672}) is fits_it


@pytest.mark.parametrize(
    ("window", "fits_it"),
    [
        ({"width": 1920, "height": 1032}, False),  # the launch size: a default window
        ({"width": 1920, "height": 1031}, True),  # a popup's own size
        ({"width": 2560, "height": 1392}, True),
        ({"width": 2561, "height": 1392}, False),
    ],
)
def test_a_window_of_the_launch_size_gets_a_bigger_rule(window: object, fits_it: bool) -> None:
    """A pooled browser launched at 1920x1032 and reshaped to a bigger screen: its own new
    windows (new tabs, new contexts) come at the launch size and must grow to the rule."""
    rule: dict[str, object] = {"left": 0, "top": 0, "width": 2560, "height": 1392}
    assert fits(window, rule, (1920, 1032)) is fits_it
    assert fits({"width": 2560, "height": 1392}, rule, (2560, 1392))  # never reshaped


def test_the_window_rule_rides_along_with_or_without_stealth() -> None:
    window: dict[str, object] = {"width": 1280, "height": 672}
    assert priming(None, None, window) == Priming(window=window)  # stealth off: no steps
    assert priming(IDENTITY, None, window).window == window
