"""All configuration, read from arguments and BROWSERFLEET_* environment variables.

Built in main() or by tests, never at import time.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# The drivers browserfleet ships; a URL naming the backend alone gets its driver.
DATABASE_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}


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


class StealthSettings(BaseModel):
    """Sessions that websites cannot tell from a person's Chrome (README: Stealth)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    # False: plain Chromium (navigator.webdriver, HeadlessChrome, the host's timezone).
    enabled: bool = True
    # Proxy country code whose timezone and locale sessions with a custom proxy show, and the
    # same for sessions that go direct. None: the host's own timezone and language.
    custom_proxy_country: str | None = None
    direct_country: str | None = None

    @field_validator("custom_proxy_country", "direct_country")
    @classmethod
    def _known_country(cls, code: str | None) -> str | None:
        from browserfleet.regions import COUNTRY_REGIONS  # the table is big: only when set

        if code is None:
            return None
        if code.lower() not in COUNTRY_REGIONS:
            raise ValueError(f"{code!r} is not a proxy country code (e.g. us, de, uk)")
        return code.lower()


class LimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    default_concurrent_sessions: int = Field(10, ge=1)
    # How many browsers this host may run at once (all projects together).
    host_max_browsers: int = Field(20, ge=1)
    retry_after_s: int = Field(5, ge=1, le=10)


class StorageBackend(StrEnum):
    LOCAL = "local"
    S3 = "s3"


class S3AddressingStyle(StrEnum):
    AUTO = "auto"
    PATH = "path"
    VIRTUAL = "virtual"


class StorageSettings(BaseModel):
    """Where profiles, recordings and downloads are kept: a local directory or an S3 bucket."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    backend: StorageBackend = StorageBackend.LOCAL
    # The local store's directory (default: DATA_DIR/blobs).
    local_dir: Path | None = None
    bucket: str | None = Field(None, min_length=3, max_length=63)
    # None: AWS itself. MinIO, Ceph, R2...: their URL, e.g. http://127.0.0.1:9000.
    endpoint_url: str | None = None
    # The endpoint as clients reach it, when it differs (presigned URLs are signed for it).
    public_endpoint_url: str | None = None
    region: str = "us-east-1"
    # Both or neither; neither: boto3's own chain (AWS_* variables, ~/.aws, instance role).
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    # Every key is stored below it, e.g. "browserfleet/" to share a bucket with other data.
    key_prefix: str = ""
    addressing_style: S3AddressingStyle = S3AddressingStyle.AUTO
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(5, ge=1, le=20)

    @field_validator("endpoint_url", "public_endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/") if url is not None else None

    @field_validator("key_prefix")
    @classmethod
    def _folder_prefix(cls, prefix: str) -> str:
        if prefix and (not prefix.endswith("/") or prefix.startswith("/") or "//" in prefix):
            raise ValueError("must be empty or end with '/' (like 'browserfleet/')")
        return prefix

    @model_validator(mode="after")
    def _complete(self) -> StorageSettings:
        if self.backend is StorageBackend.S3 and not self.bucket:
            raise ValueError("the s3 backend needs a bucket (BROWSERFLEET_STORAGE__BUCKET)")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("set both access_key_id and secret_access_key, or neither")
        return self

    def effective_local_dir(self, data_dir: Path) -> Path:
        return self.local_dir if self.local_dir is not None else data_dir / "blobs"


class ProfileSettings(BaseModel):
    """Persistent profiles: how many a project may have, how large one may be, and how long
    the ends of sessions and creates wait for each other."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    max_per_project: int | None = Field(None, ge=0)  # None: unlimited; beyond it POST is a 402
    max_mb: int = Field(500, ge=1)  # the saved state, uncompressed; a larger save is refused
    # A create with a profile whose previous session is still saving waits up to this long.
    save_wait_s: float = Field(30.0, ge=0)
    # A browser closing gracefully (to write its state) gets this long, then it is killed.
    close_grace_s: float = Field(5.0, gt=0)
    save_timeout_s: float = Field(120.0, gt=0)  # packing and uploading one save


