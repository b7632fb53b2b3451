"""chromium_args and initial_preferences: every LaunchSpec field shows up as intended."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from loopback import RESOLVER_RULES

from browserfleet.browsers.chromium_args import (
    DISABLED_FEATURES,
    chromium_args,
    initial_preferences,
)
from browserfleet.browsers.geometry import TASKBAR_HEIGHT
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec

PROFILE = Path("/srv/bf/sessions/s1/profile")
SPEC = LaunchSpec(HeadlessMode.NEW, 1920, 1080)


def args_of(spec: LaunchSpec = SPEC, *, no_sandbox: bool = False) -> list[str]:
    return chromium_args(spec, user_data_dir=PROFILE, no_sandbox=no_sandbox)


def values(args: list[str], switch: str) -> list[str]:
    return [a.split("=", 1)[1] for a in args if a.split("=", 1)[0] == switch]


def disabled_features(args: list[str]) -> list[str]:
    (merged,) = values(args, "--disable-features")
    return merged.split(",")


def test_mandatory_switches_are_always_there() -> None:
    args = args_of()
    for switch in (
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--gaia-url=http://127.0.0.1:9",
        "--google-apis-url=http://127.0.0.1:9",
        "--component-updater=url-source=http://127.0.0.1:9/",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        "--no-default-browser-check",
        "--password-store=basic",
        "--use-mock-keychain",
        "--disable-breakpad",
        "--mute-audio",
        "--test-type",
    ):
        assert switch in args


def test_switches_are_not_repeated() -> None:
    switches = [a.split("=", 1)[0] for a in args_of() if a.startswith("--")]
    assert len(switches) == len(set(switches))


def test_no_executable_and_about_blank_is_the_only_url_and_last() -> None:
    args = args_of()
    assert args[-1] == "about:blank"
    assert [a for a in args if not a.startswith("--")] == ["about:blank"]


def test_user_data_dir_is_the_given_path() -> None:
    assert values(args_of(), "--user-data-dir") == [str(PROFILE)]


@pytest.mark.parametrize(("no_sandbox", "present"), [(True, True), (False, False)])
def test_no_sandbox_only_when_asked(no_sandbox: bool, present: bool) -> None:
    assert ("--no-sandbox" in args_of(no_sandbox=no_sandbox)) is present


def test_headless_new_mode_asks_for_new_headless() -> None:
    assert values(args_of(), "--headless") == ["new"]


def test_headless_shell_takes_no_headless_switch() -> None:
    args = args_of(replace(SPEC, mode=HeadlessMode.SHELL))
    assert not [a for a in args if a.startswith("--headless")]


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1280, 720), (800, 600), (801, 599)])
def test_the_screen_has_the_spec_size_and_the_window_fills_its_work_area(
    width: int, height: int
) -> None:
    args = args_of(replace(SPEC, screen_width=width, screen_height=height))
    assert values(args, "--screen-info") == [
        f"{{0,0 {width}x{height} workAreaBottom={TASKBAR_HEIGHT}}}"
    ]
    assert values(args, "--window-position") == ["0,0"]
    # Full Chromium's windows take the last window's size (the session's, once set), not a
    # launch size fixed for good; the headless shell, never reshaped, keeps the switch.
    assert values(args, "--window-size") == []
    shell = args_of(
        replace(SPEC, screen_width=width, screen_height=height, mode=HeadlessMode.SHELL)
    )
    assert values(shell, "--window-size") == [f"{width},{height - TASKBAR_HEIGHT}"]


def test_stealth_turns_off_the_automation_flag() -> None:
    assert values(args_of(), "--disable-blink-features") == ["AutomationControlled"]


def test_plain_chromium_without_stealth_keeps_it() -> None:
    assert not [a for a in args_of(replace(SPEC, stealth=False)) if "blink-features" in a]


def test_extra_disable_blink_features_are_merged_into_the_one_switch() -> None:
    spec = replace(SPEC, extra_args=("--disable-blink-features=Foo,AutomationControlled",))
    assert values(args_of(spec), "--disable-blink-features") == ["AutomationControlled,Foo"]
    plain = replace(spec, stealth=False)
    assert values(args_of(plain), "--disable-blink-features") == ["Foo,AutomationControlled"]


def test_direct_connection_has_no_proxy_switches() -> None:
    args = args_of()
    assert not [a for a in args if a.startswith("--proxy")]


def test_proxy_server_sends_everything_through_it_loopback_included() -> None:
    args = args_of(replace(SPEC, proxy_server="127.0.0.1:3128"))
    assert values(args, "--proxy-server") == ["127.0.0.1:3128"]
    assert values(args, "--proxy-bypass-list") == ["<-loopback>"]


@pytest.mark.parametrize(("ignore", "present"), [(True, True), (False, False)])
def test_ignore_cert_errors_only_when_asked(ignore: bool, present: bool) -> None:
    args = args_of(replace(SPEC, ignore_cert_errors=ignore))
    assert ("--ignore-certificate-errors" in args) is present


def test_pdf_viewer_is_not_a_switch() -> None:
    assert args_of(replace(SPEC, pdf_viewer=False)) == args_of(replace(SPEC, pdf_viewer=True))


def test_our_features_are_disabled_in_one_switch() -> None:
    features = disabled_features(args_of())
    assert {
        "AutofillServerCommunication",
        "NetworkTimeServiceQuerying",
        "OptimizationHints",
    } <= set(features)
    assert features == list(DISABLED_FEATURES)


def test_extra_disable_features_are_merged_into_the_one_switch() -> None:
    spec = replace(
        SPEC,
        extra_args=(
            "--disable-features=Foo,OptimizationHints",
            "--lang=de",
            "--disable-features=Bar,,Foo",
        ),
    )
    args = args_of(spec)
    features = disabled_features(args)
    assert features == [*DISABLED_FEATURES, "Foo", "Bar"]
    assert len(features) == len(set(features))
    assert "--lang=de" in args


def test_extra_args_come_after_ours_so_they_win() -> None:
    rules = RESOLVER_RULES
    args = args_of(replace(SPEC, extra_args=(rules, "--window-size=10,10")))
    assert args[-3:] == [rules, "--window-size=10,10", "about:blank"]


def test_equal_specs_give_equal_args() -> None:
    assert args_of(replace(SPEC)) == args_of(SPEC)


def test_preferences_are_empty_with_the_pdf_viewer() -> None:
    assert initial_preferences(SPEC) == {}


def test_preferences_download_pdfs_without_the_pdf_viewer() -> None:
    prefs = initial_preferences(replace(SPEC, pdf_viewer=False))
    assert prefs == {"plugins": {"always_open_pdf_externally": True}}
