"""Every error status of the API with its exact JSON body, over ASGI with the runtime fakes.

Each rejected create is also checked to have left nothing behind: no session, no charge, no
slot. tests/e2e/test_api_errors.py keeps the few that need a real server process.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from api_checks import assert_validation_error, camel
from api_harness import Api

from browserfleet.api.errors import CONCURRENCY_DETAIL

NOT_AUTHENTICATED = {"detail": "Not authenticated"}
INVALID_KEY = {"detail": "Invalid API key"}
VERSIONS = ("v2", "v3", "v4")

ENDPOINTS = [
    ("POST", "/browsers", {"timeout": 1}),
    ("GET", "/browsers", None),
    ("GET", f"/browsers/{uuid.uuid4()}", None),
    ("PATCH", f"/browsers/{uuid.uuid4()}", {"action": "stop"}),
    ("GET", "/billing/account", None),
]


async def assert_nothing_created(api: Api, key: str | None = None) -> None:
    resp = await api.call("GET", "/browsers", key=key, params={"pageSize": 100})
    assert resp.json()["totalItems"] == 0, f"a rejected create left a session: {resp.text}"
    account = (await api.call("GET", "/billing/account", key=key)).json()
    assert account["activeSessionCount"] == 0
    assert api.launcher.browsers == []


# ---- 401 ----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_missing_api_key_is_401_not_authenticated(
    api: Api, version: str, method: str, path: str, body: Any
) -> None:
    resp = await api.call(method, path, key="", version=version, json=body)
    assert (resp.status_code, resp.json()) == (401, NOT_AUTHENTICATED)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_unknown_api_key_is_401_invalid_api_key(
    api: Api, method: str, path: str, body: Any
) -> None:
    resp = await api.call(method, path, key="bu_this-key-does-not-exist", json=body)
    assert (resp.status_code, resp.json()) == (401, INVALID_KEY)
    assert api.launcher.browsers == []


async def test_revoked_key_is_401_invalid_api_key_and_creates_nothing(api: Api) -> None:
    key = await api.new_project()
    key_id = (await api.call("GET", "/billing/account", key=key)).json()["apiKeyId"]
    await api.projects.revoke_key(key_id)
    resp = await api.call("POST", "/browsers", key=key, json={"timeout": 1})
    assert (resp.status_code, resp.json()) == (401, INVALID_KEY)
    assert api.launcher.browsers == []


# ---- 403 / 404 / 402 ----------------------------------------------------------------------


async def test_timeout_above_240_minutes_is_403_and_creates_nothing(api: Api) -> None:
    resp = await api.call("POST", "/browsers", json={"timeout": 241})
    assert (resp.status_code, resp.json()) == (
        403,
        {"detail": "Maximum session timeout is 4 hours (240 minutes)."},
    )
    await assert_nothing_created(api)


async def test_unknown_profile_is_404_profile_not_found_and_creates_nothing(api: Api) -> None:
    resp = await api.call("POST", "/browsers", json={"profileId": str(uuid.uuid4())})
    assert (resp.status_code, resp.json()) == (404, {"detail": "Profile not found"})
    await assert_nothing_created(api)


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"action": "stop"})])
async def test_unknown_session_is_404_session_not_found(api: Api, method: str, body: Any) -> None:
    resp = await api.call(method, f"/browsers/{uuid.uuid4()}", json=body)
    assert (resp.status_code, resp.json()) == (404, {"detail": "Session not found"})


async def test_another_projects_session_is_404_for_get_and_stop(api: Api) -> None:
    created = (await api.call("POST", "/browsers", json={})).json()
    intruder = await api.new_project()
    for method, body in (("GET", None), ("PATCH", {"action": "stop"})):
        resp = await api.call(method, f"/browsers/{created['id']}", key=intruder, json=body)
        assert (resp.status_code, resp.json()) == (404, {"detail": "Session not found"})
    mine = await api.call("GET", f"/browsers/{created['id']}")
    assert mine.json()["status"] == "active"  # the intruder's stop did nothing


async def test_insufficient_credits_is_402_and_a_stop_refunds_room_again(api: Api) -> None:
    key = await api.new_project(credits_micros=10_000)  # exactly 30 minutes upfront
    refused = await api.call("POST", "/browsers", key=key, json={"timeout": 31})
    assert (refused.status_code, refused.json()) == (402, {"detail": "Insufficient credits"})
    await assert_nothing_created(api, key)
    exact = await api.call("POST", "/browsers", key=key, json={"timeout": 30})
    assert exact.status_code == 201, exact.text
    broke = await api.call("POST", "/browsers", key=key, json={"timeout": 1})
    assert (broke.status_code, broke.json()) == (402, {"detail": "Insufficient credits"})
    await api.call("PATCH", f"/browsers/{exact.json()['id']}", key=key, json={"action": "stop"})
    again = await api.call("POST", "/browsers", key=key, json={"timeout": 1})
    assert again.status_code == 201, again.text


# ---- 429 / 503 ----------------------------------------------------------------------------


async def test_over_the_concurrency_limit_is_429_with_retry_after_and_nothing_created(
    api: Api,
) -> None:
    key = await api.new_project(concurrent_limit=1)
    first = await api.call("POST", "/browsers", key=key, json={})
    assert first.status_code == 201
    refused = await api.call("POST", "/browsers", key=key, json={})
    assert (refused.status_code, refused.json()) == (429, {"detail": CONCURRENCY_DETAIL})
    assert refused.headers["retry-after"] == "5"
    listed = (await api.call("GET", "/browsers", key=key)).json()
    assert [i["id"] for i in listed["items"]] == [first.json()["id"]]
    assert len(api.launcher.browsers) == 1
    await api.call("PATCH", f"/browsers/{first.json()['id']}", key=key, json={"action": "stop"})
    assert (await api.call("POST", "/browsers", key=key, json={})).status_code == 201


async def test_a_failed_launch_is_503_with_retry_after_refunded_and_invisible(api: Api) -> None:
    api.launcher.fail_next = True
    resp = await api.call("POST", "/browsers", json={"timeout": 10})
    assert (resp.status_code, resp.json()) == (
        503,
        {"detail": "The browser failed to start; retry shortly."},
    )
    assert resp.headers["retry-after"] == "5"
    assert (await api.call("GET", "/browsers")).json()["totalItems"] == 0
    assert (await api.call("GET", "/billing/account")).json()["activeSessionCount"] == 0


# ---- 422: the body ------------------------------------------------------------------------

BAD_CREATE_BODIES = [
    pytest.param({"timeout": 0}, ("body", "timeout"), id="timeout-0"),
    pytest.param({"timeout": -5}, ("body", "timeout"), id="timeout-negative"),
    pytest.param({"timeout": "soon"}, ("body", "timeout"), id="timeout-not-int"),
    pytest.param({"timeout": "30"}, ("body", "timeout"), id="timeout-numeric-string"),
    pytest.param({"timeout": True}, ("body", "timeout"), id="timeout-true"),
    pytest.param({"timeout": 30.5}, ("body", "timeout"), id="timeout-fraction"),
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
    pytest.param({"metadata": {"k": "a\x00b"}}, ("body", "metadata"), id="value-nul"),
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
    pytest.param(
        {"customProxy": {"host": "127.0.0.1", "port": "8080"}},
        ("body", "custom_proxy"),
        id="proxy-port-string",
    ),
    pytest.param({"allowResizing": "sometimes"}, ("body", "allow_resizing"), id="resizing-bad"),
    pytest.param({"allowResizing": "true"}, ("body", "allow_resizing"), id="resizing-string"),
    pytest.param({"allowResizing": 1}, ("body", "allow_resizing"), id="resizing-one"),
    pytest.param({"enableRecording": "yes"}, ("body", "enable_recording"), id="recording-yes"),
    pytest.param({"extensionIds": [str(uuid.uuid4())]}, ("body", "extension_ids"), id="ext"),
    pytest.param({"extensionIds": "x"}, ("body", "extension_ids"), id="ext-not-list"),
]


@pytest.mark.parametrize(("body", "loc"), BAD_CREATE_BODIES)
async def test_invalid_create_body_is_422_in_fastapi_list_form_and_creates_nothing(
    api: Api, body: dict[str, Any], loc: tuple[str, ...]
) -> None:
    resp = await api.call("POST", "/browsers", json=body)
    assert_validation_error(resp, *loc)
    await assert_nothing_created(api)


async def test_a_whole_float_is_the_integer_json_schema_says_it_is(api: Api) -> None:
    resp = await api.call("POST", "/browsers", json={"timeout": 30.0, "browserScreenWidth": 1e3})
    assert resp.status_code == 201, resp.text
    assert resp.json()["timeoutAt"] == "2026-07-15T20:30:00Z"
    assert api.launcher.browsers[0].spec.screen_width == 1000


async def test_extension_ids_422_says_extensions_are_unsupported(api: Api) -> None:
    resp = await api.call("POST", "/browsers", json={"extensionIds": [str(uuid.uuid4())]})
    detail = assert_validation_error(resp, "body", "extension_ids")
    assert any("not supported" in item["msg"] for item in detail), detail
    assert (await api.call("POST", "/browsers", json={"extensionIds": []})).status_code == 201


RAW_BODIES = [
    pytest.param(b'{"timeout": NaN}', "timeout", id="nan"),
    pytest.param(b'{"timeout": Infinity}', "timeout", id="infinity"),
    pytest.param(b'{"timeout": -Infinity}', "timeout", id="minus-infinity"),
    pytest.param(b'{"timeout": 1e999}', "timeout", id="1e999"),
    pytest.param(b'{"browserScreenWidth": NaN}', "browserScreenWidth", id="width-nan"),
    pytest.param(b'{"metadata": {"k": "\\ud800"}}', "metadata", id="surrogate-value"),
    pytest.param(b'{"metadata": {"\\udfff": "v"}}', "metadata", id="surrogate-key"),
    pytest.param(
        b'{"customProxy": {"host": "\\ud800", "port": 1}}', "customProxy", id="surrogate-host"
    ),
    pytest.param(b'{"proxyCountryCode": "\\ud800"}', "proxyCountryCode", id="surrogate-country"),
]


@pytest.mark.parametrize(("raw", "field"), RAW_BODIES)
async def test_non_finite_numbers_and_lone_surrogates_are_a_clean_422(
    api: Api, raw: bytes, field: str
) -> None:
    resp = await api.call(
        "POST", "/browsers", content=raw, headers={"Content-Type": "application/json"}
    )
    detail = assert_validation_error(resp)
    assert any(
        field in (str(p) for p in item["loc"]) or camel(field) in item["loc"] for item in detail
    ), detail
    assert resp.headers["content-type"] == "application/json"
    await assert_nothing_created(api)


async def test_a_lone_surrogate_in_the_stop_action_is_a_clean_422(api: Api) -> None:
    created = (await api.call("POST", "/browsers", json={})).json()
    resp = await api.call(
        "PATCH",
        f"/browsers/{created['id']}",
        content=b'{"action": "\\ud800"}',
        headers={"Content-Type": "application/json"},
    )
    detail = assert_validation_error(resp, "body", "action")
    assert detail[0]["input"] == "\\ud800"  # echoed, escaped
    assert (await api.call("GET", f"/browsers/{created['id']}")).json()["status"] == "active"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # A UTF-16 byte-order mark: decoded as UTF-16, then not JSON (a validation error).
        (b"\xff\xfe{not utf-8", 422),
        # Bytes that decode in no encoding JSON allows: the body cannot be parsed at all.
        (b'{"timeout": "\xc3\x28"}', 400),
        (b"\x80", 400),
    ],
    ids=["bom-garbage", "invalid-utf8-in-string", "lone-continuation"],
)
async def test_a_body_that_is_not_utf8_is_a_json_4xx_and_creates_nothing(
    api: Api, raw: bytes, status: int
) -> None:
    resp = await api.call(
        "POST", "/browsers", content=raw, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    if status == 400:
        assert resp.json() == {"detail": "There was an error parsing the body"}
    else:
        assert_validation_error(resp, "body")
    await assert_nothing_created(api)


async def test_create_without_a_body_is_422(api: Api) -> None:
    assert_validation_error(await api.call("POST", "/browsers"))


@pytest.mark.parametrize("body", [[], "x", 5, None], ids=str)
async def test_a_create_body_that_is_not_an_object_is_422(api: Api, body: Any) -> None:
    assert_validation_error(await api.call("POST", "/browsers", json=body))
    await assert_nothing_created(api)


@pytest.mark.parametrize(
    "body", [{"action": "start"}, {"action": "STOP"}, {}, {"action": None}], ids=str
)
async def test_patch_with_an_action_other_than_stop_is_422_and_leaves_the_session_active(
    api: Api, body: dict[str, Any]
) -> None:
    created = (await api.call("POST", "/browsers", json={})).json()
    assert_validation_error(
        await api.call("PATCH", f"/browsers/{created['id']}", json=body), "body"
    )
    assert (await api.call("GET", f"/browsers/{created['id']}")).json()["status"] == "active"


# ---- 422: the query and the path ----------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"pageSize": 0}, ("query", "pageSize")),
        ({"pageSize": 101}, ("query", "pageSize")),
        ({"pageNumber": 0}, ("query", "pageNumber")),
        ({"pageNumber": 1_000_001}, ("query", "pageNumber")),
        ({"pageNumber": 9223372036854775808}, ("query", "pageNumber")),
        ({"pageNumber": "1e3"}, ("query", "pageNumber")),
        ({"filterBy": "running"}, ("query", "filterBy")),
        ({"agentSessionId": "nope"}, ("query", "agentSessionId")),
        ({"metadata": [f"k{i}" for i in range(21)]}, ("query", "metadata")),
        ({"metadata": [f"k{i}" for i in range(995)]}, ("query", "metadata")),
        # No stored value holds a NUL, and PostgreSQL refuses one in a query.
        ({"metadata": ["k=a\x00b"]}, ("query", "metadata")),
        ({"metadata": ["\x00"]}, ("query", "metadata")),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_invalid_list_query_is_422(
    api: Api, params: dict[str, Any], loc: tuple[str, ...]
) -> None:
    assert_validation_error(await api.call("GET", "/browsers", params=params), *loc)


async def test_the_last_page_and_the_term_limit_are_served(api: Api) -> None:
    resp = await api.call(
        "GET",
        "/browsers",
        params={"pageNumber": 1_000_000, "metadata": [f"k{i}" for i in range(20)]},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["items"] == []


@pytest.mark.parametrize(("method", "body"), [("GET", None), ("PATCH", {"action": "stop"})])
async def test_malformed_session_id_is_422(api: Api, method: str, body: Any) -> None:
    assert_validation_error(await api.call(method, "/browsers/not-a-uuid", json=body), "path")


# ---- routing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("OPTIONS", "/browsers", "GET, POST"),
        ("DELETE", "/browsers", "GET, POST"),
        ("PUT", f"/browsers/{uuid.uuid4()}", "GET, PATCH"),
        ("POST", "/billing/account", "GET"),
    ],
)
async def test_a_method_not_served_is_405_naming_every_method_that_is(
    api: Api, method: str, path: str, allow: str
) -> None:
    resp = await api.call(method, path)
    assert resp.status_code == 405
    assert resp.json() == {"detail": "Method Not Allowed"}
    served = {m.strip() for m in resp.headers["allow"].split(",")}
    assert served - {"HEAD"} == set(allow.split(", "))


async def test_an_unknown_path_is_a_json_404(api: Api) -> None:
    resp = await api.client.get("/api/v3/nothing-here")
    assert (resp.status_code, resp.json()) == (404, {"detail": "Not Found"})
