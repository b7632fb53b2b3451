"""Every error status of the contract with its exact body (httpx, so no SDK retries hide one)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from browser_use_sdk.v3 import BrowserUseError

from conftest import TOO_MANY, Janitor, Server

pytestmark = pytest.mark.e2e

NOT_AUTHENTICATED = {"detail": "Not authenticated"}
INVALID_KEY = {"detail": "Invalid API key"}


def assert_no_session_with(server: Server, key: str, tag: str) -> None:
    with server.http(key) as client:
        listed = client.get("/browsers", params={"metadata": f"suite={tag}"}).json()
    assert listed["totalItems"] == 0, f"a rejected create left a session behind: {listed}"


def assert_validation_error(resp: Any, *loc_parts: str) -> list[dict[str, Any]]:
    """FastAPI's list form: {"detail": [{"type", "loc", "msg", "input"?...}]} naming the field."""
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, list) and detail, resp.text
    for item in detail:
        assert {"type", "loc", "msg"} <= set(item), item
        assert isinstance(item["loc"], list) and isinstance(item["msg"], str)
    if loc_parts:
        locs = [[str(p) for p in item["loc"]] for item in detail]
        assert any(
            all(any(p in (part, camel(part)) for p in loc) for part in loc_parts) for loc in locs
        ), f"no error located at {loc_parts}: {locs}"
    return detail


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


# ---- 401 --------------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/browsers", {"timeout": 1}),
    ("GET", "/browsers", None),
    ("GET", f"/browsers/{uuid.uuid4()}", None),
    ("PATCH", f"/browsers/{uuid.uuid4()}", {"action": "stop"}),
    ("GET", "/billing/account", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_missing_api_key_is_401_not_authenticated(
    server: Server, method: str, path: str, body: Any
) -> None:
    with server.http(key="") as client:
        resp = client.request(method, path, json=body)
    assert (resp.status_code, resp.json()) == (401, NOT_AUTHENTICATED)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_unknown_api_key_is_401_invalid_api_key(
    server: Server, method: str, path: str, body: Any
) -> None:
    with server.http(key="bu_this-key-does-not-exist") as client:
        resp = client.request(method, path, json=body)
    assert (resp.status_code, resp.json()) == (401, INVALID_KEY)


def test_revoked_key_is_401_invalid_api_key_and_creates_nothing(server: Server, tag: str) -> None:
    _, key = server.new_project()
    with server.http(key) as client:
        account = client.get("/billing/account")
        assert account.status_code == 200
        key_id = account.json()["apiKeyId"]
        server.cli("keys", "revoke", key_id)
        resp = client.post("/browsers", json={"metadata": {"suite": tag}, "timeout": 1})
        assert (resp.status_code, resp.json()) == (401, INVALID_KEY)
        assert client.get("/billing/account").json() == INVALID_KEY


def test_sdk_surfaces_401_without_retrying(server: Server) -> None:
    with server.sdk("bu_wrong") as client, pytest.raises(BrowserUseError) as err:
        client.browsers.list()
    assert err.value.status_code == 401
    assert err.value.message == "Invalid API key"


# ---- 403 / 404 / 402 ----------------------------------------------------------------------


def test_timeout_above_240_minutes_is_403_and_creates_nothing(server: Server, tag: str) -> None:
    with server.http() as client:
        resp = client.post("/browsers", json={"timeout": 241, "metadata": {"suite": tag}})
    assert (resp.status_code, resp.json()) == (
        403,
        {"detail": "Maximum session timeout is 4 hours (240 minutes)."},
    )
    assert_no_session_with(server, server.key, tag)


def test_unknown_profile_is_404_profile_not_found_and_creates_nothing(
    server: Server, tag: str
) -> None:
    with server.http() as client:
        resp = client.post(
            "/browsers",
            json={"profileId": str(uuid.uuid4()), "timeout": 1, "metadata": {"suite": tag}},
        )
    assert (resp.status_code, resp.json()) == (404, {"detail": "Profile not found"})
    assert_no_session_with(server, server.key, tag)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("GET", "", None), ("PATCH", "", {"action": "stop"})],
)
def test_unknown_session_is_404_session_not_found(
    server: Server, method: str, suffix: str, body: Any
) -> None:
    with server.http() as client:
        resp = client.request(method, f"/browsers/{uuid.uuid4()}{suffix}", json=body)
    assert (resp.status_code, resp.json()) == (404, {"detail": "Session not found"})


