"""Errors that need a real server: the SDK's own retry behaviour, the CLI changing a running
server's project, and a 429 among real browsers. Every error status and body is checked over
ASGI in tests/integration/api/test_api_errors.py."""

from __future__ import annotations

import pytest
from browser_use_sdk.v3 import BrowserUseError
from fleet_server import TOO_MANY, Janitor, Server

pytestmark = pytest.mark.e2e


def test_sdk_surfaces_401_without_retrying(server: Server) -> None:
    with server.sdk("bu_wrong") as client, pytest.raises(BrowserUseError) as err:
        client.browsers.list()
    assert err.value.status_code == 401
    assert err.value.message == "Invalid API key"


def test_revoked_key_is_401_at_once_on_a_running_server(server: Server, tag: str) -> None:
    _, key = server.new_project()
    with server.http(key) as client:
        key_id = client.get("/billing/account").json()["apiKeyId"]
        server.cli("keys", "revoke", key_id)
        resp = client.post("/browsers", json={"metadata": {"suite": tag}, "timeout": 1})
        assert (resp.status_code, resp.json()) == (401, {"detail": "Invalid API key"})


def test_projects_set_credits_takes_effect_while_the_server_runs(
    server: Server, janitor: Janitor, tag: str
) -> None:
    name, key = server.new_project(credits="0")
    with server.http(key) as client:
        refused = client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert (refused.status_code, refused.json()) == (402, {"detail": "Insufficient credits"})
        server.cli("projects", "set", name, "--credits", "1")
        ok = client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert ok.status_code == 201, ok.text
        janitor.track(server, key, ok.json()["id"])
        client.patch(f"/browsers/{ok.json()['id']}", json={"action": "stop"})


def test_projects_set_concurrent_limit_takes_effect_while_the_server_runs(
    server: Server, janitor: Janitor, tag: str
) -> None:
    name, key = server.new_project(concurrent_limit=1)
    with server.http(key) as client:
        first = janitor.create(server, key, timeout=2, metadata={"suite": tag})
        refused = client.post("/browsers", json={"timeout": 2})
        assert (refused.status_code, refused.json()) == (429, {"detail": TOO_MANY})
        assert refused.headers.get("retry-after") == "5"
        server.cli("projects", "set", name, "--concurrent-limit", "2")
        second = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        assert second.status_code == 201, second.text
        janitor.track(server, key, second.json()["id"])
        assert client.get("/billing/account").json()["concurrentSessionLimit"] == 2
        for view in (first, second.json()):
            client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
