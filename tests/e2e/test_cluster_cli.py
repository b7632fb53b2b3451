"""`browserfleet cluster` and `doctor` against real Ray nodes: a head on 127.0.0.5:6390 and a
worker with two browser slots on 127.0.0.6, started, listed, checked and stopped by the command
line, with Ray's token authentication on.

Other clusters may run on this machine (other tests use 127.0.0.2-.4 and port 6380): every
`down` here names its cluster or node, and the processes are watched by their own command
lines, not through the code under test.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import psutil
import pytest
from fleet_server import wait_for

from browserfleet.cli.doctor_cluster import check_cluster
from browserfleet.cli.findings import Status
from browserfleet.settings import ClusterSettings

HEAD_IP, WORKER_IP, PORT = "127.0.0.5", "127.0.0.6", 6390
ADDRESS = f"{HEAD_IP}:{PORT}"
PRIVATE_PORT = PORT + 2  # the cluster of the private-PID-namespace test
NOTHING_THERE = f"{HEAD_IP}:{PORT + 1}"
CLI_TIMEOUT_S = 240.0  # `ray start` takes 3-6 s idle, 20 s and more on a loaded machine
pytestmark = [pytest.mark.e2e]


class SuiteResources(Protocol):
    """The suite's leak-checked data dirs (tests/conftest.py)."""

    def new_data_dir(self) -> Path: ...


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "browserfleet.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def ours() -> set[int]:
    """Live processes of our two nodes, found by their command lines (and their raylets'
    children: Ray's workers and agents name nothing)."""
    marks = {
        f"--gcs-address={ADDRESS}",
        f"--gcs_server_port={PORT}",
        f"--node-ip-address={HEAD_IP}",
        f"--node-ip-address={WORKER_IP}",
        f"--node_ip_address={HEAD_IP}",
        f"--node_ip_address={WORKER_IP}",
    }
    found: set[int] = set()
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            if marks & set(proc.info["cmdline"] or []):
                found.add(proc.pid)
                found |= {c.pid for c in proc.children(recursive=True) if _alive(c)}
        except psutil.Error:
            continue
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def of_node(ip: str) -> set[int]:
    found = set()
    for pid in ours():
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.Error:
            continue
        if f"--node-ip-address={ip}" in cmdline or f"--node_ip_address={ip}" in cmdline:
            found.add(pid)
    return found


@pytest.fixture(scope="module")
def token() -> str:
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def env(token: str) -> dict[str, str]:
    return {
        **os.environ,
        "RAY_USAGE_STATS_ENABLED": "0",
        "BROWSERFLEET_CLUSTER__AUTH_TOKEN": token,
        "BROWSERFLEET_CLUSTER__HEALTH_CHECK_PERIOD_MS": "1000",
        "BROWSERFLEET_CLUSTER__HEALTH_CHECK_TIMEOUT_MS": "1000",
        "BROWSERFLEET_CLUSTER__HEALTH_CHECK_FAILURE_THRESHOLD": "3",
    }


