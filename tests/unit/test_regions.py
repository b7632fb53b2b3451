"""The country → region table: an answer for every API country code, each one real."""

from __future__ import annotations

import re
import zoneinfo

import pytest

from browserfleet.api.schemas.countries import COUNTRY_CODES
from browserfleet.browsers.stealth import Region
from browserfleet.regions import COUNTRY_REGIONS, region_for

LOCALE = re.compile(r"[a-z]{2,3}-[A-Z]{2}")


def test_every_api_country_code_has_a_region_and_nothing_else_does() -> None:
    assert len(COUNTRY_CODES) == 248
    assert set(COUNTRY_REGIONS) == COUNTRY_CODES


@pytest.mark.parametrize("code", sorted(COUNTRY_REGIONS))
def test_each_region_is_a_real_zone_a_locale_and_a_point_on_earth(code: str) -> None:
    region = COUNTRY_REGIONS[code]
    zoneinfo.ZoneInfo(region.timezone)  # raises for a name the tz database lacks
    assert LOCALE.fullmatch(region.locale), region.locale
    assert region.latitude is not None and -90 <= region.latitude <= 90
    assert region.longitude is not None and -180 <= region.longitude <= 180


@pytest.mark.parametrize(
    ("code", "timezone", "locale"),
    [
        ("de", "Europe/Berlin", "de-DE"),
        ("us", "America/New_York", "en-US"),  # the most populous of its zones
        ("ru", "Europe/Moscow", "ru-RU"),
        ("br", "America/Sao_Paulo", "pt-BR"),
        ("au", "Australia/Sydney", "en-AU"),
        ("uk", "Europe/London", "en-GB"),  # the API says uk, not gb
        ("jp", "Asia/Tokyo", "ja-JP"),
        ("xk", "Europe/Belgrade", "sq-XK"),  # not in the tz database's country table
    ],
)
def test_known_countries(code: str, timezone: str, locale: str) -> None:
    region = COUNTRY_REGIONS[code]
    assert (region.timezone, region.locale) == (timezone, locale)


def test_codes_are_case_insensitive() -> None:
    assert region_for("DE") == COUNTRY_REGIONS["de"]


def test_an_operator_locale_keeps_the_zone_and_its_point() -> None:
    region = region_for("de", locale="en-GB")
    assert region == Region("Europe/Berlin", "en-GB", 52.5, 13.367)


def test_an_operator_timezone_drops_the_point_of_another_zone() -> None:
    assert region_for("us", timezone="America/Los_Angeles") == Region(
        "America/Los_Angeles", "en-US"
    )


def test_an_unknown_code_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        region_for("gb")
