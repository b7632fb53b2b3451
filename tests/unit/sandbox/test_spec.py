"""bubblewrap's options and the host view of a sandbox: pure values, checked exhaustively."""

from __future__ import annotations

from pathlib import PurePosixPath as P

import pytest

from browserfleet.sandbox.spec import (
    GATE,
    PASSED_ENV,
    SESSION,
    HostSystem,
    SandboxFds,
    SandboxLimits,
    bwrap_options,
    gated,
    host_system,
    sandbox_env,
)

MIB = 1024 * 1024
LIMITS = SandboxLimits(
    memory_bytes=4096 * MIB,
    pids=2048,
    disk_bytes=1024 * MIB,
    tmp_bytes=256 * MIB,
    shm_bytes=512 * MIB,
)
HOST = HostSystem(
    binds=(P("/usr"), P("/etc/fonts")),
    links=((P("/lib"), "usr/lib"), (P("/etc/localtime"), "/usr/share/zoneinfo/UTC")),
)
FDS = SandboxFds(info=7, etc=((P("/etc/passwd"), 9), (P("/etc/hosts"), 10)))
STAGING = P("/run/browserfleet/boxes/1879048200")


def options(env: dict[str, str] | None = None) -> list[str]:
    return bwrap_options(HOST, LIMITS, session_source=STAGING, fds=FDS, env=env or {"HOME": "/h"})


def pairs(args: list[str], flag: str, width: int = 1) -> list[tuple[str, ...]]:
    return [tuple(args[i + 1 : i + 1 + width]) for i, a in enumerate(args) if a == flag]


def test_every_namespace_is_new_and_the_sandbox_dies_with_its_parent() -> None:
    args = options()
    assert args[:2] == ["--unshare-all", "--die-with-parent"]
    assert "--share-net" not in args


def test_the_browser_is_uid_1000_with_its_own_hostname() -> None:
    args = options()
    assert pairs(args, "--uid") == [("1000",)]
    assert pairs(args, "--gid") == [("1000",)]
    assert pairs(args, "--hostname") == [("browser",)]


def test_the_host_is_bound_read_only_and_linked_as_probed() -> None:
    args = options()
    assert pairs(args, "--ro-bind", 2) == [("/usr", "/usr"), ("/etc/fonts", "/etc/fonts")]
    assert pairs(args, "--symlink", 2) == [
        ("usr/lib", "/lib"),
        ("/usr/share/zoneinfo/UTC", "/etc/localtime"),
    ]
    assert "--bind-try" not in args and "--dev-bind" not in args


def test_tmp_and_shm_are_private_world_writable_tmpfs_with_their_caps() -> None:
    args = options()
    shm = args.index("/dev/shm")
    tmp = args.index("/tmp")
    assert args[shm - 5 : shm] == ["--perms", "1777", "--size", str(512 * MIB), "--tmpfs"]
    assert args[tmp - 5 : tmp] == ["--perms", "1777", "--size", str(256 * MIB), "--tmpfs"]
    assert args.index("--dev") < shm, "/dev/shm goes on top of the new /dev"


def test_the_session_is_the_only_bind_the_browser_may_write() -> None:
    args = options()
    assert pairs(args, "--bind", 2) == [(str(STAGING), str(SESSION))]


def test_generated_files_are_copied_read_only_from_their_fds() -> None:
    args = options()
    assert pairs(args, "--ro-bind-data", 2) == [("9", "/etc/passwd"), ("10", "/etc/hosts")]
    for index in (i for i, a in enumerate(args) if a == "--ro-bind-data"):
        assert args[index - 2 : index] == ["--perms", "0444"]


def test_the_root_becomes_read_only_after_every_mount() -> None:
    args = options()
    remount = args.index("--remount-ro")
    assert args[remount + 1] == "/"
    mounts = ("--ro-bind", "--bind", "--symlink", "--tmpfs", "--proc", "--dev", "--ro-bind-data")
    assert max(i for i, a in enumerate(args) if a in mounts) < remount


