"""A throwaway PostgreSQL server for the tests: Debian's own binaries, initdb into a temp dir,
listening on 127.0.0.1 (a free port) and a socket dir of its own, stopped and removed after.

Runs as the `postgres` user when the tests run as root (PostgreSQL refuses root). The app
connects as an ordinary role that owns its databases, as in production (docs/postgresql.md).
Each test gets a fresh database cloned from a template that is migrated once (a clone costs
a few milliseconds; migrating costs far more).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from browserfleet.store.migrate import upgrade

# Shows in every server process's title, so CI's leak check can tell our servers from others.
CLUSTER_NAME = "browserfleet-test"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
APP_ROLE = "browserfleet"
TEMPLATE = "bf_template"
BIN_ENV = "BROWSERFLEET_TEST_PG_BINDIR"


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed or would not start (the tests fail on it, never skip)."""


def find_bindir() -> Path:
    """Debian's newest PostgreSQL (/usr/lib/postgresql/<major>/bin), or $BIN_ENV's."""
    if os.environ.get(BIN_ENV):
        candidates = [Path(os.environ[BIN_ENV])]
    else:
        found = Path("/usr/lib/postgresql").glob("*/bin")
        candidates = sorted(found, key=lambda p: _major(p.parent.name), reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / tool, os.X_OK) for tool in ("initdb", "postgres")):
            return bindir
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin: "
        "`make setup` installs Debian's postgresql package"
    )


def _major(name: str) -> int:
    return int(name) if name.isdigit() else -1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One postgres server process (our child), its data dir under `base`, its superuser."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.port = port or free_port()
        self.bindir = find_bindir()
        self.pgdata = base / "pgdata"
        self.sockets = base / "sockets"
        self.log_path = base / "postgres.log"
        self.superuser_password = secrets.token_hex(16)
        self.app_password = secrets.token_hex(16)
        self.proc: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0

    # ---- URLs -----------------------------------------------------------------------------
    def admin_dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres:{self.superuser_password}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The app's SQLAlchemy URL for `database` (the ordinary role, by password, over TCP)."""
        return (
            f"postgresql+asyncpg://{APP_ROLE}:{self.app_password}@127.0.0.1:{self.port}/{database}"
        )

    # ---- process --------------------------------------------------------------------------
    def init(self) -> None:
        """initdb with a superuser password; local socket trust is not used by the tests."""
        for path in (self.pgdata, self.sockets):
            path.mkdir(mode=0o700)
        self.base.chmod(0o711)  # the postgres user must reach its directories inside
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.superuser_password + "\n")
        self._own(self.pgdata, self.sockets, pwfile)
        try:
            self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                f"--pwfile={pwfile}",
                "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.sockets),
            "cluster_name": CLUSTER_NAME,
            "max_connections": "300",
            # Durability is not under test: these make a test database cheap.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "64MB",
            "log_min_messages": "warning",
            "log_min_error_statement": "panic",
        }
        args = [str(self.bindir / "postgres"), "-D", str(self.pgdata)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **self._user_kwargs(),
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        """postmaster.pid's last line says `ready` once connections are accepted."""
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        pidfile = self.pgdata / "postmaster.pid"
        while True:
            if self.proc.poll() is not None:
                raise PostgresUnavailable(f"postgres exited: {self.proc.returncode}\n{self.log()}")
            with contextlib.suppress(FileNotFoundError, PermissionError):
                lines = pidfile.read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise PostgresUnavailable(f"postgres not ready in {START_TIMEOUT_S}s\n{self.log()}")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        """Shut the server down (`fast`: SIGINT, `immediate`: SIGQUIT) and wait for it."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return "(no log)"

    def _user_kwargs(self) -> dict[str, Any]:
        if not self._as_postgres:
            return {}
        entry = pwd.getpwnam("postgres")
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def _own(self, *paths: Path) -> None:
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            for path in paths:
                os.chown(path, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        done = subprocess.run(
            args, capture_output=True, text=True, env=env, check=False, **self._user_kwargs()
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"{args[0]} failed ({done.returncode}):\n{done.stderr}")

    # ---- databases ------------------------------------------------------------------------
    async def admin(self, sql: str) -> None:
        conn = await asyncpg.connect(self.admin_dsn(), timeout=30)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def prepare(self) -> None:
        """The app's role and the migrated template every test database is cloned from."""
        await self.admin(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{self.app_password}'")
        await self.admin(f"CREATE DATABASE {TEMPLATE} OWNER {APP_ROLE}")
        await upgrade(self.url(TEMPLATE))

    async def create_database(self, *, migrated: bool = True) -> str:
        """A fresh database owned by the app's role: migrated (a clone of the template), or
        empty (a clone of template0); returns its name."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        template = TEMPLATE if migrated else "template0"
        await self.admin(f"CREATE DATABASE {name} TEMPLATE {template} OWNER {APP_ROLE}")
        return name

    async def drop_database(self, name: str) -> None:
        if not re.fullmatch(r"t_[0-9a-f]{16}", name):
            raise ValueError(f"not a test database: {name}")
        await self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def started_cluster(base: Path) -> PostgresCluster:
    """initdb, start, create the role and template; on any failure nothing is left running."""
    cluster = PostgresCluster(base)
    try:
        cluster.init()
        cluster.start()
        # In a thread of its own: the fixture may be set up while an event loop runs.
        with concurrent.futures.ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, cluster.prepare()).result()
    except BaseException:
        cluster.stop("immediate")
        raise
    return cluster
