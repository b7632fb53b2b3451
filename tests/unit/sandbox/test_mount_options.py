"""Mount options and /proc/self/mountinfo parsing (pure)."""

from __future__ import annotations

from pathlib import Path

from browserfleet.sandbox.mounts import (
    MountEntry,
    parse_mountinfo,
    sandbox_mounts,
    tmpfs_options,
)

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 /docker/abc /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
90 22 0:50 / /data/sessions/a\\040b rw shared:7 master:3 - tmpfs browserfleet rw,size=1024k
91 22 0:50 / /run/browserfleet/boxes/1879048200 rw - tmpfs browserfleet rw,size=1024k
92 90 0:51 / /data/sessions/a\\040b/inner rw - tmpfs browserfleet rw
93 22 0:52 / /tmp rw - tmpfs tmpfs rw
garbage line
"""


def test_tmpfs_options_cap_size_and_inodes_and_close_it_to_others() -> None:
    assert (
        tmpfs_options(size=1024, inodes=4096, uid=1879048200, gid=1879048200)
        == "size=1024,nr_inodes=4096,mode=0700,uid=1879048200,gid=1879048200"
    )


def test_mountinfo_fields_with_optional_fields_and_escapes() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert len(entries) == 7
    assert entries[1] == MountEntry(
        Path("/sys/fs/cgroup/memory"), "cgroup", "cgroup", "rw,memory", "/"
    )
    assert entries[2].root == "/docker/abc"
    assert entries[3].target == Path("/data/sessions/a b")
    assert entries[3].source == "browserfleet"
    assert entries[3].fstype == "tmpfs"


def test_sandbox_mounts_are_ours_only_deepest_first() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert sandbox_mounts(entries) == [
        Path("/data/sessions/a b/inner"),
        Path("/run/browserfleet/boxes/1879048200"),
        Path("/data/sessions/a b"),
    ]


def test_sandbox_mounts_under_a_directory() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert sandbox_mounts(entries, Path("/data")) == [
        Path("/data/sessions/a b/inner"),
        Path("/data/sessions/a b"),
    ]
    assert sandbox_mounts(entries, Path("/data/sessions/a b")) == [
        Path("/data/sessions/a b/inner"),
        Path("/data/sessions/a b"),
    ]
    assert sandbox_mounts(entries, Path("/elsewhere")) == []
