"""A real Ray cluster on loopback aliases for the cluster tests: a head without browser slots
(the API process's node: the test process joins it as the driver) and one worker node with two.

Every process of it is started with its own temp dir (inside the suite's data dirs, so the leak
check sees any that survives), and stopped by pid: never `ray stop`, which would end every Ray
process on the machine, another run's cluster too. The worker node's browsers are configured by
its own environment, as a real node's would be: a data dir of its own and this run's sandbox
uids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from fleet_server import Server, start_server
from loopback import RESOLVER_RULES
from postgres_cluster import PostgresCluster
from sandboxes import uid_env

HEAD_IP = "127.0.0.2"
WORKER_IP = "127.0.0.3"
GCS_PORT = 6380
ADDRESS = f"{HEAD_IP}:{GCS_PORT}"
WORKER_SLOTS = 2
NAMESPACE = "browserfleet-tests"
SRC = Path(__file__).resolve().parents[2] / "src"
RAY = Path(sys.executable).parent / "ray"
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
# Nodes found dead within seconds, not the default 20-70 s.
HEALTH_ENV = {
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


@dataclass(frozen=True, slots=True)
class RayCluster:
    temp_dir: Path  # every process of the cluster names it on its command line
    worker_data_dir: Path  # the worker node's BROWSERFLEET_DATA_DIR
    worker_env: dict[str, str]  # the environment its raylet (and so every actor) runs with


def node_env(data_dir: Path) -> dict[str, str]:
    """The environment of a node that runs browsers: this worktree's code first on the path,
    no usage stats, and its own browserfleet settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROWSERFLEET_")}
    path = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH", "")) if p)
    env.update(
        {
            "PYTHONPATH": path,
            "RAY_USAGE_STATS_ENABLED": "0",
            "BROWSERFLEET_DATA_DIR": str(data_dir),
            "BROWSERFLEET_BROWSER__EXTRA_ARGS": json.dumps([RESOLVER_RULES]),
            # The guard blocks loopback by default; the tests' pages live there.
            "BROWSERFLEET_EGRESS__ALLOW_NETWORKS": json.dumps(["127.0.0.0/8"]),
            **uid_env(),
        }
    )
    return env


