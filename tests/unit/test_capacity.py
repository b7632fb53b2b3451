"""Host capacity: the pure admission decision, headroom, and cgroup v2 parsing from fake files."""

from __future__ import annotations

from pathlib import Path

import pytest

from browserfleet.capacity import (
    MIB,
    CapacityPolicy,
    CgroupLimits,
    HostFacts,
    HostProbe,
    HostSnapshot,
    admit,
    combine,
    headroom,
    own_cgroup_dir,
    parse_cpu_max,
    parse_memory_max,
    parse_memory_stat,
    read_cgroup,
)

GIB = 1024 * MIB
POLICY = CapacityPolicy(
    max_browsers=4,
    min_free_memory_bytes=512 * MIB,
    est_browser_memory_bytes=256 * MIB,
    max_load_per_cpu=2.0,
    retry_after_s=7,
)


def snapshot(available: int = 8 * GIB, cpus: float = 2.0, load: float = 0.5) -> HostSnapshot:
    return HostSnapshot(
        memory_available_bytes=available,
        memory_limit_bytes=None,
        cpus=cpus,
        load_1m=load,
        from_cgroup=False,
    )


# --- admit -----------------------------------------------------------------------------------


def test_admits_when_every_limit_has_room() -> None:
    decision = admit(snapshot(), 3, POLICY)
    assert (decision.ok, decision.reason, decision.retry_after_s) == (True, "ok", 0)


@pytest.mark.parametrize("running", [4, 5, 100])
def test_refuses_at_or_above_max_browsers(running: int) -> None:
    decision = admit(snapshot(), running, POLICY)
    assert not decision.ok
    assert decision.reason == f"{running} of at most 4 browsers are running"
    assert decision.retry_after_s == 7


def test_admits_when_memory_after_launch_lands_exactly_on_the_floor() -> None:
    assert admit(snapshot(available=768 * MIB), 0, POLICY).ok


def test_refuses_when_memory_after_launch_would_go_below_the_floor() -> None:
    decision = admit(snapshot(available=768 * MIB - 1), 0, POLICY)
    assert not decision.ok
    assert "767 MiB of memory available" in decision.reason
    assert "~256 MiB" in decision.reason and "512 MiB must stay free" in decision.reason
    assert decision.retry_after_s == 7


def test_admits_at_exactly_the_load_ceiling() -> None:
    assert admit(snapshot(cpus=2.0, load=4.0), 0, POLICY).ok


def test_refuses_above_the_load_ceiling_per_cpu() -> None:
    decision = admit(snapshot(cpus=2.0, load=4.2), 0, POLICY)
    assert not decision.ok
    assert decision.reason == "load 2.10 per CPU is above 2"


def test_a_fractional_cgroup_cpu_quota_scales_the_load() -> None:
    # Load 1.5 on half a CPU is 3.0 per CPU, above the ceiling of 2.0.
    assert not admit(snapshot(cpus=0.5, load=1.5), 0, POLICY).ok
    assert admit(snapshot(cpus=0.5, load=1.0), 0, POLICY).ok


def test_the_browser_count_is_reported_before_memory_and_load() -> None:
    decision = admit(snapshot(available=0, load=99.0), 4, POLICY)
    assert decision.reason.startswith("4 of at most 4 browsers")


def test_memory_is_reported_before_load() -> None:
    decision = admit(snapshot(available=0, load=99.0), 0, POLICY)
    assert "memory" in decision.reason


def test_zero_max_browsers_admits_nothing() -> None:
    assert not admit(snapshot(), 0, CapacityPolicy(max_browsers=0)).ok


@pytest.mark.parametrize(
    "fields",
    [
        {"max_browsers": -1},
        {"max_browsers": 1, "min_free_memory_bytes": -1},
        {"max_browsers": 1, "est_browser_memory_bytes": 0},
        {"max_browsers": 1, "max_load_per_cpu": 0.0},
    ],
)
def test_policy_rejects_meaningless_limits(fields: dict[str, int | float]) -> None:
    with pytest.raises(ValueError):
        CapacityPolicy(**fields)  # type: ignore[arg-type]


# --- headroom ---------------------------------------------------------------------------------


def test_headroom_is_bounded_by_the_browser_count() -> None:
    assert headroom(snapshot(), 1, POLICY) == 3


def test_headroom_is_bounded_by_memory() -> None:
    # 512 MiB floor + 2.5 browsers of 256 MiB: two fit.
    assert headroom(snapshot(available=512 * MIB + 640 * MIB), 0, POLICY) == 2


def test_headroom_is_zero_under_load_or_when_full() -> None:
    assert headroom(snapshot(load=10.0), 0, POLICY) == 0
    assert headroom(snapshot(), 9, POLICY) == 0
    assert headroom(snapshot(available=0), 0, POLICY) == 0


def test_headroom_agrees_with_admit() -> None:
    for available in range(0, 2 * GIB, 64 * MIB):
        for running in range(6):
            for load in (0.0, 4.0, 4.5):
                snap = snapshot(available=available, load=load)
                assert admit(snap, running, POLICY).ok == (headroom(snap, running, POLICY) > 0)


# --- combine ----------------------------------------------------------------------------------

HOST = HostFacts(memory_available_bytes=16 * GIB, cpu_count=8, load_1m=3.0)