def test_insufficient_credits_is_402_and_creates_nothing(
    server: Server, janitor: Janitor, tag: str
) -> None:
    # 0.01 USD covers exactly 30 minutes at $0.02/hour, upfront.
    _, key = server.new_project(credits="0.01")
    with server.http(key) as client:
        refused = client.post("/browsers", json={"timeout": 31, "metadata": {"suite": tag}})
        assert (refused.status_code, refused.json()) == (402, {"detail": "Insufficient credits"})
        assert_no_session_with(server, key, tag)
        assert client.get("/billing/account").json()["activeSessionCount"] == 0

        exact = client.post("/browsers", json={"timeout": 30, "metadata": {"suite": tag}})
        assert exact.status_code == 201, exact.text
        janitor.track(server, key, exact.json()["id"])
        # all credits are now held upfront: not even one more minute can be paid
        broke = client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert (broke.status_code, broke.json()) == (402, {"detail": "Insufficient credits"})
        client.patch(f"/browsers/{exact.json()['id']}", json={"action": "stop"})
        # the refund makes room again
        again = client.post("/browsers", json={"timeout": 1, "metadata": {"suite": tag}})
        assert again.status_code == 201, again.text
        janitor.track(server, key, again.json()["id"])
        client.patch(f"/browsers/{again.json()['id']}", json={"action": "stop"})


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


# ---- 429 ----------------------------------------------------------------------------------


def test_over_the_concurrency_limit_is_429_with_retry_after_and_nothing_created(
    server: Server, janitor: Janitor, tag: str
) -> None:
    _, key = server.new_project(concurrent_limit=1)
    with server.http(key) as client:
        first = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        assert first.status_code == 201, first.text
        janitor.track(server, key, first.json()["id"])
        refused = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        assert refused.status_code == 429
        assert refused.json() == {"detail": TOO_MANY}
        assert refused.headers.get("retry-after") == "5"
        listed = client.get("/browsers", params={"metadata": f"suite={tag}"}).json()
        assert [i["id"] for i in listed["items"]] == [first.json()["id"]]
        # stopping frees the slot
        client.patch(f"/browsers/{first.json()['id']}", json={"action": "stop"})
        second = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        assert second.status_code == 201, second.text
        janitor.track(server, key, second.json()["id"])
        client.patch(f"/browsers/{second.json()['id']}", json={"action": "stop"})


def test_projects_set_concurrent_limit_takes_effect_while_the_server_runs(
    server: Server, janitor: Janitor, tag: str
) -> None:
    name, key = server.new_project(concurrent_limit=1)
    with server.http(key) as client:
        first = janitor.create(server, key, timeout=2, metadata={"suite": tag})
        assert client.post("/browsers", json={"timeout": 2}).status_code == 429
        server.cli("projects", "set", name, "--concurrent-limit", "2")
        second = client.post("/browsers", json={"timeout": 2, "metadata": {"suite": tag}})
        assert second.status_code == 201, second.text
        janitor.track(server, key, second.json()["id"])
        assert client.get("/billing/account").json()["concurrentSessionLimit"] == 2
        for view in (first, second.json()):
            client.patch(f"/browsers/{view['id']}", json={"action": "stop"})


# ---- 422 ----------------------------------------------------------------------------------

