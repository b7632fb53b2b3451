"""The egress guard: which resolved addresses a direct route may reach."""

from __future__ import annotations

import ipaddress

import pytest

from browserfleet.proxy.errors import EgressBlocked, TargetUnreachable
from browserfleet.proxy.guard import EgressGuard, IPAddress, blocked_reason, parse_networks


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "CGNAT"),
        ("100.127.255.254", "CGNAT"),
        ("169.254.169.254", "cloud metadata"),
        ("169.254.10.1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("255.255.255.255", "reserved"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fd00:ec2::254", "cloud metadata"),
        ("fd12:3456::1", "unique local"),
        ("fc00::1", "unique local"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 of 10.0.0.1
        ("::127.0.0.1", "IPv4-compatible"),
        ("2001::1", "Teredo"),
    ],
)
def test_non_public_addresses_are_blocked_with_a_named_reason(address: str, reason: str) -> None:
    found = blocked_reason(ip(address))
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "100.128.0.1",
        "172.32.0.1",
        "2606:4700::1111",
        "::ffff:8.8.8.8",
        "2002:0808:0808::1",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert blocked_reason(ip(address)) is None


def test_scoped_link_local_is_still_blocked() -> None:
    assert blocked_reason(ip("fe80::1%eth0")) == "link-local"


def test_check_raises_egress_blocked_naming_host_address_and_reason() -> None:
    with pytest.raises(EgressBlocked) as info:
        EgressGuard().check("metadata.internal", ip("169.254.169.254"))
    assert info.value.status == 403
    assert str(info.value) == "metadata.internal (169.254.169.254) is not reachable: cloud metadata"


def test_allow_list_overrides_the_default_block() -> None:
    guard = EgressGuard(allow_networks=parse_networks(["127.0.0.0/8", "fd00::/8"]))
    guard.check("127.0.0.1", ip("127.0.0.1"))
    guard.check("x", ip("fd00:ec2::254"))
    with pytest.raises(EgressBlocked):
        guard.check("x", ip("10.0.0.1"))


def test_allow_listing_an_ipv4_network_also_allows_its_mapped_ipv6_form() -> None:
    guard = EgressGuard(allow_networks=parse_networks(["127.0.0.1"]))
    guard.check("x", ip("::ffff:127.0.0.1"))
    with pytest.raises(EgressBlocked):
        guard.check("x", ip("::1"))


def fake_resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return [ip(a) for a in table[host]]

    return resolve


async def test_a_name_resolving_to_a_private_address_is_blocked() -> None:
    guard = EgressGuard(resolver=fake_resolver({"intranet.example": ["10.0.0.5"]}))
    with pytest.raises(EgressBlocked) as info:
        await guard.resolve("intranet.example", 80)
    assert info.value.address == ip("10.0.0.5")


async def test_a_name_with_one_private_address_among_public_ones_is_blocked() -> None:
    guard = EgressGuard(resolver=fake_resolver({"rebind.example": ["93.184.216.34", "127.0.0.1"]}))
    with pytest.raises(EgressBlocked):
        await guard.resolve("rebind.example", 443)


async def test_a_public_name_returns_the_checked_addresses_to_connect_to() -> None:
    guard = EgressGuard(resolver=fake_resolver({"site.example": ["93.184.216.34", "2606:4700::1"]}))
    assert await guard.resolve("site.example", 443) == [ip("93.184.216.34"), ip("2606:4700::1")]


async def test_ip_literals_are_checked_without_resolving() -> None:
    guard = EgressGuard(resolver=fake_resolver({}))
    assert await guard.resolve("93.184.216.34", 80) == [ip("93.184.216.34")]
    with pytest.raises(EgressBlocked):
        await guard.resolve("::ffff:7f00:1", 80)


async def test_an_allow_listed_private_name_resolves() -> None:
    guard = EgressGuard(
        allow_networks=parse_networks(["10.0.0.0/24"]),
        resolver=fake_resolver({"intranet.example": ["10.0.0.5"]}),
    )
    assert await guard.resolve("intranet.example", 80) == [ip("10.0.0.5")]


async def test_an_unresolvable_name_is_unreachable_not_blocked() -> None:
    guard = EgressGuard(resolver=fake_resolver({}))
    with pytest.raises(TargetUnreachable):
        await guard.resolve("nowhere.example", 80)


async def test_the_system_resolver_finds_localhost_and_the_guard_blocks_it() -> None:
    with pytest.raises(EgressBlocked) as info:
        await EgressGuard().resolve("localhost", 80)
    assert info.value.reason == "loopback"
