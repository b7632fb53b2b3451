"""All configuration, read from arguments and BROWSERFLEET_* environment variables.

Built in main() or by tests, never at import time.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class BrowserMode(StrEnum):
    HEADLESS_NEW = "headless-new"
    HEADLESS_SHELL = "headless-shell"


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "browserfleet"


class BrowserSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    mode: BrowserMode = BrowserMode.HEADLESS_NEW
    chromium_path: Path = Path("/usr/lib/chromium/chromium")
    headless_shell_path: Path = Path("/usr/lib/chromium/chromium-headless-shell")
    launch_timeout_s: float = Field(20.0, gt=0)
    # Browsers starting at once; more wait their turn (None: the number of CPUs).
    parallel_launches: int | None = Field(None, ge=1)
    # Extra Chromium switches, e.g. the tests' --host-resolver-rules.
    extra_args: list[str] = Field(default_factory=list)
    # Only with isolation "none" (a sandboxed browser always keeps Chromium's own sandbox):
    # Chromium refuses to start as root with its sandbox on.
    no_sandbox: bool = True
    # Warm pool: browsers launched ahead of demand. None sizes it to the host; 0 disables it.
    pool_size: int | None = Field(None, ge=0)

    def effective_parallel_launches(self) -> int:
        return self.parallel_launches or max(1, os.cpu_count() or 1)

    def effective_pool_size(self) -> int:
        if self.pool_size is not None:
            return self.pool_size
        return max(1, min(4, os.cpu_count() or 1))


class EgressSettings(BaseModel):
    """Every browser reaches the network only through its own egress proxy."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    # Networks a direct route may reach despite the guard (loopback, private, metadata...),
    # e.g. ["127.0.0.0/8"] for pages served on this host in tests.
    allow_networks: list[str] = Field(default_factory=list)
    # TOML: [countries] us = ["http://user-{session}:pw@host:port"], "*" = [...];
    # strict_countries = false; [rates] managed/custom/direct = "USD per GB".
    pools_file: Path | None = None
    connect_timeout_s: float = Field(10.0, gt=0)


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    default_concurrent_sessions: int = Field(10, ge=1)
    # How many browsers this host may run at once (all projects together).
    host_max_browsers: int = Field(20, ge=1)
    retry_after_s: int = Field(5, ge=1, le=10)


class Isolation(StrEnum):
    SANDBOX = "sandbox"  # every browser in an OS sandbox of its own (the default)
    NONE = "none"  # browsers run as the server's user: development without namespaces only


MIB = 1024 * 1024
# The first uid of systemd's unused range 1879048192..2147483647 (0x70000000): no distribution,
# systemd or container manager allocates there (systemd.io/UIDS-GIDS).
DEFAULT_UID_FIRST = 0x70000000


class SandboxSettings(BaseModel):
    """The per-browser OS sandbox. Limits are ceilings, not reservations (see the README)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    isolation: Isolation = Isolation.SANDBOX
    bwrap_path: Path = Path("/usr/bin/bwrap")
    # Sandboxes run as uids uid_first .. uid_first + uid_count - 1, one uid per browser.
    uid_first: int = Field(DEFAULT_UID_FIRST, ge=65536, le=2**31 - 1)
    uid_count: int = Field(1024, ge=1, le=65536)
    # Memory of everything in the sandbox, including what it writes to its tmpfs (disk, /tmp,
    # /dev/shm): a busy browser plus a full disk stays under it.
    memory_mb: int = Field(4096, ge=256)
    # Tasks (processes and threads): Chromium runs ~20-40 threads per process.
    pids: int = Field(2048, ge=64)
    disk_mb: int = Field(1024, ge=64)  # the session directory: profile, cache, downloads
    tmp_mb: int = Field(256, ge=16)
    shm_mb: int = Field(1024, ge=16)
    # Host-wide: uid lock files and mount points. Its ancestors must be traversable by all.
    run_dir: Path = Path("/run/browserfleet")
    # A cgroup path (the same in each hierarchy) for sandboxes' cgroups, instead of
    # "<the server's own cgroup>/browserfleet".
    cgroup_parent: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BROWSERFLEET_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    # Base of every URL handed to clients; defaults to http://{host}:{port}.
    public_url: str | None = None
    database_url: str | None = None
    log_level: str = "INFO"
    # Sweeps wake at each session's timeout; this bounds how late a stop asked on another
    # instance (or a session created since the last sweep) is noticed.
    reaper_interval_s: float = Field(1.0, gt=0)
    heartbeat_interval_s: float = Field(2.0, gt=0)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)

    def effective_public_url(self, bound_port: int | None = None) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{bound_port or self.port}"

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'browserfleet.db'}"

    @property
    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"