BAD_CREATE_BODIES = [
    pytest.param({"timeout": 0}, ("body", "timeout"), id="timeout-0"),
    pytest.param({"timeout": -5}, ("body", "timeout"), id="timeout-negative"),
    pytest.param({"timeout": "soon"}, ("body", "timeout"), id="timeout-not-int"),
    pytest.param({"browserScreenWidth": 319}, ("body", "browser_screen_width"), id="width-319"),
    pytest.param({"browserScreenWidth": 6145}, ("body", "browser_screen_width"), id="width-6145"),
    pytest.param({"browserScreenHeight": 319}, ("body", "browser_screen_height"), id="height-319"),
    pytest.param(
        {"browserScreenHeight": 3457}, ("body", "browser_screen_height"), id="height-3457"
    ),
    pytest.param(
        {"metadata": {f"k{i}": "v" for i in range(11)}}, ("body", "metadata"), id="11-pairs"
    ),
    pytest.param({"metadata": {"k" * 65: "v"}}, ("body", "metadata"), id="key-65-chars"),
    pytest.param({"metadata": {"": "v"}}, ("body", "metadata"), id="key-empty"),
    pytest.param({"metadata": {"k": "v" * 513}}, ("body", "metadata"), id="value-513-chars"),
    pytest.param({"metadata": {"k": 1}}, ("body", "metadata"), id="value-not-string"),
    pytest.param({"proxyCountryCode": "gb"}, ("body", "proxy_country_code"), id="country-gb"),
    pytest.param({"proxyCountryCode": "zz"}, ("body", "proxy_country_code"), id="country-zz"),
    pytest.param({"profileId": "not-a-uuid"}, ("body", "profile_id"), id="profile-not-uuid"),
    pytest.param(
        {"customProxy": {"host": "127.0.0.1"}}, ("body", "custom_proxy"), id="proxy-no-port"
    ),
    pytest.param(
        {"customProxy": {"host": "127.0.0.1", "port": 70000}},
        ("body", "custom_proxy"),
        id="proxy-port-70000",
    ),
    pytest.param({"allowResizing": "sometimes"}, ("body", "allow_resizing"), id="resizing-bad"),
]


@pytest.mark.parametrize(("body", "loc"), BAD_CREATE_BODIES)
def test_invalid_create_body_is_422_in_fastapi_list_form_and_creates_nothing(
    server: Server, tag: str, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    tagged = "metadata" not in body
    body = {"timeout": 1, "metadata": {"suite": tag}, **body}
    with server.http() as client:
        resp = client.post("/browsers", json=body)
    assert_validation_error(resp, *loc)
    if tagged:
        assert_no_session_with(server, server.key, tag)


def test_non_empty_extension_ids_is_422_with_a_clear_message(server: Server, tag: str) -> None:
    with server.http() as client:
        resp = client.post(
            "/browsers",
            json={"timeout": 1, "extensionIds": [str(uuid.uuid4())], "metadata": {"suite": tag}},
        )
    detail = assert_validation_error(resp)
    assert any(
        "xtension" in item["msg"] or any("xtension" in str(p) for p in item["loc"])
        for item in detail
    ), detail
    assert_no_session_with(server, server.key, tag)


def test_create_without_a_body_is_422(server: Server) -> None:
    with server.http() as client:
        resp = client.post("/browsers")
    assert_validation_error(resp)


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"pageSize": 0}, ("query", "pageSize")),
        ({"pageSize": 101}, ("query", "pageSize")),
        ({"pageNumber": 0}, ("query", "pageNumber")),
        ({"filterBy": "running"}, ("query", "filterBy")),
        ({"agentSessionId": "nope"}, ("query", "agentSessionId")),
    ],
)
def test_invalid_list_query_is_422(
    server: Server, params: dict[str, Any], loc: tuple[str, ...]
) -> None:
    with server.http() as client:
        resp = client.get("/browsers", params=params)
    assert_validation_error(resp, *loc)


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [("GET", "", None), ("PATCH", "", {"action": "stop"})],
)
def test_malformed_session_id_is_422(server: Server, method: str, suffix: str, body: Any) -> None:
    with server.http() as client:
        resp = client.request(method, f"/browsers/not-a-uuid{suffix}", json=body)
    assert_validation_error(resp, "path")


@pytest.mark.parametrize(
    "body", [{"action": "start"}, {"action": "STOP"}, {}, {"action": None}], ids=str
)
def test_patch_with_an_action_other_than_stop_is_422_and_leaves_the_session_active(
    server: Server, janitor: Janitor, tag: str, body: dict[str, Any]
) -> None:
    view = janitor.create(server, timeout=2, metadata={"suite": tag})
    with server.http() as client:
        resp = client.patch(f"/browsers/{view['id']}", json=body)
        assert_validation_error(resp, "body")
        assert client.get(f"/browsers/{view['id']}").json()["status"] == "active"
        client.patch(f"/browsers/{view['id']}", json={"action": "stop"})
