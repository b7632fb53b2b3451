"""BROWSERFLEET_CLUSTER__* settings: a single host by default, addresses validated, the token
kept out of sight."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from browserfleet.settings import ClusterSettings, Settings, parse_port_range, split_host_port


def test_without_an_address_the_host_runs_every_browser_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BROWSERFLEET_CLUSTER__ADDRESS", raising=False)
    cluster = Settings().cluster
    assert cluster.address is None
    assert cluster.node_ip is None
    assert cluster.placement_timeout_s == 20
    assert cluster.pool_per_node == 1
    assert cluster.forward_port_range() == range(47000, 48000)
    assert cluster.auth_token is None


def test_every_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {
        "ADDRESS": " 10.0.0.1:6379 ",
        "NODE_IP": "10.0.0.9",
        "PLACEMENT_TIMEOUT_S": "7.5",
        "POOL_PER_NODE": "3",
        "FORWARD_PORTS": "48000-48010",
        "AUTH_TOKEN": "s3cret-token",
        "HEALTH_CHECK_PERIOD_MS": "1000",
        "HEALTH_CHECK_TIMEOUT_MS": "1500",
        "HEALTH_CHECK_FAILURE_THRESHOLD": "4",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"BROWSERFLEET_CLUSTER__{name}", value)
    cluster = Settings().cluster
    assert cluster.address == "10.0.0.1:6379"
    assert cluster.node_ip == "10.0.0.9"
    assert cluster.placement_timeout_s == 7.5
    assert cluster.pool_per_node == 3
    assert cluster.forward_port_range() == range(48000, 48011)
    assert cluster.auth_token is not None
    assert cluster.auth_token.get_secret_value() == "s3cret-token"
    assert (
        cluster.health_check_period_ms,
        cluster.health_check_timeout_ms,
        cluster.health_check_failure_threshold,
    ) == (1000, 1500, 4)


def test_the_token_never_shows_in_the_settings_repr() -> None:
    cluster = ClusterSettings(auth_token="s3cret-token")
    assert "s3cret-token" not in repr(cluster)
    assert "s3cret-token" not in str(Settings(cluster=cluster).model_dump())


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_address_or_token_is_none(blank: str) -> None:
    cluster = ClusterSettings(address=blank, auth_token=blank, node_ip=blank)
    assert (cluster.address, cluster.auth_token, cluster.node_ip) == (None, None, None)


@pytest.mark.parametrize(
    ("address", "host", "port"),
    [
        ("10.0.0.1:6379", "10.0.0.1", 6379),
        ("head.internal:1", "head.internal", 1),
        ("[fd00::1]:65535", "fd00::1", 65535),
    ],
)
def test_an_address_is_host_and_port(address: str, host: str, port: int) -> None:
    assert split_host_port(address) == (host, port)
    assert ClusterSettings(address=address).address == address


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "10.0.0.1:",
        ":6379",
        "10.0.0.1:0",
        "10.0.0.1:65536",
        "10.0.0.1:port",
        "fd00::1:6379",
        "ray://10.0.0.1:10001",
        "user@head:6379",
        "head name:6379",
    ],
)
def test_anything_else_is_refused_with_the_expected_form(address: str) -> None:
    with pytest.raises(ValidationError, match=r"is not host:port \(e\.g\. 10\.0\.0\.1:6379\)"):
        ClusterSettings(address=address)


@pytest.mark.parametrize("node_ip", ["head", "10.0.0", "10.0.0.1:6379"])
def test_the_node_ip_is_an_ip_address(node_ip: str) -> None:
    with pytest.raises(ValidationError, match="is not an IP address"):
        ClusterSettings(node_ip=node_ip)


def test_an_ipv6_node_ip_is_written_canonically() -> None:
    assert ClusterSettings(node_ip="FD00:0::1").node_ip == "fd00::1"


@pytest.mark.parametrize(
    ("ports", "expected"), [("47000-47999", (47000, 47999)), (" 2000 - 2000 ", (2000, 2000))]
)
def test_forward_ports_are_a_range(ports: str, expected: tuple[int, int]) -> None:
    assert parse_port_range(ports) == expected
    first, last = expected
    assert ClusterSettings(forward_ports=ports).forward_ports == f"{first}-{last}"


@pytest.mark.parametrize("ports", ["47000", "47999-47000", "80-90", "60000-70000", "a-b", "-1-5"])
def test_a_bad_forward_port_range_is_refused(ports: str) -> None:
    with pytest.raises(ValidationError, match=r"47000-47999|1024-65535"):
        ClusterSettings(forward_ports=ports)


@pytest.mark.parametrize(
    "bad",
    [
        {"placement_timeout_s": 0},
        {"pool_per_node": -1},
        {"health_check_failure_threshold": 0},
        {"health_check_period_ms": 10},
        {"adress": "10.0.0.1:6379"},
    ],
)
def test_out_of_range_or_misspelt_settings_fail_loudly(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ClusterSettings(**bad)


def test_a_lease_must_be_renewed_at_least_twice_within_its_ttl() -> None:
    assert ClusterSettings(lease_ttl_s=3, lease_renew_s=1.5).lease_ttl_s == 3
    with pytest.raises(ValidationError, match="at most half of lease_ttl_s"):
        ClusterSettings(lease_ttl_s=3, lease_renew_s=2)