def test_without_a_cgroup_the_host_figures_stand() -> None:
    assert combine(None, HOST) == HostSnapshot(16 * GIB, None, 8.0, 3.0, from_cgroup=False)


def test_a_cgroup_memory_limit_caps_available_memory() -> None:
    limits = CgroupLimits(memory_max_bytes=4 * GIB, memory_used_bytes=1 * GIB, cpus=1.5)
    snap = combine(limits, HOST)
    assert snap == HostSnapshot(3 * GIB, 4 * GIB, 1.5, 3.0, from_cgroup=True)
    assert snap.load_per_cpu == 2.0


def test_a_cgroup_over_its_limit_has_nothing_available() -> None:
    limits = CgroupLimits(memory_max_bytes=GIB, memory_used_bytes=2 * GIB, cpus=None)
    assert combine(limits, HOST).memory_available_bytes == 0


def test_the_host_wins_when_it_is_tighter_than_the_cgroup() -> None:
    limits = CgroupLimits(memory_max_bytes=64 * GIB, memory_used_bytes=0, cpus=32.0)
    snap = combine(limits, HOST)
    assert (snap.memory_available_bytes, snap.cpus) == (16 * GIB, 8.0)


def test_an_unlimited_cgroup_keeps_the_host_figures() -> None:
    limits = CgroupLimits(memory_max_bytes=None, memory_used_bytes=GIB, cpus=None)
    assert combine(limits, HOST) == HostSnapshot(16 * GIB, None, 8.0, 3.0, from_cgroup=True)


# --- cgroup v2 parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "limit"), [("max\n", None), ("1073741824\n", GIB)])
def test_parse_memory_max(text: str, limit: int | None) -> None:
    assert parse_memory_max(text) == limit


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("200000 100000\n", 2.0), ("50000 100000", 0.5), ("150000", 1.5)],
)
def test_parse_cpu_max(text: str, cpus: float | None) -> None:
    assert parse_cpu_max(text) == cpus


def test_parse_memory_stat_keeps_numeric_lines() -> None:
    text = "anon 100\nfile 2000\ninactive_file 1500\nbogus line here\n\n"
    assert parse_memory_stat(text) == {"anon": 100, "file": 2000, "inactive_file": 1500}


def fake_cgroup(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cgroup.controllers").write_text("cpu memory pids\n")
    for name, text in files.items():
        (directory / name.replace("_", ".", 1)).write_text(text)
    return directory


def test_read_cgroup_subtracts_reclaimable_page_cache(tmp_path: Path) -> None:
    root = fake_cgroup(
        tmp_path,
        memory_max=f"{4 * GIB}\n",
        memory_current=f"{2 * GIB}\n",
        memory_stat=f"anon {GIB}\ninactive_file {512 * MIB}\n",
        cpu_max="150000 100000\n",
    )
    assert read_cgroup(root) == CgroupLimits(4 * GIB, 2 * GIB - 512 * MIB, 1.5)


def test_read_cgroup_without_limit_files(tmp_path: Path) -> None:
    # The root cgroup has no memory.max or cpu.max.
    root = fake_cgroup(tmp_path, memory_current="1000\n")
    assert read_cgroup(root) == CgroupLimits(None, 1000, None)


def test_read_cgroup_with_unlimited_values(tmp_path: Path) -> None:
    root = fake_cgroup(tmp_path, memory_max="max\n", cpu_max="max 100000\n")
    assert read_cgroup(root) == CgroupLimits(None, None, None)


def test_a_directory_without_cgroup_controllers_is_not_cgroup_v2(tmp_path: Path) -> None:
    (tmp_path / "memory").mkdir()  # what a cgroup v1 hierarchy looks like
    assert read_cgroup(tmp_path) is None


def test_own_cgroup_dir_follows_proc_self_cgroup(tmp_path: Path) -> None:
    nested = tmp_path / "system.slice" / "browserfleet.service"
    nested.mkdir(parents=True)
    assert own_cgroup_dir(tmp_path, "0::/system.slice/browserfleet.service\n") == nested


@pytest.mark.parametrize(
    "membership",
    ["0::/\n", "0::/gone.slice/x\n", "4:memory:/docker/abc\n1:cpu:/\n", ""],
)
def test_own_cgroup_dir_falls_back_to_the_root(tmp_path: Path, membership: str) -> None:
    assert own_cgroup_dir(tmp_path, membership) == tmp_path


def test_probe_reads_a_fake_cgroup_v2_tree(tmp_path: Path) -> None:
    fake_cgroup(
        tmp_path / "cg" / "app.slice",
        memory_max=f"{64 * MIB}\n",
        memory_current=f"{16 * MIB}\n",
        cpu_max="25000 100000\n",
    )
    membership = tmp_path / "cgroup"
    membership.write_text("0::/app.slice\n")
    snap = HostProbe(tmp_path / "cg", membership).snapshot()
    assert snap.from_cgroup
    assert snap.memory_limit_bytes == 64 * MIB
    assert snap.memory_available_bytes == 48 * MIB  # the host has more than that
    assert snap.cpus == 0.25


def test_probe_falls_back_to_the_host_without_cgroup_v2(tmp_path: Path) -> None:
    snap = HostProbe(tmp_path / "missing", tmp_path / "no-cgroup-file").snapshot()
    assert not snap.from_cgroup
    assert snap.memory_limit_bytes is None
    assert snap.memory_available_bytes > 0
    assert snap.cpus >= 1
