"""`browserfleet cluster up|down|status`: run a Ray head or a worker node with browser slots on
this machine, stop this machine's nodes, and list the cluster's nodes with their slots.

Exit codes: 0 done (or already so), 1 failed (the message says why), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from browserfleet.cluster import node_processes
from browserfleet.cluster.node_commands import (
    HealthCheck,
    RayCommand,
    auth_env,
    gcs_address,
    head_command,
    stop_command,
    worker_command,
)
from browserfleet.settings import ClusterSettings, Settings, join_host_port, split_host_port

if TYPE_CHECKING:
    from browserfleet.cluster.nodes import NodeSlots

AddSettings = Callable[[argparse.ArgumentParser], None]

DEFAULT_PORT = 6379
START_TIMEOUT_S = 120.0  # `ray start`: 3-6 s measured, far more on a loaded machine
STOP_TIMEOUT_S = 60.0
REGISTER_TIMEOUT_S = 30.0  # from `ray start` returning to the GCS listing the node alive
KILL_TIMEOUT_S = 10.0
INSTALL_HINT = "install browserfleet's cluster extra: pip install 'browserfleet[cluster]'"


class ClusterCommandFailed(Exception):
    """What went wrong, worded for the operator."""


def ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None


def host_port(text: str) -> str:
    try:
        return join_host_port(*split_host_port(text.strip()))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def slot_count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a worker needs a whole number of slots, ≥ 1")
    return int(text)


def add_commands(parser: argparse.ArgumentParser, settings_args: AddSettings) -> None:
    commands = parser.add_subparsers(dest="cluster_command", required=True)
    up = commands.add_parser("up", help="start a Ray head, or a worker with browser slots, here")
    settings_args(up)
    role = up.add_mutually_exclusive_group(required=True)
    role.add_argument("--head", type=ip_address, metavar="IP", help="start the head on this IP")
    role.add_argument("--join", type=host_port, metavar="ADDRESS", help="join the head here")
    up.add_argument("--port", type=port, help=f"the head's GCS port (default {DEFAULT_PORT})")
    up.add_argument("--node-ip", type=ip_address, help="this worker's IP in the cluster")
    up.add_argument("--slots", type=slot_count, help="browsers this worker may run at once")
    up.set_defaults(run=run_up)

    down = commands.add_parser(
        "down", help="stop this machine's Ray nodes (all, or one cluster's, or one node's)"
    )
    settings_args(down)
    down.add_argument("--address", type=host_port, help="only the nodes of this cluster")
    down.add_argument("--node-ip", type=ip_address, help="only the node with this IP")
    down.set_defaults(run=run_down)

    status = commands.add_parser("status", help="the cluster's nodes and their browser slots")
    settings_args(status)
    status.add_argument("--address", type=host_port, help="default: the configured address")
    status.set_defaults(run=run_status)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _failed(error: ClusterCommandFailed) -> int:
    sys.stderr.write(f"error: {error}\n")
    return 1


def run_up(settings: Settings, args: argparse.Namespace) -> int:
    try:
        _need_ray()
        if args.head is not None:
            if args.node_ip is not None or args.slots is not None:
                raise ClusterCommandFailed("--node-ip and --slots are for --join, not --head")
            _up_head(settings.cluster, args.head, args.port or DEFAULT_PORT)
        else:
            if args.port is not None:
                raise ClusterCommandFailed("--port is for --head; --join names host:port")
            node_ip = args.node_ip or settings.cluster.node_ip
            if node_ip is None or args.slots is None:
                raise ClusterCommandFailed("--join needs --node-ip (or the setting) and --slots")
            _up_worker(settings.cluster, args.join, node_ip, args.slots)
    except ClusterCommandFailed as error:
        return _failed(error)
    return 0


def run_down(_settings: Settings, args: argparse.Namespace) -> int:
    try:
        if args.address is None and args.node_ip is None:
            _down_machine()
        else:
            _down_scope(args.address, args.node_ip)
    except ClusterCommandFailed as error:
        return _failed(error)
    return 0


def run_status(settings: Settings, args: argparse.Namespace) -> int:
    address = args.address or settings.cluster.address
    try:
        if address is None:
            raise ClusterCommandFailed(
                "no cluster address: pass --address or set BROWSERFLEET_CLUSTER__ADDRESS"
            )
        nodes = read_cluster(settings.cluster, address)
    except ClusterCommandFailed as error:
        return _failed(error)
    for line in status_lines(address, nodes):
        _out(line)
    return 0


def status_lines(address: str, nodes: list[NodeSlots]) -> list[str]:
    alive = [n for n in nodes if n.alive]
    free = sum(n.slots_free for n in alive)
    total = sum(n.slots_total for n in alive)
    lines = [
        f"cluster {address}: {len(alive)} node(s) alive, browser slots {free} free of {total}",
        f"{'NODE IP':<16} {'STATE':<6} {'SLOTS FREE/TOTAL':<17} NODE ID",
    ]
    for node in nodes:
        state = "alive" if node.alive else "dead"
        slots = f"{node.slots_free}/{node.slots_total}"
        lines.append(f"{node.ip:<16} {state:<6} {slots:<17} {node.node_id}")
    return lines


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def _need_ray() -> None:
    if not ray_available():
        raise ClusterCommandFailed(f"Ray is not installed: {INSTALL_HINT}")


def read_cluster(cluster: ClusterSettings, address: str) -> list[NodeSlots]:
    """The nodes the GCS at address knows; ClusterCommandFailed when it does not answer."""
    _need_ray()
    os.environ.update(auth_env(_token(cluster)))  # read by Ray's client when it first connects
    from browserfleet.cluster.nodes import ClusterUnreachable, read_nodes

    try:
        return read_nodes(address)
    except ClusterUnreachable as error:
        raise ClusterCommandFailed(str(error)) from None


def _ray() -> tuple[str, ...]:
    """`ray` from the same installation as this command."""
    return (sys.executable, "-m", "ray.scripts.scripts")


def _token(cluster: ClusterSettings) -> str | None:
    return cluster.auth_token.get_secret_value() if cluster.auth_token else None


def _up_head(cluster: ClusterSettings, node_ip: str, gcs_port: int) -> None:
    address = gcs_address(node_ip, gcs_port)
    running = [
        p
        for p in node_processes.select(node_processes.find(), address=address)
        if p.role is node_processes.RayRole.GCS
    ]
    if running:
        nodes = read_cluster(cluster, address)
        _out(f"head already running at {address} ({_alive_count(nodes)} node(s) alive)")
        return
    _refuse_taken(node_ip, gcs_port)
    health = HealthCheck(
        cluster.health_check_period_ms,
        cluster.health_check_timeout_ms,
        cluster.health_check_failure_threshold,
    )
    run_ray(head_command(_ray(), node_ip, gcs_port, health, _token(cluster)), START_TIMEOUT_S)
    _wait_for_node(cluster, address, node_ip, 0)
    _out(f"head up at {address} (no browser slots)")
    _out(f"join workers: browserfleet cluster up --join {address} --node-ip IP --slots N")


def _up_worker(cluster: ClusterSettings, address: str, node_ip: str, slots: int) -> None:
    here = [
        p
        for p in node_processes.select(node_processes.find(), node_ip=node_ip)
        if p.role is node_processes.RayRole.RAYLET
    ]
    if any(p.gcs_address != address for p in here):
        other = next(p.gcs_address for p in here if p.gcs_address != address)
        raise ClusterCommandFailed(
            f"{node_ip} already runs a node of the cluster at {other}: "
            f"`browserfleet cluster down --node-ip {node_ip}` first"
        )
    if here:
        node = _alive_node(read_cluster(cluster, address), node_ip)
        if node is not None and node.slots_total == slots:
            _out(f"{node_ip} already joined {address} with {slots} browser slot(s)")
            return
        have = f"{node.slots_total} slot(s)" if node else "a node the head does not list alive"
        raise ClusterCommandFailed(
            f"{node_ip} already runs {have} in {address}, not {slots}: "
            f"`browserfleet cluster down --node-ip {node_ip}` first"
        )
    read_cluster(cluster, address)  # a clear error when no head answers, before `ray start`
    run_ray(worker_command(_ray(), address, node_ip, slots, _token(cluster)), START_TIMEOUT_S)
    _wait_for_node(cluster, address, node_ip, slots)
    _out(f"{node_ip} joined {address} with {slots} browser slot(s)")


def _refuse_taken(host: str, gcs_port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # As a server binds: the connections a previous head left in TIME_WAIT do not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, gcs_port))
        except OSError as error:
            raise ClusterCommandFailed(
                f"cannot start a head on {join_host_port(host, gcs_port)}: {error.strerror}"
            ) from None


def run_ray(command: RayCommand, timeout_s: float) -> None:
    """Run a `ray` command in a session of its own (the nodes it starts outlive this command
    and the terminal); ClusterCommandFailed with its output when it fails or hangs."""
    # A file, not a pipe: the daemons `ray start` leaves behind could hold a pipe open.
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(
            command.argv,
            env={**os.environ, **command.env},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            # The whole session: a half-started node must not outlive its failed `up`.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
        output.seek(0)
        said = output.read().decode(errors="replace").strip()
    if code != 0:
        what = " ".join(command.argv[3:5])
        why = f"took over {timeout_s:.0f} s" if code is None else f"exited {code}"
        tail = "\n".join(said.splitlines()[-15:])
        raise ClusterCommandFailed(f"`ray {what}` {why}:\n{tail}")


def _wait_for_node(cluster: ClusterSettings, address: str, node_ip: str, slots: int) -> None:
    deadline = time.monotonic() + REGISTER_TIMEOUT_S
    while True:
        node = _alive_node(read_cluster(cluster, address), node_ip)
        if node is not None and node.slots_total == slots:
            return
        if time.monotonic() > deadline:
            raise ClusterCommandFailed(
                f"`ray start` returned, but {address} lists no live node {node_ip} "
                f"with {slots} slot(s) after {REGISTER_TIMEOUT_S:.0f} s"
            )
        time.sleep(0.2)


def _alive_node(nodes: list[NodeSlots], node_ip: str) -> NodeSlots | None:
    return next((n for n in nodes if n.alive and n.ip == node_ip), None)


def _alive_count(nodes: list[NodeSlots]) -> int:
    return sum(1 for n in nodes if n.alive)


def _down_machine() -> None:
    """`ray stop --force`, then any Ray process still running: a helper it does not match, or
    one that raced it, must not outlive `down`."""
    if ray_available():
        run_ray(stop_command(_ray()), STOP_TIMEOUT_S)
    left = node_processes.find()
    _kill(left, "every Ray node of this machine")
    _out(f"stopped every Ray node of this machine ({len(left)} process(es) left by `ray stop`)")


def _down_scope(address: str | None, node_ip: str | None) -> None:
    scope = " and ".join(
        part
        for part in (
            f"the cluster at {address}" if address else "",
            f"the node {node_ip}" if node_ip else "",
        )
        if part
    )
    found = node_processes.select(node_processes.find(), address=address, node_ip=node_ip)
    if not found:
        _out(f"no Ray process of {scope} runs on this machine")
        return
    _kill(found, scope)
    _out(f"stopped {len(found)} Ray process(es) of {scope}")


def _kill(processes: list[node_processes.RayProcess], scope: str) -> None:
    left = node_processes.kill(processes, KILL_TIMEOUT_S)
    if left:
        lines = "\n".join(p.line() for p in left)
        raise ClusterCommandFailed(f"Ray processes of {scope} survived SIGKILL:\n{lines}")
