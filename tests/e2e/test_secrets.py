"""Secrets kept secret on a real server: CDP tokens only as digests, private database files,
no project ids on /metrics, the initial key never in the log, revoking keys and their sessions."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest
from fleet_server import Janitor, Server, wait_for

pytestmark = pytest.mark.e2e


def test_cdp_tokens_are_stored_only_as_digests(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    token = view["cdpUrl"].rsplit("/", 1)[1]
    assert len(token) >= 22  # at least 128 bits
    assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 200
    with server.http() as client:
        again = client.get(f"/browsers/{view['id']}").json()
    assert again["cdpUrl"] == view["cdpUrl"]  # rendered again from the id, not from storage
    for path in server.data_dir.glob("browserfleet.db*"):
        assert token.encode() not in path.read_bytes(), path.name
    assert token not in server.log_path.read_text()


def test_database_and_secret_files_are_private(server: Server) -> None:
    files = [*server.data_dir.glob("browserfleet.db*"), server.data_dir / "server-secret"]
    assert any(p.name == "browserfleet.db-wal" for p in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_metrics_carry_no_project_ids(server: Server, janitor: Janitor, tag: str) -> None:
    janitor.create(server, timeout=2, metadata={"suite": tag})
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert "browserfleet_sessions_active " in text
    assert "project_id" not in text


def test_the_initial_key_is_not_written_to_a_non_terminal_stdout(server: Server) -> None:
    log = server.log_path.read_text()
    assert server.key not in log
    assert "Initial API key written to" in log


def _status(server: Server, key: str, session_id: str) -> str:
    with server.http(key) as client:
        return str(client.get(f"/browsers/{session_id}").json()["status"])


def test_a_revoked_keys_sessions_stay_stoppable_and_stop_sessions_ends_them(
    server: Server, janitor: Janitor, tag: str
) -> None:
    name, first = server.new_project(concurrent_limit=3)
    second = server.cli("keys", "create", "--project", name).strip().splitlines()[-1]
    third = server.cli("keys", "create", "--project", name).strip().splitlines()[-1]
    kept = janitor.create(server, first, timeout=3, metadata={"suite": tag})
    server.cli("keys", "revoke", first[:11])
    with server.http(first) as client:
        assert client.get(f"/browsers/{kept['id']}").status_code == 401
    assert _status(server, second, kept["id"]) == "active"  # revoking alone stops nothing
    with server.http(second) as client:
        stopped = client.patch(f"/browsers/{kept['id']}", json={"action": "stop"})
    assert stopped.json()["status"] == "stopped"  # another key of the project can stop it

    doomed = janitor.create(server, second, timeout=3, metadata={"suite": tag})
    other = janitor.create(server, third, timeout=3, metadata={"suite": tag})
    out = server.cli("keys", "revoke", second[:11], "--stop-sessions")
    assert "asked 1 session(s)" in out
    wait_for(lambda: _status(server, third, doomed["id"]) == "stopped", what="revoked key's stop")
    assert _status(server, third, other["id"]) == "active"


def test_server_secret_file_is_created_once_and_kept(server: Server) -> None:
    secret = Path(server.data_dir / "server-secret").read_text()
    assert len(bytes.fromhex(secret.strip())) == 32
