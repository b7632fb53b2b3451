"""Suite-wide leak check: nothing a test started may outlive the run.

Every server the suite starts gets a data dir under a run-specific temp prefix and registers
its ports here; every sandbox runs as a uid of this run's block (tests/support/sandboxes.py).
When the run ends we fail it if any process still names one of those data dirs (a stray
server, or Chromium on the host via --user-data-dir), if a process, mount or cgroup of the
run's sandbox uids remains, if any session dir is left behind, or if any registered port still
listens. Then we clean up so one leaky run does not poison the next (set
BROWSERFLEET_TEST_KEEP_LOGS=DIR to keep every server's log there).

Also the database fixtures: `database_url` is a fresh migrated database per test on each
backend (SQLite, and PostgreSQL on one throwaway server the suite starts on first use).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from postgres_cluster import PostgresCluster, started_cluster
from sandboxes import TEST_UIDS

from browserfleet.sandbox.cgroups import remove_dirs
from browserfleet.sandbox.mounts import unmount_all
from browserfleet.sandbox.residue import Residue, find_residue, kill_uid
from browserfleet.store.migrate import upgrade

LEAK_GRACE_S = 10.0


@dataclass
class SuiteResources:
    """What the suite owns: the temp prefix of its data dirs and the ports it listened on."""

    prefix: str
    data_dirs: list[Path] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)

    def new_data_dir(self) -> Path:
        path = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.data_dirs.append(path)
        return path


RESOURCES_KEY = pytest.StashKey[SuiteResources]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESOURCES_KEY] = SuiteResources(prefix=f"bf-test-{os.getpid()}-")


E2E_DIR = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Folders match markers: a test drives a real Chromium or server process (marked e2e)
    exactly when it lives in tests/e2e, so `pytest tests/unit tests/integration` stays fast and
    `-m "not e2e"` selects the same tests as leaving tests/e2e out."""
    misplaced = [
        item.nodeid
        for item in items
        if (item.get_closest_marker("e2e") is not None) != item.path.is_relative_to(E2E_DIR)
    ]
    if misplaced:
        raise pytest.UsageError(
            "tests marked e2e must live in tests/e2e, and every test there must be marked e2e:\n  "
            + "\n  ".join(misplaced)
        )


@pytest.fixture(scope="session")
def suite_resources(pytestconfig: pytest.Config) -> SuiteResources:
    return pytestconfig.stash[RESOURCES_KEY]


# The store, service and API tests run once per database backend.
DATABASES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def postgres(suite_resources: SuiteResources) -> Iterator[PostgresCluster]:
    """One PostgreSQL server for the whole run, started on first use. It fails the tests that
    need it when it cannot start (never a skip): `make setup` installs Debian's postgresql."""
    cluster = started_cluster(suite_resources.new_data_dir())
    suite_resources.ports.add(cluster.port)
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(params=DATABASES)
def database(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """A fresh, migrated database of each backend: an SQLite file in tmp_path, or a PostgreSQL
    database cloned from the migrated template (dropped after the test)."""
    async with _fresh_database(database, request, tmp_path, migrated=True) as url:
        yield url


@pytest.fixture
async def blank_database_url(
    database: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    """The same, but empty: not migrated (for the migration tests)."""
    async with _fresh_database(database, request, tmp_path, migrated=False) as url:
        yield url


@contextlib.asynccontextmanager
async def _fresh_database(
    database: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool
) -> AsyncIterator[str]:
    if database == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'browserfleet.db'}"
        if migrated:
            await upgrade(url)
        yield url
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    name = await cluster.create_database(migrated=migrated)
    try:
        yield cluster.url(name)
    finally:
        await cluster.drop_database(name)


def processes_of_suite(prefix: str) -> list[psutil.Process]:
    """Every live process whose command line names a data dir of this run (never ourselves)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(prefix in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def listening_ports(ports: set[int]) -> set[int]:
    listening = set()
    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
            listening.add(conn.laddr.port)
    return listening


def leftover_session_dirs(data_dirs: list[Path]) -> list[Path]:
    left: list[Path] = []
    for data_dir in data_dirs:
        sessions = data_dir / "sessions"
        if sessions.is_dir():
            left.extend(p for p in sessions.iterdir() if p.is_dir())
    return left


def sandbox_residue() -> Residue:
    """Processes, mounts and cgroups of this run's sandbox uids."""
    return find_residue(TEST_UIDS)


def find_leaks(resources: SuiteResources) -> list[str]:
    """Leaks that persist past a grace period (browsers take a moment to exit)."""
    deadline = time.monotonic() + LEAK_GRACE_S
    while True:
        procs = processes_of_suite(resources.prefix)
        ports = listening_ports(resources.ports)
        dirs = leftover_session_dirs(resources.data_dirs)
        residue = sandbox_residue()
        if not (procs or ports or dirs or residue) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    leaks = []
    for proc in procs:
        try:
            cmd = " ".join(proc.cmdline())[:300]
        except psutil.Error:
            cmd = "?"
        leaks.append(f"process {proc.pid} still running: {cmd}")
    leaks += [f"port {port} still listening" for port in sorted(ports)]
    leaks += [f"session dir left behind: {path}" for path in dirs]
    leaks += residue.lines()
    return leaks


def clean_up(resources: SuiteResources) -> None:
    for proc in processes_of_suite(resources.prefix):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    residue = sandbox_residue()
    for uid in set(residue.processes.values()):
        with contextlib.suppress(TimeoutError):
            kill_uid(uid, 5.0)
    for mount in residue.mounts:
        with contextlib.suppress(OSError):
            unmount_all(mount)
    remove_dirs(residue.cgroups, 5.0)
    keep = os.environ.get("BROWSERFLEET_TEST_KEEP_LOGS")
    for data_dir in resources.data_dirs:
        if keep and (data_dir / "server.log").exists():
            shutil.copy(data_dir / "server.log", Path(keep) / f"{data_dir.name}.log")
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    resources = session.config.stash[RESOURCES_KEY]
    if not resources.data_dirs and not resources.ports and not sandbox_residue():
        return
    leaks = find_leaks(resources)
    clean_up(resources)
    if leaks:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.section("LEAK CHECK FAILED", sep="=", red=True, bold=True)
            for leak in leaks:
                reporter.line(leak, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
