"""Telling Ray's processes apart from a process table: their role, cluster and node, and
choosing one cluster's or one node's while another cluster runs on the same machine."""

from __future__ import annotations

import pytest

from browserfleet.cluster.node_processes import RayProcess, RayRole, classify, kill_order, select

RAY = "/venv/lib/python3.11/site-packages/ray"
PY = "/venv/bin/python"
LOGS = "--logs-dir=/tmp/ray/session_x/logs"


def gcs(ip: str, port: int) -> list[str]:
    return [f"{RAY}/core/src/ray/gcs/gcs_server", f"--gcs_server_port={port}",
            f"--node-ip-address={ip}", "--log_dir=/tmp/ray/session_x/logs"]  # fmt: skip


def raylet(ip: str, address: str) -> list[str]:
    return [f"{RAY}/core/src/ray/raylet/raylet", "--raylet_socket_name=/tmp/ray/s/raylet",
            f"--node_ip_address={ip}", f"--gcs-address={address}",
            f"--python_worker_command={PY} {RAY}/_private/workers/setup_worker.py"]  # fmt: skip


def log_monitor(ip: str, address: str) -> list[str]:
    return [PY, "-u", f"{RAY}/_private/log_monitor.py", LOGS, f"--gcs-address={address}",
            f"--node-ip-address={ip}"]  # fmt: skip


def monitor(address: str) -> list[str]:
    return [PY, "-u", f"{RAY}/autoscaler/_private/monitor.py", LOGS, f"--gcs-address={address}"]


def dashboard(ip: str, address: str) -> list[str]:
    return [PY, f"{RAY}/dashboard/dashboard.py", "--host=127.0.0.1", "--port=8265",
            f"--gcs-address={address}", f"--node-ip-address={ip}", "--minimal"]  # fmt: skip


def test_each_ray_process_is_told_by_its_command_line() -> None:
    head = "10.0.0.1:6390"
    cases = [
        (gcs("10.0.0.1", 6390), "gcs_server", RayRole.GCS, head, "10.0.0.1"),
        (raylet("10.0.0.7", head), "raylet", RayRole.RAYLET, head, "10.0.0.7"),
        (log_monitor("10.0.0.7", head), "python", RayRole.HELPER, head, "10.0.0.7"),
        (monitor(head), "python", RayRole.HELPER, head, None),
        (dashboard("10.0.0.1", head), "python", RayRole.HELPER, head, "10.0.0.1"),
        (["ray::BrowserActor.start"], "ray::BrowserAct", RayRole.WORKER, None, None),
        (["ray::IDLE"], "ray::IDLE", RayRole.WORKER, None, None),
    ]
    for cmdline, name, role, address, node_ip in cases:
        found = classify(10, 1, name, cmdline)
        assert found is not None, cmdline
        assert (found.role, found.gcs_address, found.node_ip) == (role, address, node_ip)


@pytest.mark.parametrize(
    ("name", "cmdline"),
    [
        ("python", [PY, "-m", "pytest", "tests/e2e/test_cluster_cli.py"]),
        ("python", [PY, "-m", "browserfleet.cli.main", "cluster", "down"]),
        ("bash", ["bash", "-c", "grep raylet log"]),
        ("chromium", ["/usr/lib/chromium/chromium", "--remote-debugging-port=0"]),
        ("kworker/0:1", []),
    ],
)
def test_other_processes_are_not_ray(name: str, cmdline: list[str]) -> None:
    assert classify(10, 1, name, cmdline) is None


def _machine() -> list[RayProcess]:
    """Two clusters on one machine: ours (head .5, worker .6) and another one (head .2, .3)."""
    ours, theirs = "127.0.0.5:6390", "127.0.0.2:6380"
    table = [
        (100, 1, "gcs_server", gcs("127.0.0.5", 6390)),
        (101, 1, "python", monitor(ours)),
        (102, 1, "python", dashboard("127.0.0.5", ours)),
        (103, 1, "python", log_monitor("127.0.0.5", ours)),
        (104, 1, "raylet", raylet("127.0.0.5", ours)),
        (105, 104, "ray::DashboardA", ["ray::DashboardAgent"]),
        (110, 1, "python", log_monitor("127.0.0.6", ours)),
        (111, 1, "raylet", raylet("127.0.0.6", ours)),
        (112, 111, "ray::BrowserAct", ["ray::BrowserActor"]),
        (200, 1, "gcs_server", gcs("127.0.0.2", 6380)),
        (201, 1, "python", monitor(theirs)),
        (204, 1, "raylet", raylet("127.0.0.2", theirs)),
        (205, 204, "ray::IDLE", ["ray::IDLE"]),
        (211, 1, "raylet", raylet("127.0.0.3", theirs)),
        (212, 211, "ray::RuntimeEnv", ["ray::RuntimeEnvAgent"]),
    ]
    found = [classify(pid, ppid, name, cmd) for pid, ppid, name, cmd in table]
    return [p for p in found if p is not None]


def _pids(processes: list[RayProcess]) -> set[int]:
    return {p.pid for p in processes}


def test_a_cluster_is_every_process_naming_its_address_and_its_raylets_workers() -> None:
    chosen = select(_machine(), address="127.0.0.5:6390")
    assert _pids(chosen) == {100, 101, 102, 103, 104, 105, 110, 111, 112}


def test_a_node_is_its_raylet_workers_and_helpers_and_the_heads_gcs_helpers() -> None:
    assert _pids(select(_machine(), node_ip="127.0.0.6")) == {110, 111, 112}
    assert _pids(select(_machine(), node_ip="127.0.0.5")) == {100, 101, 102, 103, 104, 105}


def test_a_node_ip_of_another_cluster_selects_nothing_of_ours() -> None:
    assert select(_machine(), address="127.0.0.5:6390", node_ip="127.0.0.3") == []
    assert _pids(select(_machine(), node_ip="127.0.0.3")) == {211, 212}


def test_without_a_scope_every_ray_process_is_chosen() -> None:
    assert len(select(_machine())) == len(_machine())


def test_raylets_die_first_and_the_gcs_last() -> None:
    roles = [p.role for p in kill_order(_machine())]
    assert roles[: roles.count(RayRole.RAYLET)] == [RayRole.RAYLET] * roles.count(RayRole.RAYLET)
    assert roles[-roles.count(RayRole.GCS) :] == [RayRole.GCS] * roles.count(RayRole.GCS)
