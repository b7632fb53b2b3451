"""The `ray start` and `ray stop` command lines of `browserfleet cluster` (pure): a head without
browser slots, a worker with them, and the environment each needs (health checks, token auth).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from browserfleet.settings import join_host_port

SLOT_RESOURCE = "browser_slots"
# Head nodes hold no browsers, and run no tasks: the API processes' drivers use no CPU slot.
HEAD_SLOTS = 0
# No usage report leaves the cluster (the flag alone does not cover every Ray process).
QUIET = {"RAY_USAGE_STATS_ENABLED": "0"}


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """The head's node health check (GCS): a node missing `failure_threshold` checks is dead."""

    period_ms: int
    timeout_ms: int
    failure_threshold: int


@dataclass(frozen=True, slots=True)
class RayCommand:
    """argv to run, and the variables to set in its environment (may hold the auth token:
    never log `env`)."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


def head_command(
    ray: tuple[str, ...],
    node_ip: str,
    port: int,
    health: HealthCheck,
    auth_token: str | None,
) -> RayCommand:
    """A head node on node_ip:port: the cluster's GCS, no browser slots, no CPUs, no dashboard."""
    argv = (
        *ray,
        "start",
        "--head",
        f"--node-ip-address={node_ip}",
        f"--port={port}",
        "--num-cpus=0",
        f"--resources={_slots(HEAD_SLOTS)}",
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    env = {
        **QUIET,
        "RAY_health_check_period_ms": str(health.period_ms),
        "RAY_health_check_timeout_ms": str(health.timeout_ms),
        "RAY_health_check_failure_threshold": str(health.failure_threshold),
        **auth_env(auth_token),
    }
    return RayCommand(argv, env)


def worker_command(
    ray: tuple[str, ...],
    address: str,
    node_ip: str,
    slots: int,
    auth_token: str | None,
) -> RayCommand:
    """A worker node on node_ip joining the head at address, with `slots` browser slots."""
    if slots < 1:
        raise ValueError(f"a worker needs at least one browser slot, not {slots}")
    argv = (
        *ray,
        "start",
        f"--address={address}",
        f"--node-ip-address={node_ip}",
        f"--resources={_slots(slots)}",
        "--disable-usage-stats",
    )
    return RayCommand(argv, {**QUIET, **auth_env(auth_token)})


def stop_command(ray: tuple[str, ...]) -> RayCommand:
    """Every Ray process of this machine, at once (SIGKILL)."""
    return RayCommand((*ray, "stop", "--force"))


def auth_env(auth_token: str | None) -> dict[str, str]:
    """Ray's token authentication on, with this token, or explicitly off: never left to a
    token file Ray would otherwise pick up from the home directory."""
    if auth_token is None:
        return {"RAY_AUTH_MODE": "disabled"}
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": auth_token}


def gcs_address(node_ip: str, port: int) -> str:
    return join_host_port(node_ip, port)


def _slots(count: int) -> str:
    return json.dumps({SLOT_RESOURCE: count}, separators=(",", ":"))
