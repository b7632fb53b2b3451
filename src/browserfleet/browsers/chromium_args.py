"""Chromium's command line and first-run preferences for a LaunchSpec: pure values, no I/O.

The process layer (process.py) adds the executable, writes the preferences and spawns.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import PurePath

from browserfleet.browsers.geometry import Geometry
from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec

DISABLE_FEATURES = "--disable-features="
DISABLE_BLINK_FEATURES = "--disable-blink-features="
# Nothing listens on the discard port: Google endpoints Chromium would call fail at once.
DEAD_END = "http://127.0.0.1:9"
START_URL = "about:blank"

# Features that phone home or change behaviour behind our back.
DISABLED_FEATURES: tuple[str, ...] = (
    "AutofillServerCommunication",
    "NetworkTimeServiceQuerying",
    "OptimizationHints",
    "OptimizationGuideModelDownloading",
    "OptimizationGuideOnDeviceModel",
    "CertificateTransparencyComponentUpdater",
    "Translate",
    # The media router discovers cast devices with SSDP multicast: non-loopback traffic.
    "MediaRouter",
    "DialMediaRouteProvider",
)

# Stealth: Blink features that tell a website the browser is automated. AutomationControlled
# is what makes navigator.webdriver true whenever DevTools remote debugging is on.
STEALTH_DISABLED_BLINK_FEATURES: tuple[str, ...] = ("AutomationControlled",)

BASE_ARGS: tuple[str, ...] = (
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-search-engine-choice-screen",
    "--metrics-recording-only",
    f"--gaia-url={DEAD_END}",
    f"--google-apis-url={DEAD_END}",
    f"--component-updater=url-source={DEAD_END}/",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-breakpad",
    # Not --disable-crashpad-for-testing: in Chromium 156 headless=new it makes the network
    # service crash in a loop ("FD ownership violation"). process.py handles crashpad instead.
    # Suppresses the "unsupported command-line flag" infobar (shown for --no-sandbox and
    # --ignore-certificate-errors): in headless=new it takes 56 px from the first tab only.
    "--test-type",
    "--mute-audio",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Port 0: Chromium picks a free port and writes it to DevToolsActivePort (no port race).
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    # No --disable-dev-shm-usage: /dev/shm is a large tmpfs here and it is faster than /tmp.
    # No --hide-scrollbars: pages should lay out as on a desktop browser, scrollbars included.
)


def chromium_args(
    spec: LaunchSpec,
    *,
    user_data_dir: PurePath,
    no_sandbox: bool,
) -> list[str]:
    """Every switch for spec (no executable), ending with the start URL. user_data_dir is the
    profile as the browser sees it (a sandboxed browser sees its own paths, not the host's)."""
    extra_blink, extra_blink_features = _split_switch_list(spec.extra_args, DISABLE_BLINK_FEATURES)
    own_extra, extra_features = _split_switch_list(extra_blink, DISABLE_FEATURES)
    args = [*BASE_ARGS]
    if spec.mode is HeadlessMode.NEW:
        # chromium-headless-shell is headless by nature and takes no --headless.
        args.append("--headless=new")
    if no_sandbox:
        args.append("--no-sandbox")
    args.append(f"--user-data-dir={user_data_dir}")
    args += _screen_args(spec)
    args += _network_args(spec)
    args.append(DISABLE_FEATURES + ",".join(_unique([*DISABLED_FEATURES, *extra_features])))
    blink = _unique(
        [*(STEALTH_DISABLED_BLINK_FEATURES if spec.stealth else ()), *extra_blink_features]
    )
    if blink:
        args.append(DISABLE_BLINK_FEATURES + ",".join(blink))
    args += own_extra
    args.append(START_URL)
    return args


def initial_preferences(spec: LaunchSpec) -> dict[str, object]:
    """The profile's Default/Preferences JSON to write before the first launch."""
    prefs: dict[str, object] = {}
    if not spec.pdf_viewer:
        prefs["plugins"] = {"always_open_pdf_externally": True}
    return prefs


def _screen_args(spec: LaunchSpec) -> list[str]:
    """A screen of the spec's size with a taskbar, and windows at its top left corner.

    Full Chromium gets no --window-size: that switch would give every window it ever opens
    the launch size, so a pooled browser reshaped for a session would open each new window
    (a new context's) at the pool's size and the server would have to resize it while a
    client may already be emulating its own viewport on it. Without the switch a new window
    takes the size of the last active one, the session's; the first window is given it
    right after launch (viewport.fit_window). The headless shell is never reshaped: its
    windows keep the switch's size."""
    geometry = Geometry(spec.screen_width, spec.screen_height)
    args = [f"--screen-info={geometry.screen_info_switch()}", "--window-position=0,0"]
    if spec.mode is HeadlessMode.SHELL:
        args.append(f"--window-size={geometry.window_width},{geometry.window_height}")
    return args


def _network_args(spec: LaunchSpec) -> list[str]:
    args: list[str] = []
    if spec.proxy_server is not None:
        # "<-loopback>" removes the implicit loopback bypass: every request goes via the proxy.
        args += [f"--proxy-server={spec.proxy_server}", "--proxy-bypass-list=<-loopback>"]
    if spec.ignore_cert_errors:
        args.append("--ignore-certificate-errors")
    return args


def _split_switch_list(extra: Iterable[str], switch: str) -> tuple[list[str], list[str]]:
    """Extra args without their `switch` (a list switch such as --disable-features=), and the
    items those named. Chromium honours only the last of a switch, so all must become one.
    """
    others: list[str] = []
    features: list[str] = []
    for arg in extra:
        if arg.startswith(switch):
            features += [f for f in arg.removeprefix(switch).split(",") if f]
        else:
            others.append(arg)
    return others, features


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
