"""Browsers on a Ray cluster against a single host, in the same run.

Run: python -m benchmarks.cluster [-n 15]

A real cluster on loopback aliases (a head without slots on 127.0.0.12, two workers with two
browser slots each on .13 and .14, each with a data dir of its own), a throwaway PostgreSQL,
and two servers side by side: one running its browsers itself (the single-host baseline, its
default warm pool) and one with `--cluster` (one warm browser per node).

1. Create latency from the warm pool: creates alternate between the two (A B A B ...), each
   once the pool is full again and has settled, and each checked to be a pool hit through the
   server's create histogram. p50/p99 and cluster/single ratios.
2. Memory per session on a node: the proportional set size of one node's browsers with one
   session, then two (the pool's warm browser included in both), and what that means in
   sessions per GiB.
3. Failover: a node lost with its raylet (SIGKILL) and a frozen node (SIGSTOP): from the signal
   until the API shows the session stopped (and billed: a stopped session's cost is final), and
   until its browser's processes are gone. The lost node joins again after each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

if __package__ in (None, ""):  # run as a file: python benchmarks/cluster.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from postgres_cluster import PostgresCluster, started_cluster
from ray_cluster import Nodes, join_worker, raylet_of, start_nodes, stop_processes

from benchmarks import harness, probes
from browserfleet.sandbox.reach import processes

HEAD_IP = "127.0.0.12"
GCS_PORT = 6384
WORKERS = ("127.0.0.13", "127.0.0.14")
SLOTS = 2
SINGLE_POOL = 2  # as many warm browsers as the cluster's (one per node)
SETTLE_S = 0.5
FAILOVER_TIMEOUT_S = 60.0
GIB = 1024**3


@dataclass(slots=True)
class Creates:
    single: list[float] = field(default_factory=list)
    cluster: list[float] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Failover:
    kind: str
    stopped_s: float  # signal -> the API shows the session stopped, its cost final
    gone_s: float  # signal -> no process of its browser's sandbox is left


@contextlib.asynccontextmanager
async def cluster_nodes() -> AsyncIterator[Nodes]:
    base = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    workers = {ip: (SLOTS, base / f"node-{ip}") for ip in WORKERS}
    for _, data_dir in [*workers.values(), (0, base / "ray")]:
        data_dir.mkdir()
    harness.log("starting a Ray head and two workers")
    try:
        nodes = await asyncio.to_thread(start_nodes, base / "ray", HEAD_IP, GCS_PORT, workers)
        try:
            yield nodes
        finally:
            await asyncio.to_thread(stop_processes, nodes.temp_dir)
    finally:
        await asyncio.to_thread(shutil.rmtree, base, True)


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    postgres: PostgresCluster = await asyncio.to_thread(
        started_cluster, Path(tempfile.mkdtemp(prefix="bench-postgres-"))
    )
    try:
        yield postgres.url(await postgres.create_database())
    finally:
        await asyncio.to_thread(postgres.remove)


async def pooled_create(
    client: httpx.AsyncClient, fleet: harness.Fleet, pool_size: int
) -> tuple[float, dict[str, object]]:
    """Seconds for one create the pool serves (checked), and its session."""
    await probes.wait_pool_ready(client, fleet, pool_size, SETTLE_S)
    before = (await probes.scrape(client, fleet)).creates("pool")
    started = time.perf_counter()
    view = await harness.create_session(client, fleet, {"timeout": 5})
    seconds = time.perf_counter() - started
    if (await probes.scrape(client, fleet)).creates("pool") != before + 1:
        raise RuntimeError("a create meant to come from the pool launched cold")
    return seconds, view


async def measure_creates(
    client: httpx.AsyncClient,
    single: harness.Fleet,
    cluster: harness.Fleet,
    single_pool: int,
    runs: int,
) -> Creates:
    creates = Creates()
    for i in range(runs):
        for fleet, pool, into in (
            (single, single_pool, creates.single),
            (cluster, len(WORKERS), creates.cluster),
        ):
            seconds, view = await pooled_create(client, fleet, pool)
            into.append(seconds)
            await harness.stop_session(client, fleet, view["id"])
        harness.log(
            f"run {i + 1}/{runs}: single {creates.single[-1] * 1000:.1f} ms, "
            f"cluster {creates.cluster[-1] * 1000:.1f} ms"
        )
    return creates


def node_of(nodes: Nodes, session_id: object) -> str:
    for ip, data_dir in nodes.worker_dirs.items():
        if (data_dir / "sessions" / str(session_id)).exists():
            return ip
    raise RuntimeError(f"session {session_id} is on no node")


def nodes_browsers(nodes: Nodes) -> tuple[int, int]:
    """(browsers, summed PSS of their processes) over every node."""
    count, pss = 0, 0
    for directory in nodes.worker_dirs.values():
        workdirs = [w for w in (directory / "sessions").glob("*") if w.is_dir()]
        count += len(workdirs)
        pss += probes.pss_bytes(probes.chromium_processes(directory))
    return count, pss


async def memory_per_session(
    client: httpx.AsyncClient, cluster: harness.Fleet, nodes: Nodes
) -> float:
    """Bytes of PSS one more browser (a session's, sandbox and helpers included) costs a node:
    the pool's warm browsers alone, then two sessions with the pool refilled beside them."""
    await probes.wait_pool_ready(client, cluster, len(WORKERS), SETTLE_S)
    await asyncio.sleep(2.0)  # start-up allocations settle
    before = nodes_browsers(nodes)
    views = [await harness.create_session(client, cluster, {"timeout": 5}) for _ in WORKERS]
    await probes.wait_pool_ready(client, cluster, len(WORKERS), SETTLE_S)
    await asyncio.sleep(2.0)
    after = nodes_browsers(nodes)
    for view in views:
        await harness.stop_session(client, cluster, view["id"])
    if after[0] <= before[0]:
        raise RuntimeError(f"no more browsers with sessions: {before} -> {after}")
    return (after[1] - before[1]) / (after[0] - before[0])


async def failover(
    client: httpx.AsyncClient,
    cluster: harness.Fleet,
    nodes: Nodes,
    kind: str,
    sig: signal.Signals,
) -> Failover:
    await probes.wait_pool_ready(client, cluster, len(WORKERS), SETTLE_S)
    view = await harness.create_session(client, cluster, {"timeout": 5})
    node = node_of(nodes, view["id"])
    uid = (nodes.worker_dirs[node] / "sessions" / str(view["id"])).stat().st_uid
    raylet = raylet_of(nodes.temp_dir, node)
    if raylet is None:
        raise RuntimeError(f"no raylet for node {node}")
    started = time.perf_counter()
    raylet.send_signal(sig)

    async def session_stopped() -> bool:
        response = await client.get(
            f"{cluster.api_url}/browsers/{view['id']}", headers=cluster.headers
        )
        return bool(response.json()["status"] == "stopped")

    async def browser_gone() -> bool:
        return not processes(uid)

    try:
        stopped = await _until(session_stopped, started)
        gone = await _until(browser_gone, started)
    finally:
        if sig is signal.SIGSTOP:
            raylet.send_signal(signal.SIGCONT)
    with contextlib.suppress(Exception):  # a continued raylet that learns it is dead exits
        await asyncio.to_thread(raylet.wait, 30)
    if raylet.is_running():
        raylet.kill()
    await asyncio.to_thread(join_worker, nodes, node, SLOTS)
    return Failover(kind, stopped, gone)


async def _until(check: Callable[[], Awaitable[bool]], started: float) -> float:
    """Seconds from `started` until check() holds (polled: the processes are black boxes)."""
    async with asyncio.timeout(FAILOVER_TIMEOUT_S):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    return time.perf_counter() - started


def report(creates: Creates, per_session: float, failovers: list[Failover]) -> None:
    rows = []
    for name, samples in (("single host", creates.single), ("cluster", creates.cluster)):
        rows.append([name, *probes.percentiles_ms(samples)])
    harness.print_table("create from the warm pool (client side)", ["", "p50", "p95", "p99"], rows)
    for p in (50, 99):
        ratio = harness.ratio(
            harness.percentile(creates.cluster, p), harness.percentile(creates.single, p)
        )
        print(f"cluster/single at p{p}: {ratio:.2f}x")
    print(
        f"memory per session on a node (PSS): {probes.mib(per_session)}, "
        f"about {GIB / per_session:.0f} sessions per GiB"
    )
    harness.print_table(
        "failover (from the signal)",
        ["", "session stopped and billed", "browser gone"],
        [[f.kind, probes.ms(f.stopped_s), probes.ms(f.gone_s)] for f in failovers],
    )
    print(harness.machine_line())


async def run(args: argparse.Namespace) -> None:
    async with (
        cluster_nodes() as nodes,
        database() as url,
        harness.running_fleet({"BROWSERFLEET_BROWSER__POOL_SIZE": str(SINGLE_POOL)}) as single,
        harness.running_fleet(
            {
                "BROWSERFLEET_DATABASE_URL": url,
                "BROWSERFLEET_CLUSTER__ADDRESS": nodes.address,
                "BROWSERFLEET_CLUSTER__NODE_IP": nodes.head_ip,
                "BROWSERFLEET_CLUSTER__POOL_PER_NODE": "1",
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        ) as cluster,
        httpx.AsyncClient(timeout=60.0) as client,
    ):
        creates = await measure_creates(client, single, cluster, SINGLE_POOL, args.runs)
        per_session = await memory_per_session(client, cluster, nodes)
        failovers = [
            await failover(client, cluster, nodes, "raylet SIGKILL", signal.SIGKILL),
            await failover(client, cluster, nodes, "raylet SIGSTOP", signal.SIGSTOP),
        ]
    report(creates, per_session, failovers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=15, help="creates of each kind")
    asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