@pytest.fixture(scope="module")
def cluster(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The head and the worker, up for the module; down (this cluster only) after it."""
    if ours():
        pytest.fail(f"Ray processes of {ADDRESS} run already (a leaked run?): {sorted(ours())}")
    try:
        head = cli(env, "cluster", "up", "--head", HEAD_IP, "--port", str(PORT))
        assert head.returncode == 0, head.stderr
        assert f"head up at {ADDRESS} (no browser slots)" in head.stdout
        worker = cli(
            env, "cluster", "up", "--join", ADDRESS, "--node-ip", WORKER_IP, "--slots", "2"
        )
        assert worker.returncode == 0, worker.stderr
        assert f"{WORKER_IP} joined {ADDRESS} with 2 browser slot(s)" in worker.stdout
        yield env
    finally:
        cli(env, "cluster", "down", "--address", ADDRESS)
        wait_for(lambda: not ours(), timeout=30, what=f"no Ray process of {ADDRESS}")


def node_line(status: str, ip: str) -> list[str]:
    (line,) = [line for line in status.splitlines() if line.startswith(f"{ip} ")]
    return line.split()


def test_status_lists_the_head_without_slots_and_the_worker_with_its_two(
    cluster: dict[str, str],
) -> None:
    status = cli(cluster, "cluster", "status", "--address", ADDRESS)
    assert status.returncode == 0, status.stderr
    first = status.stdout.splitlines()[0]
    assert first == f"cluster {ADDRESS}: 2 node(s) alive, browser slots 2 free of 2"
    assert node_line(status.stdout, HEAD_IP)[1:3] == ["alive", "0/0"]
    assert node_line(status.stdout, WORKER_IP)[1:3] == ["alive", "2/2"]


def test_status_reads_the_address_from_the_settings(cluster: dict[str, str]) -> None:
    status = cli({**cluster, "BROWSERFLEET_CLUSTER__ADDRESS": ADDRESS}, "cluster", "status")
    assert status.returncode == 0, status.stderr
    assert node_line(status.stdout, WORKER_IP)[1:3] == ["alive", "2/2"]


def test_status_with_the_wrong_token_is_refused_and_says_to_check_it(
    cluster: dict[str, str],
) -> None:
    wrong = {**cluster, "BROWSERFLEET_CLUSTER__AUTH_TOKEN": secrets.token_hex(16)}
    status = cli(wrong, "cluster", "status", "--address", ADDRESS)
    assert status.returncode == 1
    assert "check BROWSERFLEET_CLUSTER__AUTH_TOKEN" in status.stderr
    assert cluster["BROWSERFLEET_CLUSTER__AUTH_TOKEN"] not in status.stderr + status.stdout


def test_up_again_leaves_the_running_nodes_alone(cluster: dict[str, str]) -> None:
    before = ours()
    head = cli(cluster, "cluster", "up", "--head", HEAD_IP, "--port", str(PORT))
    assert head.returncode == 0, head.stderr
    assert f"head already running at {ADDRESS} (2 node(s) alive)" in head.stdout
    join = ["cluster", "up", "--join", ADDRESS, "--node-ip", WORKER_IP]
    again = cli(cluster, *join, "--slots", "2")
    assert again.returncode == 0, again.stderr
    assert f"{WORKER_IP} already joined {ADDRESS} with 2 browser slot(s)" in again.stdout
    other = cli(cluster, *join, "--slots", "3")
    assert other.returncode == 1
    assert f"`browserfleet cluster down --node-ip {WORKER_IP}` first" in other.stderr
    assert ours() == before  # no second raylet, nothing restarted


def test_doctor_passes_against_the_cluster(
    cluster: dict[str, str], suite_resources: SuiteResources
) -> None:
    data_dir = suite_resources.new_data_dir()
    doctor = cli(
        {**cluster, "BROWSERFLEET_CLUSTER__ADDRESS": ADDRESS},
        "doctor",
        "--isolation",
        "none",
        "--data-dir",
        str(data_dir),
        "--port",
        "0",
    )
    expected = f"OK   cluster: {ADDRESS}: 2 node(s) alive, 1 with browser slots (2 free of 2)"
    assert expected in doctor.stdout.splitlines(), doctor.stdout + doctor.stderr
    assert doctor.returncode == 0, doctor.stdout


async def test_doctor_fails_at_once_against_an_address_with_no_cluster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The check hands Ray its auth mode through the environment: restored after the test.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    started = time.monotonic()
    finding = await check_cluster(ClusterSettings(address=NOTHING_THERE))
    assert finding is not None
    assert finding.status is Status.FAIL
    assert finding.detail == f"no Ray head answers at {NOTHING_THERE} (Connection refused)"
    assert "browserfleet cluster up --head" in finding.fix
    assert time.monotonic() - started < 5


async def test_doctor_has_no_cluster_check_without_an_address() -> None:
    assert await check_cluster(ClusterSettings()) is None


def test_a_head_on_a_taken_port_is_refused_before_ray_starts(env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind((HEAD_IP, 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = cli(env, "cluster", "up", "--head", HEAD_IP, "--port", str(port))
    assert up.returncode == 1
    assert f"cannot start a head on {HEAD_IP}:{port}: Address already in use" in up.stderr


def test_down_of_one_node_stops_only_its_processes(cluster: dict[str, str]) -> None:
    head, worker = of_node(HEAD_IP), of_node(WORKER_IP)
    assert head and worker
    down = cli(cluster, "cluster", "down", "--node-ip", WORKER_IP)
    assert down.returncode == 0, down.stderr
    assert f"Ray process(es) of the node {WORKER_IP}" in down.stdout
    wait_for(lambda: not of_node(WORKER_IP), timeout=15, what=f"no process of {WORKER_IP}")
    assert of_node(HEAD_IP) == head

    def worker_state() -> tuple[str, str] | None:
        status = cli(cluster, "cluster", "status", "--address", ADDRESS)
        assert status.returncode == 0, status.stderr
        state, slots = node_line(status.stdout, WORKER_IP)[1:3]
        return (state, slots.split("/")[0]) if state == "dead" else None

    # The head declares it dead once its health checks fail (three, a second apart, here).
    assert wait_for(worker_state, timeout=30, what="the head to declare the node dead") == (
        "dead",
        "0",
    )
    again = cli(cluster, "cluster", "down", "--node-ip", WORKER_IP)
    assert again.returncode == 0, again.stderr
    assert f"no Ray process of the node {WORKER_IP} runs on this machine" in again.stdout


def test_down_of_the_cluster_leaves_no_ray_process_of_it(cluster: dict[str, str]) -> None:
    assert ours()
    down = cli(cluster, "cluster", "down", "--address", ADDRESS)
    assert down.returncode == 0, down.stderr
    wait_for(lambda: not ours(), timeout=15, what=f"no Ray process of {ADDRESS}")
    status = cli(cluster, "cluster", "status", "--address", ADDRESS)
    assert status.returncode == 1
    assert f"no Ray head answers at {ADDRESS}" in status.stderr
    again = cli(cluster, "cluster", "down", "--address", ADDRESS)
    assert again.returncode == 0, again.stderr
    assert "runs on this machine" in again.stdout


# A Ray process by its `ps -o args` (as CI's leak check tells them).
RAY_ARGS = re.compile(
    r"^\S*/(raylet|gcs_server) |^ray::|ray/(_private/log_monitor|autoscaler/_private/monitor"
    r"|dashboard/dashboard|dashboard/agent|_private/runtime_env/agent/main"
    r"|_private/workers/(default|setup)_worker)\.py"
)


def test_down_without_a_scope_stops_every_ray_process_even_helpers_of_a_killed_raylet(
    env: dict[str, str],
) -> None:
    """`down` alone is `ray stop --force` for the whole machine, so it runs where it cannot
    reach another cluster: in a PID namespace of its own, whose processes all die with it."""
    address = f"{HEAD_IP}:{PRIVATE_PORT}"
    script = f"""
        bf() {{ {sys.executable} -m browserfleet.cli.main "$@"; }}
        bf cluster up --head {HEAD_IP} --port {PRIVATE_PORT} >&2 || exit 10
        bf cluster up --join {address} --node-ip {WORKER_IP} --slots 1 >&2 || exit 11
        pkill -KILL -f -- '--node_ip_address={WORKER_IP}' || exit 12
        echo BEFORE; ps -eo stat=,args=
        echo DOWN; bf cluster down || exit 13
        echo AFTER; ps -eo stat=,args=
    """
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", "bash", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=3 * CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    before, down, after = re.split(r"^(?:DOWN|AFTER)$", done.stdout, flags=re.MULTILINE)
    # The killed raylet's log monitor outlived it.
    assert re.search(rf"log_monitor\.py .*--node-ip-address={WORKER_IP}\b", before), before
    assert "stopped every Ray node of this machine" in down, down
    left = [line for line in after.splitlines() if _live_ray(line)]
    assert left == [], after


def _live_ray(line: str) -> bool:
    stat, _, args = line.strip().partition(" ")
    return not stat.startswith("Z") and RAY_ARGS.search(args.strip()) is not None
