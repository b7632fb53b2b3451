"""`browserfleet doctor` against a real Chromium, ffmpeg, SQLite file and loopback port."""

from __future__ import annotations

import argparse
import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import loopback
import psutil
import pytest
from sandboxes import TEST_UIDS

from browserfleet.cli import doctor
from browserfleet.cli.doctor import check_data_dir, check_database, check_port, redact
from browserfleet.cli.findings import Status
from browserfleet.settings import BrowserSettings, Isolation, SandboxSettings, Settings
from browserfleet.store.migrate import upgrade

CHROMIUM = Path("/usr/lib/chromium/chromium")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium"),
]


class SuiteResources(Protocol):
    """The suite's leak-checked data dirs (tests/conftest.py)."""

    def new_data_dir(self) -> Path: ...


@pytest.fixture
def data_dir(suite_resources: SuiteResources) -> Path:
    return suite_resources.new_data_dir()


@pytest.fixture
def free_port() -> int:
    return loopback.free_port()


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def sandboxed(**settings: object) -> Settings:
    """Settings with this run's sandbox uids (the suite's leak check watches them)."""
    uids = SandboxSettings(uid_first=TEST_UIDS.first, uid_count=TEST_UIDS.count)
    return Settings(sandbox=uids, **settings)  # type: ignore[arg-type]


def doctor_lines(settings: Settings, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = doctor.run(settings, argparse.Namespace())
    return code, capsys.readouterr().out.splitlines()


def line_of(lines: list[str], check: str) -> str:
    (found,) = [line for line in lines if line.split(":", 1)[0].split(maxsplit=1)[1] == check]
    return found


def processes_naming(path: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(str(path) in part for part in proc.info["cmdline"] or []):
            found.append(proc.pid)
    return found


def test_a_healthy_host_passes_with_a_real_launch(
    data_dir: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = sandboxed(data_dir=data_dir, port=free_port)
    asyncio.run(upgrade(settings.effective_database_url()))

    code, lines = doctor_lines(settings, capsys)

    assert code == 0, lines
    for layer in ("user", "mounts", "network", "cgroups", "chromium sandbox"):
        assert line_of(lines, f"sandbox/{layer}").startswith(f"OK   sandbox/{layer}: ")
    assert f"uids {TEST_UIDS}" in line_of(lines, "sandbox/user")
    assert line_of(lines, "chromium binary").startswith(f"OK   chromium binary: {CHROMIUM}: ")
    assert "Chromium " in line_of(lines, "chromium binary")
    # A loaded CI box may launch slowly: that is a warning, never a failure.
    launch = line_of(lines, "browser launch")
    assert launch.startswith(("OK ", "WARN ")), launch
    assert "browser with CDP ready in" in launch and "closed" in launch
    assert line_of(lines, "ffmpeg").startswith("OK   ffmpeg: ")
    assert line_of(lines, "data dir").startswith(f"OK   data dir: {data_dir} (writable)")
    assert line_of(lines, "database").startswith("OK   database: ")
    assert "schema current" in line_of(lines, "database")
    assert line_of(lines, "port") == f"OK   port: 127.0.0.1:{free_port} is free"
    assert line_of(lines, "capacity").startswith(("OK ", "WARN "))
    assert not any(line.startswith("FAIL") for line in lines)
    assert processes_naming(data_dir) == []
    assert [p.name for p in data_dir.iterdir()] == ["browserfleet.db"]


def test_a_bogus_chromium_path_fails(
    data_dir: Path, free_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bogus = tmp_path / "no-such-chromium"
    settings = sandboxed(
        data_dir=data_dir, port=free_port, browser=BrowserSettings(chromium_path=bogus)
    )

    code, lines = doctor_lines(settings, capsys)

    assert code == 1
    assert line_of(lines, "chromium binary").startswith(
        f"FAIL chromium binary: {bogus} is missing or not executable -> install"
    )
    assert not any("browser launch" in line for line in lines)
    # Nothing else is wrong, and a database that does not exist yet is only a warning.
    assert [line.split()[0] for line in lines].count("FAIL") == 1
    assert line_of(lines, "database").startswith("WARN database: ")
    assert not (data_dir / "browserfleet.db").exists()  # doctor never creates it


def test_a_binary_that_cannot_launch_a_browser_fails(
    data_dir: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # /bin/true answers `--version` (coreutils) but exits at once: no DevTools endpoint.
    settings = sandboxed(
        data_dir=data_dir,
        port=free_port,
        browser=BrowserSettings(chromium_path=Path("/bin/true"), launch_timeout_s=5),
    )

    code, lines = doctor_lines(settings, capsys)

    assert code == 1
    assert line_of(lines, "chromium binary").startswith("OK   chromium binary: /bin/true: true")
    launch = line_of(lines, "browser launch")
    assert launch.startswith("FAIL browser launch: chromium exited with code 0"), launch
    assert launch.endswith("-> run the binary by hand to see why; check no_sandbox and extra_args")
    assert processes_naming(data_dir) == []
    assert list(data_dir.iterdir()) == []  # the launch's scratch dir is gone


def test_without_isolation_there_is_one_warning_and_the_launch_runs_on_the_host(
    data_dir: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = sandboxed(data_dir=data_dir, port=free_port)
    settings = settings.model_copy(
        update={"sandbox": settings.sandbox.model_copy(update={"isolation": Isolation.NONE})}
    )
    code, lines = doctor_lines(settings, capsys)
    assert code == 0, lines
    assert line_of(lines, "isolation").startswith("WARN isolation: isolation is 'none'")
    assert not any(line.split()[1].startswith("sandbox/") for line in lines)
    assert line_of(lines, "browser launch").startswith(("OK ", "WARN "))


async def test_a_port_in_use_is_a_warning(listening_port: int) -> None:
    finding = await check_port("127.0.0.1", listening_port)
    assert finding.status is Status.WARN
    assert finding.detail == f"127.0.0.1:{listening_port} is in use by another program"


async def test_an_unreachable_database_fails_without_showing_its_password() -> None:
    url = "postgresql+asyncpg://fleet:s3cret-pw@127.0.0.1:9/fleet"
    finding = await check_database(url)
    assert finding.status is Status.FAIL
    assert "s3cret" not in finding.line()
    assert "fleet:***@127.0.0.1:9/fleet unreachable" in finding.detail


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://u:p@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact("sqlite+aiosqlite:////var/lib/bf.db") == "sqlite+aiosqlite:////var/lib/bf.db"
    assert redact("not a url") == "(unparsable database URL)"


def test_a_missing_data_dir_under_a_writable_parent_will_be_created(tmp_path: Path) -> None:
    finding = check_data_dir(tmp_path / "a" / "b")
    assert finding.status is Status.OK
    assert finding.detail.startswith(f"{tmp_path / 'a' / 'b'} (will be created), ")
    assert not (tmp_path / "a").exists()


def test_a_data_dir_that_is_a_file_fails(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("")
    assert check_data_dir(target).status is Status.FAIL


async def test_a_migrated_database_of_each_backend_is_ok(database_url: str) -> None:
    finding = await check_database(database_url)
    assert finding.status is Status.OK
    assert finding.detail == f"{redact(database_url)} reachable, schema current"


async def test_an_empty_database_of_each_backend_is_a_warning_to_migrate(
    blank_database_url: str,
) -> None:
    """SQLite: no file yet; PostgreSQL: the database exists, without tables."""
    finding = await check_database(blank_database_url)
    assert finding.status is Status.WARN
    assert finding.detail.startswith(redact(blank_database_url))
    assert "browserfleet migrate" in (finding.fix or "")
