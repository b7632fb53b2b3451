"""The egress planner gives each session the region of the route it actually takes."""

from __future__ import annotations

import pytest

from browserfleet.browsers.stealth import Region
from browserfleet.egress import PoolPlanner, RouteRegions
from browserfleet.proxy import EgressGuard, parse_pool_config
from browserfleet.regions import COUNTRY_REGIONS
from browserfleet.sessions.model import CustomProxy, SessionRequest

POOLS = parse_pool_config(
    "[countries]\n"
    'de = ["http://de:1"]\n'
    'us = [{url = "http://west:1", timezone = "America/Los_Angeles"}]\n'
)
CUSTOM = Region("Europe/Paris", "fr-FR")
DIRECT = Region("Asia/Tokyo", "ja-JP")


def planner(regions: RouteRegions | None = None) -> PoolPlanner:
    return PoolPlanner(POOLS, EgressGuard(allow_networks=()), regions)


def test_a_country_pool_session_gets_its_countrys_region() -> None:
    plan = planner().plan(SessionRequest(proxy_country_code="de"), "s1")
    assert (plan.kind, plan.region) == ("managed", COUNTRY_REGIONS["de"])


def test_a_pool_entry_may_name_its_own_timezone() -> None:
    plan = planner().plan(SessionRequest(proxy_country_code="us"), "s1")
    assert plan.region == Region("America/Los_Angeles", "en-US")


def test_a_country_without_a_pool_goes_direct_with_the_direct_region() -> None:
    plan = planner(RouteRegions(direct=DIRECT)).plan(SessionRequest(proxy_country_code="fr"), "s")
    assert (plan.kind, plan.region) == ("direct", DIRECT)


def test_custom_and_direct_routes_take_the_settings_or_the_hosts() -> None:
    custom = SessionRequest(custom_proxy=CustomProxy("127.0.0.1", 8080))
    direct = SessionRequest(proxy_country_code=None)
    configured = planner(RouteRegions(custom=CUSTOM, direct=DIRECT))
    assert configured.plan(custom, "s").region == CUSTOM
    assert configured.plan(direct, "s").region == DIRECT
    assert planner().plan(custom, "s").region is None  # the host's own
    assert planner().plan(direct, "s").region is None


def test_the_stealth_settings_take_country_codes_in_any_case_and_refuse_others() -> None:
    from pydantic import ValidationError

    from browserfleet.settings import StealthSettings

    settings = StealthSettings(custom_proxy_country="DE", direct_country="uk")
    assert (settings.enabled, settings.custom_proxy_country, settings.direct_country) == (
        True,
        "de",
        "uk",
    )
    assert StealthSettings().custom_proxy_country is None
    with pytest.raises(ValidationError, match="not a proxy country code"):
        StealthSettings(direct_country="gb")
