"""The admin CLI on each database (`--database-url`), and on one that is down: a clear error,
exit 1, and never the URL's password."""

from __future__ import annotations

from pathlib import Path

import pytest
from postgres_cluster import free_port

from browserfleet.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_admin_cli_manages_projects_and_keys_on_either_database(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    where = ["--data-dir", str(tmp_path), "--database-url", database_url]
    assert _run(capsys, "migrate", *where)[0] == 0
    code, out, _ = _run(
        capsys, "projects", "create", "acme", "--concurrent-limit", "3", "--credits", "12.5", *where
    )
    assert code == 0 and "created project acme" in out
    code, out, _ = _run(capsys, "projects", "set", "acme", "--concurrent-limit", "4", *where)
    assert code == 0 and "acme: concurrent limit 4, credits $12.5" in out
    code, out, _ = _run(capsys, "keys", "create", "--project", "acme", *where)
    key = out.strip().splitlines()[-1]
    assert code == 0 and key.startswith("bu_")
    code, out, _ = _run(capsys, "keys", "list", "--project", "acme", *where)
    prefix = out.split()[1].rstrip("…")
    assert code == 0 and key.startswith(prefix) and out.rstrip().endswith("active")
    code, out, _ = _run(capsys, "keys", "revoke", prefix, "--stop-sessions", *where)
    assert code == 0 and "asked 0 session(s)" in out
    code, out, _ = _run(capsys, "keys", "list", "--project", "acme", *where)
    assert "revoked" in out
    code, _, err = _run(capsys, "projects", "create", "acme", *where)
    assert code == 1 and "acme" in err  # a second project of that name is refused


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    password = "s3cret-never-printed"
    url = f"postgresql://browserfleet:{password}@127.0.0.1:{free_port()}/browserfleet"
    code, out, err = _run(
        capsys, "projects", "list", "--data-dir", str(tmp_path), "--database-url", url
    )
    assert code == 1
    assert "DatabaseUnavailable" in err
    assert password not in out + err