def test_the_environment_is_only_what_we_set() -> None:
    args = options({"HOME": "/session/home", "LANG": "C.UTF-8"})
    assert "--clearenv" in args
    assert args.index("--clearenv") < args.index("--setenv")
    assert pairs(args, "--setenv", 2) == [("HOME", "/session/home"), ("LANG", "C.UTF-8")]


def test_it_starts_in_the_session_and_reports_on_its_info_fd() -> None:
    args = options()
    assert pairs(args, "--chdir") == [("/session",)]
    assert pairs(args, "--info-fd") == [("7",)]
    assert "--block-fd" not in args, "the gate holds the command, not bubblewrap"


def test_the_command_waits_behind_the_gate() -> None:
    assert gated(["/usr/lib/chromium/chromium", "--headless=new"]) == [
        "/bin/sh",
        "-c",
        GATE,
        "browserfleet-gate",
        "/usr/lib/chromium/chromium",
        "--headless=new",
    ]
    assert GATE.startswith("read -r go || exit 111\n")
    assert "kill -KILL -1" in GATE


def test_sandbox_env_keeps_locale_and_time_zone_and_nothing_else() -> None:
    host = {
        "LANG": "de_DE.UTF-8",
        "TZ": "Europe/Berlin",
        "BROWSERFLEET_DATABASE_URL": "postgresql://u:secret@db/x",
        "HTTP_PROXY": "http://proxy",
        "PATH": "/opt/evil",
        "HOME": "/root",
    }
    env = sandbox_env(host)
    assert env == {
        "HOME": "/session/home",
        "TMPDIR": "/tmp",
        "XDG_CONFIG_HOME": "/session/config",
        "XDG_CACHE_HOME": "/session/cache",
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "de_DE.UTF-8",
        "TZ": "Europe/Berlin",
    }
    assert set(PASSED_ENV) == {"LANG", "LANGUAGE", "LC_ALL", "TZ"}


def test_host_system_links_merged_usr_dirs_and_binds_real_ones() -> None:
    found = host_system(
        merged={"/lib": "usr/lib", "/bin": "usr/bin", "/lib64": None},
        optional=[("/etc/fonts", True), ("/etc/ssl/certs", False)],
        localtime="/usr/share/zoneinfo/Etc/UTC",
        executables=[P("/usr/lib/chromium/chromium")],
    )
    assert found.binds == (P("/usr"), P("/lib64"), P("/etc/fonts"))
    assert found.links == (
        (P("/lib"), "usr/lib"),
        (P("/bin"), "usr/bin"),
        (P("/etc/localtime"), "/usr/share/zoneinfo/Etc/UTC"),
    )


@pytest.mark.parametrize(
    ("executable", "extra"),
    [
        (P("/usr/lib/chromium/chromium"), ()),
        (P("/opt/chrome/chrome"), (P("/opt/chrome"),)),
    ],
)
def test_a_browser_outside_usr_gets_its_directory_bound(
    executable: P, extra: tuple[P, ...]
) -> None:
    found = host_system(merged={}, optional=[], localtime=None, executables=[executable])
    assert found.binds == (P("/usr"), *extra)
    assert found.links == ()


def test_a_plain_localtime_file_is_bound_not_linked() -> None:
    found = host_system(
        merged={}, optional=[("/etc/localtime", True)], localtime=None, executables=[]
    )
    assert P("/etc/localtime") in found.binds
    assert found.links == ()


@pytest.mark.parametrize(
    ("disk", "inodes"), [(64 * MIB, 8192), (1024 * MIB, 131072), (16 * MIB, 4096)]
)
def test_workdir_inodes_grow_with_its_size_from_a_floor(disk: int, inodes: int) -> None:
    assert SandboxLimits(1, 1, disk, 1, 1).disk_inodes == inodes