def _ray_start(
    args: list[str],
    env: dict[str, str],
    temp_dir: Path,
    log: Path,
    prefix: Sequence[str] = (),
) -> None:
    """`ray start` with `args`; `prefix` runs it inside something (a network namespace)."""
    with log.open("ab") as out:
        done = subprocess.run(
            [*prefix, str(RAY), "start", f"--temp-dir={temp_dir}", "--disable-usage-stats", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"ray start failed ({done.returncode}): {log.read_text()[-3000:]}")


def start_worker(cluster: RayCluster) -> None:
    """The slotted worker node joins the cluster (again, after a test killed it)."""
    _ray_start(
        [
            f"--address={ADDRESS}",
            f"--node-ip-address={WORKER_IP}",
            "--resources=" + json.dumps({"browser_slots": WORKER_SLOTS}),
        ],
        cluster.worker_env,
        cluster.temp_dir,
        cluster.temp_dir / "ray-start.log",
    )


def worker_raylet(cluster: RayCluster) -> psutil.Process | None:
    """The raylet of the worker node, if it runs."""
    return raylet_of(cluster.temp_dir, WORKER_IP)


def start_cluster(temp_dir: Path, worker_data_dir: Path) -> RayCluster:
    """Head, then the slotted worker; on a failure whatever started is stopped again."""
    head_env = {**node_env(temp_dir / "head-data"), **HEALTH_ENV}
    worker_env = node_env(worker_data_dir)
    cluster = RayCluster(temp_dir, worker_data_dir, worker_env)
    log = temp_dir / "ray-start.log"
    try:
        _ray_start(
            [
                "--head",
                f"--node-ip-address={HEAD_IP}",
                f"--port={GCS_PORT}",
                "--num-cpus=0",
                "--resources=" + json.dumps({"browser_slots": 0}),
                "--include-dashboard=false",
            ],
            head_env,
            temp_dir,
            log,
        )
        start_worker(cluster)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def cluster_processes(temp_dir: Path) -> list[psutil.Process]:
    """Every process of the cluster: those naming its temp dir, and all their descendants
    (workers, whose command line Ray rewrites, and the browsers they started)."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(temp_dir) in part for part in proc.info["cmdline"] or []):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
    found.pop(os.getpid(), None)  # the driver names the session dir too
    return list(found.values())


@dataclass(frozen=True, slots=True)
class Nodes:
    """A cluster of a slotless head and workers of one slot count each, for an API process
    (not the test process) to drive."""

    temp_dir: Path
    address: str
    head_ip: str
    worker_dirs: dict[str, Path]  # worker ip -> its BROWSERFLEET_DATA_DIR


def start_nodes(
    temp_dir: Path,
    head_ip: str,
    port: int,
    workers: dict[str, tuple[int, Path]],
    worker_prefix: Sequence[str] = (),
    head_env: Mapping[str, str] | None = None,
) -> Nodes:
    """Head (with `head_env` besides its own), then each worker (ip -> (slots, data dir)), each
    run in `worker_prefix` (a network namespace of the test's); on a failure whatever started
    is stopped again."""
    address = f"{head_ip}:{port}"
    try:
        nodes = Nodes(temp_dir, address, head_ip, {ip: d for ip, (_, d) in workers.items()})
        start_head(nodes, head_env)
        for ip, (slots, _) in workers.items():
            join_worker(nodes, ip, slots, worker_prefix)
    except BaseException:
        stop_processes(temp_dir)
        raise
    return nodes


def start_head(nodes: Nodes, env: Mapping[str, str] | None = None) -> None:
    """The head (again, after a test killed it): no slots, no CPUs, no dashboard."""
    head_ip, port = nodes.address.rsplit(":", 1)
    _ray_start(
        [
            "--head",
            f"--node-ip-address={head_ip}",
            f"--port={port}",
            "--num-cpus=0",
            "--resources=" + json.dumps({"browser_slots": 0}),
            "--include-dashboard=false",
        ],
        {**node_env(nodes.temp_dir / "head-data"), **HEALTH_ENV, **(env or {})},
        nodes.temp_dir,
        nodes.temp_dir / "ray-start.log",
    )


def head_processes(nodes: Nodes) -> list[psutil.Process]:
    """The head's own processes: the GCS, the head's raylet and every helper of either (the
    autoscaler's monitor, the log monitor and agents of the head node); not the workers'."""
    head: dict[int, psutil.Process] = {}
    for proc in cluster_processes(nodes.temp_dir):
        with contextlib.suppress(psutil.Error):
            # A node's processes name its address alone (`--node-ip-address=IP`); the GCS's
            # address (`IP:PORT`) is on every node's.
            if proc.name() == "gcs_server" or any(
                arg.endswith(f"={nodes.head_ip}") for arg in proc.cmdline()
            ):
                head[proc.pid] = proc
                for child in proc.children(recursive=True):
                    head[child.pid] = child
    return list(head.values())


def join_worker(nodes: Nodes, ip: str, slots: int, prefix: Sequence[str] = ()) -> None:
    """The worker at `ip` (re)joins the cluster with its own data dir and `slots`."""
    _ray_start(
        [
            f"--address={nodes.address}",
            f"--node-ip-address={ip}",
            "--resources=" + json.dumps({"browser_slots": slots}),
        ],
        node_env(nodes.worker_dirs[ip]),
        nodes.temp_dir,
        nodes.temp_dir / "ray-start.log",
        prefix,
    )


def raylet_of(temp_dir: Path, ip: str) -> psutil.Process | None:
    """The raylet of the node at `ip` of the cluster, if it runs."""
    for proc in cluster_processes(temp_dir):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            if proc.name() == "raylet" and any(arg.endswith(f"={ip}") for arg in cmdline):
                return proc
    return None


def stop_cluster(cluster: RayCluster) -> None:
    stop_processes(cluster.temp_dir)


def stop_processes(temp_dir: Path) -> None:
    """SIGKILL every process of the cluster by pid and wait until none is left."""
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while procs := _alive(cluster_processes(temp_dir)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"Ray processes survived SIGKILL: {[p.pid for p in procs]}")
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        time.sleep(0.1)


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


@contextlib.contextmanager
def running_cluster(temp_dir: Path, worker_data_dir: Path) -> Iterator[RayCluster]:
    cluster = start_cluster(temp_dir, worker_data_dir)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def clean_node_leftovers(cluster: RayCluster) -> str:
    """What the worker node's dead actors left of their sandboxes (mounts, cgroups), removed
    as `browserfleet leftovers --clean` on that node would; its report."""
    done = subprocess.run(
        [sys.executable, "-m", "browserfleet.cli.main", "leftovers", "--clean"],
        env=cluster.worker_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def ray_cluster(suite_resources: Any) -> Iterator[RayCluster]:
    """The cluster, with this process connected to it as the driver (on the head's address,
    as an API process would be); stopped after the module, whatever happened (never left to
    load the rest of the run)."""
    import ray

    temp_dir: Path = suite_resources.new_data_dir()
    worker_data_dir: Path = suite_resources.new_data_dir()
    with running_cluster(temp_dir, worker_data_dir) as cluster:
        ray.init(
            address=ADDRESS,
            _node_ip_address=HEAD_IP,
            namespace=NAMESPACE,
            log_to_driver=False,
        )
        try:
            yield cluster
        finally:
            ray.shutdown()


def cluster_env(nodes: Nodes, database_url: str, **env: str) -> dict[str, str]:
    """What an API process serving on `nodes` is started with (on the head's address unless
    `BROWSERFLEET_CLUSTER__NODE_IP` says otherwise; no warm pool unless asked), `env` last."""
    return {
        "BROWSERFLEET_DATABASE_URL": database_url,
        "BROWSERFLEET_CLUSTER__ADDRESS": nodes.address,
        "BROWSERFLEET_CLUSTER__NODE_IP": nodes.head_ip,
        "BROWSERFLEET_CLUSTER__POOL_PER_NODE": "0",
        "BROWSERFLEET_CLUSTER__PLACEMENT_TIMEOUT_S": "20",
        "RAY_USAGE_STATS_ENABLED": "0",
        **env,
    }


@contextlib.contextmanager
def cluster_api(
    suite_resources: Any, postgres: PostgresCluster, nodes: Nodes, **env: str
) -> Iterator[Server]:
    """A `browserfleet serve --cluster` process on `nodes`, on a database of its own (dropped
    after it stopped); `env` as for cluster_env."""
    database = asyncio.run(postgres.create_database())
    try:
        server = start_server(suite_resources, **cluster_env(nodes, postgres.url(database), **env))
        try:
            yield server
        finally:
            code = server.close()
            # A graceful shutdown, ended by the SIGTERM that asked for it, as without Ray.
            assert code == -signal.SIGTERM, f"exit code {code}\n{server.log_tail(30)}"
    finally:
        asyncio.run(postgres.drop_database(database))
