"""Stealth: what browserfleet tells every target so a website sees a person's desktop Chrome.

Pure values. The launch switches (chromium_args.py) turn off what the browser can be told once
(navigator.webdriver); the rest is per target, through the TargetPrimer (cdp/primer.py):
the user agent without "Headless" and with the browser's own client hints, and the session's
region (timezone, locale and languages, geolocation) once the session's egress is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from browserfleet.cdp.client import JsonObject
from browserfleet.cdp.primer import Priming, Step

# Read once from a launched browser, before any override: its own answers are the truth that
# the overrides repeat (a client-hints list we made up could contradict the binary).
IDENTITY_JS = """(async () => {
  const d = navigator.userAgentData;
  const high = d ? await d.getHighEntropyValues(
    ['architecture', 'bitness', 'fullVersionList', 'model', 'platformVersion', 'wow64']) : null;
  return {userAgent: navigator.userAgent, platform: navigator.platform, data: high};
})()"""

HEADLESS_PRODUCT = "HeadlessChrome/"
PRODUCT = "Chrome/"


@dataclass(frozen=True, slots=True)
class BrowserIdentity:
    """A browser binary's user agent as a desktop Chrome of the same version tells it."""

    user_agent: str
    platform: str  # navigator.platform, e.g. "Linux x86_64"
    metadata: JsonObject = field(hash=False)  # Emulation.UserAgentMetadata


@dataclass(frozen=True, slots=True)
class Region:
    """Where the session appears to be: follows its egress route."""

    timezone: str  # IANA name, e.g. "Europe/Berlin"
    locale: str  # BCP 47, e.g. "de-DE"
    latitude: float | None = None
    longitude: float | None = None


def desktop_user_agent(user_agent: str) -> str:
    """The same user agent as a headed Chrome sends: no "HeadlessChrome" product."""
    return user_agent.replace(HEADLESS_PRODUCT, PRODUCT)


def identity_from(value: object) -> BrowserIdentity:
    """Parse IDENTITY_JS's answer; ValueError when it is not what a Chromium returns."""
    if not isinstance(value, dict):
        raise ValueError(f"not an identity: {value!r}")
    user_agent, platform, data = value.get("userAgent"), value.get("platform"), value.get("data")
    if not isinstance(user_agent, str) or not isinstance(platform, str):
        raise ValueError(f"no user agent in {value!r}")
    if not isinstance(data, dict) or not isinstance(data.get("brands"), list):
        raise ValueError(f"no client hints in {value!r}")
    full_versions = data.get("fullVersionList")
    chromium = [
        b.get("version")
        for b in (full_versions if isinstance(full_versions, list) else [])
        if isinstance(b, dict) and b.get("brand") == "Chromium"
    ]
    metadata: JsonObject = {
        "brands": _brands(data.get("brands")),
        "fullVersionList": _brands(full_versions),
        "fullVersion": chromium[0] if chromium else "",
        "platform": str(data.get("platform", "")),
        "platformVersion": str(data.get("platformVersion", "")),
        "architecture": str(data.get("architecture", "")),
        "model": str(data.get("model", "")),
        "mobile": bool(data.get("mobile", False)),
        "bitness": str(data.get("bitness", "")),
        "wow64": bool(data.get("wow64", False)),
    }
    return BrowserIdentity(desktop_user_agent(user_agent), platform, metadata)


def accept_language(locale: str) -> str:
    """navigator.languages as a person with that locale has them: the locale, its language,
    then English as a second language. Chrome adds the q-values to the header itself."""
    language = locale.split("-", 1)[0]
    ordered = [locale, language, "en-US", "en"] if language != "en" else [locale, "en"]
    return ",".join(dict.fromkeys(ordered))


# A person's page is in a focused window: document.hasFocus() is true, as it is with
# Playwright (which asks the same) but not with a CDP-only client or Puppeteer.
FOCUS: Step = ("Emulation.setFocusEmulationEnabled", {"enabled": True})

# A city-sized circle: where the region's reference city is, not a street address.
GEOLOCATION_ACCURACY_M = 5000


def priming(
    identity: BrowserIdentity | None, region: Region | None, window: JsonObject | None = None
) -> Priming:
    """The commands every target gets; without a region, the browser's own locale and zone;
    without an identity (stealth off), none. `window` is the new-window rule (geometry.py)."""
    if identity is None:
        return Priming(window=window)
    user_agent: JsonObject = {
        "userAgent": identity.user_agent,
        "platform": identity.platform,
        "userAgentMetadata": identity.metadata,
    }
    if region is None:
        step: Step = ("Network.setUserAgentOverride", user_agent)
        return Priming(frame=(step, FOCUS), worker=(step,), window=window)
    user_agent["acceptLanguage"] = accept_language(region.locale)
    agent: Step = ("Network.setUserAgentOverride", user_agent)
    frame: list[Step] = [
        agent,
        FOCUS,
        ("Emulation.setTimezoneOverride", {"timezoneId": region.timezone}),
        ("Emulation.setLocaleOverride", {"locale": region.locale}),
    ]
    if region.latitude is not None and region.longitude is not None:
        position: JsonObject = {
            "latitude": region.latitude,
            "longitude": region.longitude,
            "accuracy": GEOLOCATION_ACCURACY_M,
        }
        frame.append(("Emulation.setGeolocationOverride", position))
    return Priming(frame=tuple(frame), worker=(agent,), window=window)


def _brands(value: object) -> list[JsonObject]:
    items = value if isinstance(value, list) else []
    return [
        {"brand": str(b.get("brand", "")), "version": str(b.get("version", ""))}
        for b in items
        if isinstance(b, dict)
    ]
