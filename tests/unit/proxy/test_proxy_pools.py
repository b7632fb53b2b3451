"""Country pools: parsing the operator's TOML and choosing a sticky upstream per session."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from browserfleet.proxy.pools import (
    NoProxyPool,
    PoolConfig,
    PoolConfigError,
    PoolEntry,
    ProxyRates,
    choose,
    load_pool_config,
    parse_pool_config,
    parse_proxy_url,
    pick,
    sticky_token,
)
from browserfleet.proxy.upstream import HttpUpstream, Socks5Upstream

POOLS = """
strict_countries = false
[countries]
us = ["http://user-{session}:pw@us1.example:8000", "http://user-{session}:pw@us2.example:8000"]
DE = "socks5://de%40user:p%3Ass@de.example:1080"
"*" = ["socks5h://any.example"]
[rates]
managed = "4.50"
custom = 0.25
"""


def test_pool_file_is_parsed_with_rates_as_decimals_and_codes_lower_cased() -> None:
    config = parse_pool_config(POOLS)
    assert set(config.countries) == {"us", "de", "*"}
    assert config.countries["de"] == (PoolEntry("socks5://de%40user:p%3Ass@de.example:1080"),)
    assert config.rates == ProxyRates(Decimal("4.50"), Decimal("0.25"), Decimal("0"))
    assert not config.strict_countries


def test_defaults_mirror_the_cloud_rates() -> None:
    assert parse_pool_config("") == PoolConfig({}, False, ProxyRates())
    assert ProxyRates() == ProxyRates(Decimal("5.00"), Decimal("0"), Decimal("0"))


def test_session_placeholder_becomes_a_sticky_token_and_the_entry_is_sticky() -> None:
    config = parse_pool_config(POOLS)
    first = choose(config, "US", "session-1")
    assert isinstance(first, HttpUpstream)
    assert first.username == f"user-{sticky_token('session-1')}"
    assert first.password == "pw"
    assert first.host in {"us1.example", "us2.example"}
    assert choose(config, "us", "session-1") == first


def test_sessions_spread_over_the_entries_of_a_pool() -> None:
    config = parse_pool_config(POOLS)
    hosts = {getattr(choose(config, "us", f"s{i}"), "host", None) for i in range(32)}
    assert hosts == {"us1.example", "us2.example"}


def test_sticky_token_is_stable_distinct_and_does_not_reveal_the_session() -> None:
    assert sticky_token("abc") == sticky_token("abc")
    assert sticky_token("abc") != sticky_token("abd")
    assert "abc" not in sticky_token("abc")
    assert sticky_token("abc").isalnum()


def test_socks5_url_credentials_are_percent_decoded() -> None:
    chosen = choose(parse_pool_config(POOLS), "de", "s")
    assert chosen == Socks5Upstream("de.example", 1080, "de@user", "p:ss")


def test_a_country_without_pool_falls_back_to_the_star_pool() -> None:
    assert choose(parse_pool_config(POOLS), "fr", "s") == Socks5Upstream("any.example", 1080)


def test_without_fallback_a_country_without_pool_goes_direct() -> None:
    config = parse_pool_config('[countries]\nus = ["http://h:1"]')
    assert choose(config, "fr", "s") is None


def test_strict_countries_refuses_a_country_without_pool() -> None:
    config = parse_pool_config('strict_countries = true\n[countries]\nus = ["http://h:1"]')
    with pytest.raises(NoProxyPool) as info:
        choose(config, "FR", "s")
    assert info.value.country_code == "fr"


def test_strict_countries_still_uses_the_star_pool() -> None:
    config = parse_pool_config('strict_countries = true\n[countries]\n"*" = ["http://h:1"]')
    assert choose(config, "fr", "s") == HttpUpstream("h", 1)


def test_proxy_urls_default_their_ports() -> None:
    assert parse_proxy_url("http://h") == HttpUpstream("h", 80)
    assert parse_proxy_url("socks5://h") == Socks5Upstream("h", 1080)


@pytest.mark.parametrize(
    "text",
    [
        '[countries]\nus = ["ftp://user:secretpw@h:1"]',
        '[countries]\nus = ["http://user:secretpw@h:notaport"]',
        '[countries]\nus = ["http://user:secretpw@:1"]',
        "[countries]\nus = []",
        "[countries]\nus = [1]",
        '[countries]\nus = [{timezone = "Europe/Berlin"}]',
        '[countries]\nus = [{url = "http://user:secretpw@h:1", timezone = "Mars/Olympus"}]',
        '[countries]\nus = [{url = "http://user:secretpw@h:1", timezone = "../../etc/passwd"}]',
        '[countries]\nus = [{url = "http://user:secretpw@h:1", locale = "german"}]',
        '[countries]\nus = [{url = "http://user:secretpw@h:1", city = "Berlin"}]',
        "countries = 3",
        'strict_countries = "yes"',
        '[rates]\nmanaged = "five"',
        '[rates]\nmanaged = "-1"',
        '[rates]\nbogus = "1"',
        "not toml ===",
    ],
)
def test_invalid_pool_files_are_refused_without_quoting_credentials(text: str) -> None:
    with pytest.raises(PoolConfigError) as info:
        parse_pool_config(text)
    assert "secretpw" not in str(info.value)


def test_pool_config_repr_hides_the_urls() -> None:
    assert "pw" not in repr(parse_pool_config(POOLS))


def test_pool_file_is_loaded_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "pools.toml"
    path.write_text(POOLS)
    assert load_pool_config(path) == parse_pool_config(POOLS)
    with pytest.raises(PoolConfigError):
        load_pool_config(tmp_path / "missing.toml")


def test_an_entry_may_say_where_it_is_and_plain_urls_mix_with_such_entries() -> None:
    config = parse_pool_config(
        "[countries]\n"
        'us = ["http://east:1", {url = "http://west:1", timezone = "America/Los_Angeles"}]\n'
        'de = {url = "socks5://de:1", locale = "de-AT", timezone = "Europe/Vienna"}\n'
    )
    assert config.countries["us"] == (
        PoolEntry("http://east:1"),
        PoolEntry("http://west:1", timezone="America/Los_Angeles"),
    )
    assert config.countries["de"] == (PoolEntry("socks5://de:1", "Europe/Vienna", "de-AT"),)
    picked = {pick(config, "us", f"s{i}") for i in range(16)}
    assert picked == set(config.countries["us"])  # sticky per session, spread over the pool


@pytest.mark.parametrize("locale", ["de-DE", "zh-Hant-TW", "es-419", "fil-PH", "en"])
def test_locales_in_bcp47_form_are_accepted(locale: str) -> None:
    text = f'[countries]\nus = [{{url = "http://h:1", locale = "{locale}"}}]'
    assert parse_pool_config(text).countries["us"][0].locale == locale
