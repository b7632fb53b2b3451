"""Where sandbox cgroups go and what is written there (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserfleet.sandbox.cgroups import (
    CgroupPlan,
    CgroupUnavailable,
    leaf_name,
    limit_files,
    parse_flat_keyed,
    parse_proc_cgroup,
    plan_cgroups,
)
from browserfleet.sandbox.mounts import MountEntry
from browserfleet.sandbox.spec import SandboxLimits

MIB = 1024 * 1024
V1_MEMORY = MountEntry(Path("/sys/fs/cgroup/memory"), "cgroup", "cgroup", "rw,memory")
V1_PIDS = MountEntry(Path("/sys/fs/cgroup/pids"), "cgroup", "cgroup", "rw,pids")
V1_CPU = MountEntry(Path("/sys/fs/cgroup/cpu,cpuacct"), "cgroup", "cgroup", "rw,cpu,cpuacct")
V2 = MountEntry(Path("/sys/fs/cgroup/unified"), "cgroup2", "cgroup2", "rw")
V2_PURE = MountEntry(Path("/sys/fs/cgroup"), "cgroup2", "cgroup2", "rw,nsdelegate")
PROC_CGROUP = """\
9:name=systemd:/
8:pids:/user.slice
4:memory:/process_api/abc
2:cpu,cpuacct:/
0::/system.slice/browserfleet.service
"""
LIMITS = SandboxLimits(4096 * MIB, 2048, 1024 * MIB, 256 * MIB, 512 * MIB)


def test_proc_cgroup_maps_each_controller_and_v2_to_its_path() -> None:
    assert parse_proc_cgroup(PROC_CGROUP) == {
        "name=systemd": "/",
        "pids": "/user.slice",
        "memory": "/process_api/abc",
        "cpu": "/",
        "cpuacct": "/",
        "": "/system.slice/browserfleet.service",
    }


def test_a_hybrid_host_uses_v1_memory_and_pids_under_our_own_cgroups() -> None:
    plan = plan_cgroups([V1_CPU, V1_MEMORY, V1_PIDS, V2], parse_proc_cgroup(PROC_CGROUP))
    assert plan == CgroupPlan(
        1,
        Path("/sys/fs/cgroup/memory/process_api/abc/browserfleet"),
        Path("/sys/fs/cgroup/pids/user.slice/browserfleet"),
    )
    assert plan.leaves(7) == (
        Path("/sys/fs/cgroup/memory/process_api/abc/browserfleet/uid-7"),
        Path("/sys/fs/cgroup/pids/user.slice/browserfleet/uid-7"),
    )


def test_a_pure_v2_host_uses_the_delegated_service_cgroup() -> None:
    plan = plan_cgroups([V2_PURE], parse_proc_cgroup(PROC_CGROUP))
    parent = Path("/sys/fs/cgroup/system.slice/browserfleet.service/browserfleet")
    assert plan == CgroupPlan(2, parent, parent)
    assert plan.parents == (parent,)
    assert plan.leaves(9) == (parent / "uid-9",)


def test_v1_without_pids_falls_back_to_v2() -> None:
    plan = plan_cgroups([V1_MEMORY, V2], {"": "/"})
    assert plan.version == 2
    assert plan.memory_parent == Path("/sys/fs/cgroup/unified/browserfleet")


def test_a_configured_parent_replaces_our_own_cgroup() -> None:
    plan = plan_cgroups([V1_MEMORY, V1_PIDS], parse_proc_cgroup(PROC_CGROUP), "/sandboxes")
    assert plan.memory_parent == Path("/sys/fs/cgroup/memory/sandboxes")
    assert plan.pids_parent == Path("/sys/fs/cgroup/pids/sandboxes")


def test_a_mount_of_a_subtree_makes_paths_relative_to_it() -> None:
    mount = MountEntry(Path("/sys/fs/cgroup"), "cgroup2", "cgroup2", "rw", "/docker/abc")
    plan = plan_cgroups([mount], {"": "/docker/abc/app"})
    assert plan.memory_parent == Path("/sys/fs/cgroup/app/browserfleet")


def test_no_usable_hierarchy_says_what_is_missing() -> None:
    with pytest.raises(CgroupUnavailable, match="memory and pids"):
        plan_cgroups([V1_CPU, V1_MEMORY], {})


def test_v1_limits_put_memory_before_memsw() -> None:
    plan = CgroupPlan(1, Path("/m"), Path("/p"))
    assert limit_files(plan, LIMITS, memsw=True) == [
        ("memory.limit_in_bytes", str(4096 * MIB)),
        ("memory.memsw.limit_in_bytes", str(4096 * MIB)),
        ("pids.max", "2048"),
    ]
    assert limit_files(plan, LIMITS, memsw=False) == [
        ("memory.limit_in_bytes", str(4096 * MIB)),
        ("pids.max", "2048"),
    ]


def test_v2_limits_forbid_swap() -> None:
    plan = CgroupPlan(2, Path("/g"), Path("/g"))
    assert limit_files(plan, LIMITS, memsw=False) == [
        ("memory.max", str(4096 * MIB)),
        ("memory.swap.max", "0"),
        ("pids.max", "2048"),
    ]


def test_flat_keyed_files_parse_to_counters() -> None:
    text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\nmax 12\nbogus\nlow x\n"
    assert parse_flat_keyed(text) == {
        "oom_kill_disable": 0,
        "under_oom": 0,
        "oom_kill": 3,
        "max": 12,
    }


def test_leaves_are_named_after_their_uid() -> None:
    assert leaf_name(1879048200) == "uid-1879048200"
