"""The `ray start` / `ray stop` command lines `browserfleet cluster` runs, as values."""

from __future__ import annotations

import json

import pytest

from browserfleet.cluster.node_commands import (
    HealthCheck,
    auth_env,
    gcs_address,
    head_command,
    stop_command,
    worker_command,
)

RAY = ("/venv/bin/python", "-m", "ray.scripts.scripts")
HEALTH = HealthCheck(period_ms=1000, timeout_ms=1500, failure_threshold=3)


def _option(argv: tuple[str, ...], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
    return value


def test_a_head_holds_no_browsers_runs_no_tasks_and_has_no_dashboard() -> None:
    command = head_command(RAY, "10.0.0.1", 6390, HEALTH, None)
    assert command.argv == (
        *RAY,
        "start",
        "--head",
        "--node-ip-address=10.0.0.1",
        "--port=6390",
        "--num-cpus=0",
        '--resources={"browser_slots":0}',
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    assert json.loads(_option(command.argv, "resources")) == {"browser_slots": 0}


def test_the_heads_environment_sets_its_health_check_and_no_usage_stats() -> None:
    env = head_command(RAY, "10.0.0.1", 6390, HEALTH, None).env
    assert env == {
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_health_check_period_ms": "1000",
        "RAY_health_check_timeout_ms": "1500",
        "RAY_health_check_failure_threshold": "3",
        "RAY_AUTH_MODE": "disabled",
    }


def test_a_worker_joins_the_head_with_its_browser_slots() -> None:
    command = worker_command(RAY, "10.0.0.1:6390", "10.0.0.7", 4, None)
    assert command.argv == (
        *RAY,
        "start",
        "--address=10.0.0.1:6390",
        "--node-ip-address=10.0.0.7",
        '--resources={"browser_slots":4}',
        "--disable-usage-stats",
    )
    assert command.env == {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}


@pytest.mark.parametrize("slots", [0, -1])
def test_a_worker_without_slots_is_refused(slots: int) -> None:
    with pytest.raises(ValueError, match="at least one browser slot"):
        worker_command(RAY, "10.0.0.1:6390", "10.0.0.7", slots, None)


def test_a_token_turns_ray_token_auth_on_for_head_and_workers_never_in_argv() -> None:
    head = head_command(RAY, "10.0.0.1", 6390, HEALTH, "tok-123")
    worker = worker_command(RAY, "10.0.0.1:6390", "10.0.0.7", 1, "tok-123")
    for command in (head, worker):
        assert command.env["RAY_AUTH_MODE"] == "token"
        assert command.env["RAY_AUTH_TOKEN"] == "tok-123"
        assert not any("tok-123" in part for part in command.argv)


def test_without_a_token_auth_is_off_explicitly_not_left_to_a_token_file() -> None:
    assert auth_env(None) == {"RAY_AUTH_MODE": "disabled"}


def test_stop_kills_every_ray_process_of_the_machine_at_once() -> None:
    assert stop_command(RAY).argv == (*RAY, "stop", "--force")


@pytest.mark.parametrize(
    ("ip", "address"), [("10.0.0.1", "10.0.0.1:6379"), ("fd00::1", "[fd00::1]:6379")]
)
def test_the_gcs_address_of_a_head(ip: str, address: str) -> None:
    assert gcs_address(ip, 6379) == address