class HttpSettings(BaseModel):
    """Limits at the HTTP edge, applied before routing, authentication and parsing."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    max_body_bytes: int = Field(1024 * 1024, ge=1024)  # larger bodies: 413
    max_upload_bytes: int = Field(100 * 1024 * 1024, ge=1024)  # POST .../uploads: 413
    max_head_bytes: int = Field(64 * 1024, ge=4096)  # request line and headers: 431
    max_header_count: int = Field(100, ge=16)
    head_timeout_s: float = Field(10.0, gt=0)  # the whole head, from its first byte: 408
    body_timeout_s: float = Field(60.0, gt=0)  # the whole body, from the end of the head: 408
    # An idle connection between requests is closed after this. Longer than clients' own idle
    # expiry (httpx 5 s, Node 4-5 s) and load balancers' (60 s): the side that hangs up first
    # must be the client, or a request it sends as the server closes fails with no answer.
    keep_alive_s: int = Field(75, ge=1)


class CdpSettings(BaseModel):
    """Caps of the CDP gateway, per session and per message."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    max_websockets: int = Field(32, ge=1)  # open at once per session; the next gets 429
    max_browser_contexts: int = Field(16, ge=1)
    max_targets: int = Field(50, ge=1)  # page targets (tabs) at once
    # One client message, all its fragments together: past it the socket closes with 1009.
    # 100 MiB: Playwright sends a file for set_input_files inside one message, base64, up to
    # its own 50 MB limit (~70 MB); browser-use's 200 MB is what it accepts from Chrome, which
    # is not capped. Memory is bounded: a message is parsed once it is whole, then dropped.
    max_message_bytes: int = Field(100 * 1024 * 1024, ge=1024 * 1024)
    max_fragments: int = Field(1024, ge=1)
    # A session created by connecting (/connect) stops once it has had no client this long.
    connect_grace_s: float = Field(10.0, gt=0, le=600)


