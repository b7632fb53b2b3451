"""Sandbox cgroups on this host's real hierarchies: cgroup v1 memory and pids (with their caps
enforced), and what cgroup v2 offers here (the unified hierarchy has no memory or pids
controller, so v2 is tested for its mechanics: joining, cgroup.kill, delegation)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from browserfleet.sandbox.cgroups import (
    Cgroup,
    CgroupPlan,
    CgroupTree,
    CgroupUnavailable,
    evacuate,
    parse_proc_cgroup,
    plan_cgroups,
    remove_dirs,
)
from browserfleet.sandbox.mounts import current_mounts
from browserfleet.sandbox.spec import SandboxLimits

MIB = 1024 * 1024
UID = 1879048192 + 999
UNIFIED = Path("/sys/fs/cgroup/unified")
LIMITS = SandboxLimits(memory_bytes=64 * MIB, pids=16, disk_bytes=MIB, tmp_bytes=MIB, shm_bytes=MIB)
NAME = f"browserfleet-test-{os.getpid()}"


def own_plan() -> CgroupPlan:
    return plan_cgroups(current_mounts(), parse_proc_cgroup(Path("/proc/self/cgroup").read_text()))


@pytest.fixture
def v1() -> Iterator[CgroupTree]:
    plan = own_plan()
    if plan.version != 1:
        pytest.skip("this host's sandboxes use cgroup v2")
    test_plan = CgroupPlan(1, plan.memory_parent.with_name(NAME), plan.pids_parent.with_name(NAME))
    tree = CgroupTree(test_plan)
    tree.prepare()
    yield tree
    remove_dirs(tree.leaves(), 5.0)
    tree.remove_parents()
    assert not any(p.exists() for p in test_plan.parents)


@pytest.fixture
def v2() -> Iterator[Path]:
    if not (UNIFIED / "cgroup.controllers").exists():
        pytest.skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
    base = UNIFIED / NAME
    yield base
    leftovers = sorted(
        (p for p in [base, *base.rglob("*")] if p.is_dir()), key=lambda p: -len(p.parts)
    )
    assert remove_dirs(leftovers, 5.0)


def start_in(cgroup: Cgroup, *argv: str) -> subprocess.Popen[bytes]:
    """A process that joins the cgroup before it execs, as bubblewrap does."""
    fds = cgroup.open_procs()

    def join() -> None:
        for fd in fds:
            os.write(fd, b"0")

    try:
        # The child joins between fork and exec, like bubblewrap: no thread runs there.
        return subprocess.Popen(
            argv,
            preexec_fn=join,  # noqa: PLW1509
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    finally:
        for fd in fds:
            os.close(fd)


def test_v1_leaf_gets_the_caps_and_its_process(v1: CgroupTree) -> None:
    leaf = v1.leaf(UID)
    leaf.create(LIMITS)
    assert (leaf.memory_dir / "memory.limit_in_bytes").read_text().strip() == str(64 * MIB)
    if (leaf.memory_dir / "memory.memsw.limit_in_bytes").exists():
        assert (leaf.memory_dir / "memory.memsw.limit_in_bytes").read_text().strip() == str(
            64 * MIB
        )
    assert (leaf.pids_dir / "pids.max").read_text().strip() == "16"
    sleeper = start_in(leaf, "sleep", "60")
    try:
        assert leaf.pids() == {sleeper.pid}
        assert v1.leaves() and all(p.name == f"uid-{UID}" for p in v1.leaves())
        assert leaf.remove(5.0)
        assert sleeper.wait(timeout=5) == -9
        assert not any(d.exists() for d in leaf.dirs)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_v1_memory_cap_kills_whoever_goes_over_it(v1: CgroupTree) -> None:
    leaf = v1.leaf(UID)
    leaf.create(LIMITS)
    hog = start_in(
        leaf,
        sys.executable,
        "-c",
        "b = bytearray(256 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096])",
    )
    assert hog.wait(timeout=30) == -9
    events = leaf.events()
    assert events.oom_kills >= 1
    assert leaf.memory_peak() <= 64 * MIB
    assert leaf.remove(5.0)


def test_v1_pids_cap_refuses_forks_past_it(v1: CgroupTree) -> None:
    leaf = v1.leaf(UID)
    leaf.create(LIMITS)
    script = "for i in $(seq 40); do sleep 30 & done 2>/dev/null; wait"
    forker = start_in(leaf, "sh", "-c", script)
    try:
        deadline = time.monotonic() + 10
        while leaf.events().pids_refused == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert leaf.events().pids_refused > 0
        assert len(leaf.pids()) <= 16
    finally:
        assert leaf.remove(5.0)
        forker.wait(timeout=5)


def test_v2_leaf_joins_and_cgroup_kill_ends_everything_inside(v2: Path) -> None:
    tree = CgroupTree(CgroupPlan(2, v2, v2))
    tree.prepare(controllers=())  # this host's cgroup2 has no memory or pids controller
    leaf = tree.leaf(UID)
    leaf.create(None)
    shell = start_in(leaf, "sh", "-c", "sleep 60 & sleep 60 & wait")
    deadline = time.monotonic() + 5
    while len(leaf.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(leaf.pids()) == 3
    assert (leaf.dirs[0] / "cgroup.kill").exists()
    leaf.kill()
    assert shell.wait(timeout=5) == -9
    assert leaf.remove(5.0)
    assert not leaf.dirs[0].exists()
    tree.remove_parents()
    assert not v2.exists()


def test_v2_without_memory_and_pids_names_what_is_missing(v2: Path) -> None:
    tree = CgroupTree(CgroupPlan(2, v2 / "browserfleet", v2 / "browserfleet"))
    with pytest.raises(CgroupUnavailable, match=r"lacks the memory, pids controller"):
        tree.prepare()
    assert not (v2 / "browserfleet").exists()


def test_v2_evacuation_moves_a_cgroups_processes_into_its_server_leaf(v2: Path) -> None:
    """What enabling controllers does when the kernel refuses them for a cgroup that holds
    processes (EBUSY). This host's cgroup2 offers no controller to enable without changing its
    root, so the refusal itself cannot be provoked here."""
    v2.mkdir()
    leaf = CgroupTree(CgroupPlan(2, v2, v2)).leaf(UID)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (v2 / "cgroup.procs").write_text(str(sleeper.pid))
        evacuate(v2)
        assert (v2 / "server" / "cgroup.procs").read_text().split() == [str(sleeper.pid)]
        assert (v2 / "cgroup.procs").read_text() == ""
        assert not leaf.dirs[0].exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_v1_a_parent_removed_by_another_servers_shutdown_is_made_again(v1: CgroupTree) -> None:
    v1.remove_parents()  # another server sharing it stopped while it was empty
    assert not any(p.exists() for p in v1.plan.parents)
    leaf = v1.leaf(UID)
    leaf.create(LIMITS)
    assert all(d.is_dir() for d in leaf.dirs)
    assert (leaf.pids_dir / "pids.max").read_text().strip() == "16"
    assert leaf.remove(5.0)
