"""What one browser's sandbox is made of, as pure values: paths, limits and bubblewrap's options.

Inside, the browser sees a read-only system (/usr and the few /etc files Chromium needs), its
own session directory at /session (the only writable place besides a private /tmp and
/dev/shm), its own /proc, a network namespace with nothing but loopback, and itself as uid 1000.
On the host it runs as one uid of the configured range; its session directory is a size-capped
tmpfs that the server can still read after the browser is gone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

SESSION = PurePosixPath("/session")
PROFILE = SESSION / "profile"
DOWNLOADS = SESSION / "downloads"
UPLOADS = SESSION / "uploads"
HOME = SESSION / "home"
CONFIG = SESSION / "config"
CACHE = SESSION / "cache"
# Directories of the workdir, created for the sandbox's uid before it starts (relative names).
WORKDIR_DIRS = ("profile", "profile/Default", "downloads", "uploads", "home", "config", "cache")
# The browser's uid and gid inside its user namespace (outside: one uid of the range). The same
# for every sandbox, so that every sandbox can share one synthetic /etc/passwd.
SANDBOX_UID = 1000
HOSTNAME = "browser"
# The egress proxy's port inside the sandbox's network namespace. Every namespace has its own
# port space, so a fixed port collides with nothing, and the browser's command line (built
# before the namespace exists) can name it.
PROXY_PORT = 8080
# Host environment variables a browser may inherit (locale and time zone); nothing else of the
# server's environment (which holds database URLs and proxy passwords) gets in.
PASSED_ENV = ("LANG", "LANGUAGE", "LC_ALL", "TZ")
SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    """Per-session caps. tmpfs pages (disk, /tmp, /dev/shm) are charged to the memory cgroup of
    whoever writes them, so memory_bytes must leave room for what the browser writes there."""

    memory_bytes: int
    pids: int
    disk_bytes: int
    tmp_bytes: int
    shm_bytes: int

    @property
    def disk_inodes(self) -> int:
        """Files the workdir may hold: one per 8 KiB of its size (a profile is mostly small
        files), so a tenant cannot pin kernel memory with millions of empty ones."""
        return max(4096, self.disk_bytes // 8192)


@dataclass(frozen=True, slots=True)
class HostSystem:
    """What of the host's filesystem every sandbox sees, read-only (probed once at start)."""

    binds: tuple[PurePosixPath, ...]  # bound read-only at the same path
    links: tuple[tuple[PurePosixPath, str], ...]  # (path inside, symlink target)


@dataclass(frozen=True, slots=True)
class SandboxFds:
    """File descriptors bubblewrap inherits for one sandbox."""

    info: int  # bwrap writes {"child-pid": N, ...} here once the namespaces exist
    etc: tuple[tuple[PurePosixPath, int], ...]  # generated files: (path inside, fd to copy)


# The first process inside: a shell on the server's gate pipe (its stdin). It starts the browser
# only once the server says "go" (the egress proxy listens by then), and kills everything in the
# sandbox when the pipe's last writer, the server, is gone, however it died. (bubblewrap's own
# --die-with-parent cannot cover a server that dies before bubblewrap's init has bound itself
# to its parent: an init orphaned then would run the browser on.) When the browser exits, so
# does the shell, and with it the sandbox. Only fds 0-9 are usable here: dash knows no more.
GATE = """read -r go || exit 111
exec 3<&0 0</dev/null
"$@" &
browser=$!
(while read -r _; do :; done; kill -KILL -1) <&3 &
exec 3<&-
wait "$browser"
"""


def gated(argv: Iterable[str]) -> list[str]:
    """The sandbox's command: argv behind the gate (see GATE)."""
    return ["/bin/sh", "-c", GATE, "browserfleet-gate", *argv]


def bwrap_options(
    host: HostSystem,
    limits: SandboxLimits,
    *,
    session_source: PurePosixPath,
    fds: SandboxFds,
    env: Mapping[str, str],
) -> list[str]:
    """bubblewrap's options for one sandbox (the command follows them after `--`).

    session_source is a host path of the session's workdir that the sandbox's uid can reach.
    """
    options = [
        "--unshare-all",  # user, ipc, pid, net, uts, cgroup namespaces
        "--die-with-parent",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        HOSTNAME,
    ]
    for path in host.binds:
        options += ["--ro-bind", str(path), str(path)]
    for path, target in host.links:
        options += ["--symlink", target, str(path)]
    options += ["--proc", "/proc", "--dev", "/dev"]
    options += _tmpfs(PurePosixPath("/dev/shm"), limits.shm_bytes)
    options += _tmpfs(PurePosixPath("/tmp"), limits.tmp_bytes)
    options += ["--bind", str(session_source), str(SESSION)]
    for path, fd in fds.etc:
        options += ["--perms", "0444", "--ro-bind-data", str(fd), str(path)]
    # Last: the sandbox's root (and /etc in it) becomes read-only once everything is in place.
    options += ["--remount-ro", "/", "--clearenv"]
    for name, value in env.items():
        options += ["--setenv", name, value]
    options += ["--chdir", str(SESSION), "--info-fd", str(fds.info)]
    return options


def _tmpfs(path: PurePosixPath, size: int) -> list[str]:
    return ["--perms", "1777", "--size", str(size), "--tmpfs", str(path)]


def sandbox_env(host_env: Mapping[str, str]) -> dict[str, str]:
    """The browser's whole environment."""
    env = {
        "HOME": str(HOME),
        "TMPDIR": "/tmp",
        "XDG_CONFIG_HOME": str(CONFIG),
        "XDG_CACHE_HOME": str(CACHE),
        "PATH": SEARCH_PATH,
    }
    env.update({name: host_env[name] for name in PASSED_ENV if name in host_env})
    return env


def host_system(
    *,
    merged: Mapping[str, str | None],
    optional: Iterable[tuple[str, bool]],
    localtime: str | None,
    executables: Iterable[PurePosixPath],
) -> HostSystem:
    """The read-only view of the host, from what was found on it.

    merged: top-level directories that may be symlinks into /usr (/lib, /bin...) and their link
    target (None: a real directory, bound as is). optional: (path, exists) of the /etc files and
    caches Chromium uses. localtime: /etc/localtime's symlink target, or None when it is a file
    (then bound). executables: browser binaries, whose directories are bound if /usr does not
    hold them.
    """
    binds = [PurePosixPath("/usr")]
    links: list[tuple[PurePosixPath, str]] = []
    for name, target in merged.items():
        if target is None:
            binds.append(PurePosixPath(name))
        else:
            links.append((PurePosixPath(name), target))
    binds += [PurePosixPath(path) for path, exists in optional if exists]
    if localtime is not None:
        links.append((PurePosixPath("/etc/localtime"), localtime))
    for executable in executables:
        directory = executable.parent
        if not any(directory.is_relative_to(bound) for bound in binds):
            binds.append(directory)
    return HostSystem(tuple(binds), tuple(links))