class MediaSettings(BaseModel):
    """Recordings, downloads and the live view (README: Recordings, downloads, live view)."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    recording_fps: int = Field(10, ge=1, le=30)
    # Recordings are at most this wide (the screen's aspect ratio kept).
    recording_max_width: int = Field(1280, ge=320, le=3840)
    recording_link_ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    download_link_ttl_s: int = Field(900, ge=60, le=7 * 24 * 3600)
    # A session's downloads, all files together, enforced while it runs (below sandbox.disk_mb).
    downloads_max_mb: int = Field(512, ge=1)
    # Recordings and downloads are deleted this long after they were stored.
    retention_days: float = Field(7.0, gt=0)
    retention_interval_s: float = Field(3600.0, gt=0)
    # Frames a second each live viewer gets at most (viewers of one tab share them).
    viewer_fps: int = Field(30, ge=1, le=60)
    ffmpeg_path: Path = Path("/usr/bin/ffmpeg")


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
    # CPU niceness of everything in a sandbox, above the server's own: when browsers use every
    # core, the API and the CDP gateway (which carries all their clients' traffic) still answer
    # at once. 0: the same priority as the server.
    nice: int = Field(5, ge=0, le=19)


class ClusterSettings(BaseModel):
    """Browsers on the nodes of a Ray cluster (docs/cluster.md). Without an address, this host
    runs every browser itself."""

    model_config = ConfigDict(extra="forbid")  # a misspelt setting fails loudly

    # The head's GCS, "host:port" (e.g. "10.0.0.1:6379"). None: a single host, no Ray.
    address: str | None = None
    # This machine's address in the cluster (the Ray node the API process runs on).
    node_ip: str | None = None
    # How long a create waits for a browser actor to be placed and ready on a node.
    placement_timeout_s: float = Field(20.0, gt=0)
    # Warm browsers each API process keeps on each node with browser slots.
    pool_per_node: int = Field(1, ge=0)
    # Each browser's lease: its API process renews it every LEASE_RENEW_S; a node whose lease
    # is not renewed for LEASE_TTL_S (the API process gone, frozen or cut off from it) ends
    # the browser, and the API process ends a session whose renewals fail that long.
    lease_ttl_s: float = Field(6.0, gt=0)
    lease_renew_s: float = Field(1.0, gt=0)
    # Ports the DevTools forwarders beside the browsers listen on, "first-last".
    forward_ports: str = "47000-47999"
    # Token authentication between the nodes and the API processes (Ray's RAY_AUTH_TOKEN);
    # every node and API process of a cluster needs the same one. None: no authentication.
    auth_token: SecretStr | None = None
    # The head's node health check: a node that misses failure_threshold checks in a row is
    # dead (with these, ~12 s after its raylet stops answering).
    health_check_period_ms: int = Field(2000, ge=100)
    health_check_timeout_ms: int = Field(2000, ge=100)
    health_check_failure_threshold: int = Field(3, ge=1)

    @field_validator("address")
    @classmethod
    def _host_port(cls, address: str | None) -> str | None:
        if address is None or not address.strip():
            return None
        host, port = split_host_port(address.strip())
        return join_host_port(host, port)

    @field_validator("node_ip")
    @classmethod
    def _ip(cls, node_ip: str | None) -> str | None:
        if node_ip is None or not node_ip.strip():
            return None
        try:
            return str(ipaddress.ip_address(node_ip.strip()))
        except ValueError:
            raise ValueError(f"{node_ip!r} is not an IP address") from None

    @field_validator("forward_ports")
    @classmethod
    def _port_range(cls, ports: str) -> str:
        first, last = parse_port_range(ports)
        return f"{first}-{last}"

    @field_validator("auth_token")
    @classmethod
    def _token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or not token.get_secret_value().strip():
            return None
        return SecretStr(token.get_secret_value().strip())

    @model_validator(mode="after")
    def _renewed_within_ttl(self) -> ClusterSettings:
        if self.lease_renew_s * 2 > self.lease_ttl_s:
            raise ValueError(
                f"lease_renew_s ({self.lease_renew_s:g}) must be at most half of "
                f"lease_ttl_s ({self.lease_ttl_s:g}): one late renewal must not end a browser"
            )
        return self

    def forward_port_range(self) -> range:
        first, last = parse_port_range(self.forward_ports)
        return range(first, last + 1)


def split_host_port(address: str) -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; a ValueError naming the expected form."""
    expected = f"{address!r} is not host:port (e.g. 10.0.0.1:6379)"
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{expected}; write an IPv6 address as [addr]:port")
    if not sep or not host or any(c.isspace() or c in "/[]@" for c in host):
        raise ValueError(expected)
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{expected}: the port must be 1-65535")
    return host, int(port_text)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_port_range(ports: str) -> tuple[int, int]:
    """(first, last) of "first-last", both within 1024-65535, first <= last."""
    first_text, sep, last_text = ports.strip().partition("-")
    if not sep or not first_text.strip().isdigit() or not last_text.strip().isdigit():
        raise ValueError(f"{ports!r} is not a port range first-last (e.g. 47000-47999)")
    first, last = int(first_text), int(last_text)
    if not 1024 <= first <= last <= 65535:
        raise ValueError(f"{ports!r}: ports must be 1024-65535, the first not above the last")
    return first, last


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BROWSERFLEET_", env_nested_delimiter="__", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    # Base of every URL handed to clients; defaults to each request's own scheme and host.
    public_url: str | None = None
    # Publish each session's CDP endpoint on a host of its own, e.g. "{token}.cdp.example.com"
    # (a wildcard DNS name and certificate for *.cdp.example.com point at this server); the
    # scheme, and unless the template names one the port, come from the public URL.
    # None: under the public URL's path, {public_url}/cdp/{token}.
    cdp_host_template: str | None = None
    # sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB (a plain
    # sqlite:// or postgresql:// / postgres:// URL gets the driver; no other is supported).
    database_url: str | None = None
    # Derives the CDP tokens (hex or base64, 32+ bytes). None: DATA_DIR/server-secret, created
    # at the first start. Servers sharing a database must share it.
    server_secret: SecretStr | None = None
    # Label /metrics series with project ids (off: one project's activity is no one else's).
    metrics_project_ids: bool = False
    # How long a database statement waits for another process's lock; past it the API
    # answers 503 with Retry-After.
    database_busy_timeout_s: float = Field(30.0, gt=0)
    # Connections each server keeps open to the database, and how many more it may open under
    # load (PostgreSQL's max_connections must cover every server's sum, plus the admin CLI).
    database_pool_size: int = Field(10, ge=1)
    database_max_overflow: int = Field(10, ge=0)
    log_level: str = "INFO"
    # Sweeps wake at each session's timeout; this bounds how late a stop asked on another
    # instance (or a session created since the last sweep) is noticed.
    reaper_interval_s: float = Field(1.0, gt=0)
    heartbeat_interval_s: float = Field(2.0, gt=0)
    browser: BrowserSettings = Field(default_factory=BrowserSettings)
    limits: LimitSettings = Field(default_factory=LimitSettings)
    egress: EgressSettings = Field(default_factory=EgressSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    cdp: CdpSettings = Field(default_factory=CdpSettings)
    stealth: StealthSettings = Field(default_factory=StealthSettings)
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str | None) -> str | None:
        if url is None or not url.strip():
            return None
        return normalize_database_url(url.strip())

    @field_validator("cdp_host_template")
    @classmethod
    def _host_template(cls, template: str | None) -> str | None:
        from browserfleet.cdp.addressing import HostTemplate

        return None if template is None else str(HostTemplate.parse(template))

    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'browserfleet.db'}"

    @property
    def sessions_dir(self) -> Path:
        return self.data_dir / "sessions"


def normalize_database_url(url: str) -> str:
    """`url` with browserfleet's async driver (postgres:// and postgresql:// get asyncpg,
    sqlite:// aiosqlite); a ValueError for anything else. The password is never echoed."""
    if url.startswith("postgres://"):  # Heroku's and libpq's short scheme
        url = "postgresql://" + url.removeprefix("postgres://")
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError("not a database URL (e.g. postgresql://USER:PASSWORD@HOST/DB)") from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    wanted = DATABASE_DRIVERS.get(backend)
    if wanted is None:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    if parsed.drivername not in (backend, wanted):
        raise ValueError(f"unsupported driver {driver!r} for {backend}: use {wanted}")
    return parsed.set(drivername=wanted).render_as_string(hide_password=False)
