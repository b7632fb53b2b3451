"""The profiles endpoints over ASGI: every status and body, on all three mounts."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from api_harness import Api, running_api

from browserfleet.settings import ProfileSettings

VERSIONS = ("v2", "v3", "v4")
NOT_FOUND = {"detail": "Profile not found"}


@pytest.mark.parametrize("version", VERSIONS)
async def test_create_get_update_delete_round_trip(api: Api, version: str) -> None:
    created = await api.call(
        "POST", "/profiles", version=version, json={"name": "Ann", "userId": "u-1"}
    )
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {
        "id",
        "userId",
        "name",
        "lastUsedAt",
        "createdAt",
        "updatedAt",
        "cookieDomains",
    }
    assert (body["name"], body["userId"], body["lastUsedAt"], body["cookieDomains"]) == (
        "Ann",
        "u-1",
        None,
        None,
    )
    pid = body["id"]
    got = await api.call("GET", f"/profiles/{pid}", version=version)
    assert got.status_code == 200 and got.json() == body

    api.clock.advance(seconds=5)
    renamed = await api.call("PATCH", f"/profiles/{pid}", version=version, json={"name": "Bo"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Bo" and renamed.json()["userId"] == "u-1"  # absent: kept
    assert datetime.fromisoformat(renamed.json()["updatedAt"]) > datetime.fromisoformat(
        body["updatedAt"]
    )
    cleared = await api.call("PATCH", f"/profiles/{pid}", version=version, json={"userId": None})
    assert cleared.json()["userId"] is None and cleared.json()["name"] == "Bo"  # null: cleared

    deleted = await api.call("DELETE", f"/profiles/{pid}", version=version)
    assert deleted.status_code == 204 and deleted.content == b""
    for method in ("GET", "PATCH", "DELETE"):
        gone = await api.call(method, f"/profiles/{pid}", version=version, json={})
        assert (gone.status_code, gone.json()) == (404, NOT_FOUND), method


async def test_create_without_a_body(api: Api) -> None:
    created = await api.call("POST", "/profiles")
    assert created.status_code == 201
    assert created.json()["name"] is None and created.json()["userId"] is None


@pytest.mark.parametrize(
    "body",
    [{"name": "x" * 101}, {"userId": "u" * 256}, {"name": 5}, {"name": "a\u0000b"}],
)
async def test_bad_fields_are_422(api: Api, body: dict[str, object]) -> None:
    assert (await api.call("POST", "/profiles", json=body)).status_code == 422
    created = (await api.call("POST", "/profiles")).json()["id"]
    assert (await api.call("PATCH", f"/profiles/{created}", json=body)).status_code == 422


async def test_limits_at_the_edge_are_accepted(api: Api) -> None:
    body = {"name": "x" * 100, "userId": "u" * 255}
    assert (await api.call("POST", "/profiles", json=body)).status_code == 201


async def test_a_non_uuid_id_is_422_and_an_unknown_one_404(api: Api) -> None:
    assert (await api.call("GET", "/profiles/not-a-uuid")).status_code == 422
    unknown = await api.call("GET", f"/profiles/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.json()) == (404, NOT_FOUND)


async def test_another_projects_profile_is_not_found_anywhere(api: Api) -> None:
    other = await api.new_project()
    pid = (await api.call("POST", "/profiles", json={"name": "mine"})).json()["id"]
    for method, path in (
        ("GET", f"/profiles/{pid}"),
        ("PATCH", f"/profiles/{pid}"),
        ("DELETE", f"/profiles/{pid}"),
    ):
        answer = await api.call(method, path, key=other, json={"name": "stolen"})
        assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    listed = await api.call("GET", "/profiles", key=other)
    assert listed.json()["items"] == [] and listed.json()["totalItems"] == 0
    session = await api.call("POST", "/browsers", key=other, json={"profileId": pid})
    assert (session.status_code, session.json()) == (404, NOT_FOUND)
    assert (await api.call("GET", f"/profiles/{pid}")).json()["name"] == "mine"


async def test_a_session_with_an_unknown_profile_starts_nothing(api: Api) -> None:
    answer = await api.call("POST", "/browsers", json={"profileId": str(uuid.uuid4())})
    assert (answer.status_code, answer.json()) == (404, NOT_FOUND)
    assert api.launcher.browsers == []


async def test_list_pages_newest_first_and_searches_name_and_user_id(api: Api) -> None:
    ids = []
    for i in range(5):
        api.clock.advance(seconds=1)
        body = {"name": f"Name-{i}", "userId": "ALICE" if i == 3 else f"user-{i}"}
        ids.append((await api.call("POST", "/profiles", json=body)).json()["id"])
    page = (await api.call("GET", "/profiles", params={"pageSize": 2, "pageNumber": 2})).json()
    assert page["totalItems"] == 5 and page["pageNumber"] == 2 and page["pageSize"] == 2
    assert [p["id"] for p in page["items"]] == [ids[2], ids[1]]
    by_user = (await api.call("GET", "/profiles", params={"query": "alic"})).json()
    assert [p["id"] for p in by_user["items"]] == [ids[3]]
    by_name = (await api.call("GET", "/profiles", params={"query": "name-4"})).json()
    assert [p["id"] for p in by_name["items"]] == [ids[4]]
    none = (await api.call("GET", "/profiles", params={"query": "%"})).json()
    assert none["items"] == [] and none["totalItems"] == 0  # LIKE wildcards are plain text
    bad: list[dict[str, object]] = [
        {"pageSize": 0},
        {"pageSize": 101},
        {"pageNumber": 0},
        {"query": "q" * 201},
        {"query": "a\x00b"},  # PostgreSQL cannot hold a NUL: refused before any query
    ]
    for params in bad:
        assert (await api.call("GET", "/profiles", params=params)).status_code == 422


async def test_without_a_key_every_profile_route_is_401(api: Api) -> None:
    pid = uuid.uuid4()
    for method, path in (
        ("POST", "/profiles"),
        ("GET", "/profiles"),
        ("GET", f"/profiles/{pid}"),
        ("PATCH", f"/profiles/{pid}"),
        ("DELETE", f"/profiles/{pid}"),
    ):
        assert (await api.call(method, path, key="", json={})).status_code == 401


async def test_the_per_project_cap_is_a_402(tmp_path_factory: pytest.TempPathFactory) -> None:
    async with running_api(
        tmp_path_factory.mktemp("cap"), profiles=ProfileSettings(max_per_project=2)
    ) as api:
        for _ in range(2):
            assert (await api.call("POST", "/profiles")).status_code == 201
        refused = await api.call("POST", "/profiles")
        assert (refused.status_code, refused.json()) == (402, {"detail": "Insufficient credits"})
        other = await api.new_project()  # the cap is per project
        assert (await api.call("POST", "/profiles", key=other)).status_code == 201
        first = (await api.call("GET", "/profiles")).json()["items"][0]["id"]
        assert (await api.call("DELETE", f"/profiles/{first}")).status_code == 204
        assert (await api.call("POST", "/profiles")).status_code == 201


async def test_every_profile_operation_is_in_the_openapi_with_its_statuses(api: Api) -> None:
    spec = (await api.client.get("/openapi.json")).json()
    for version in VERSIONS:
        ops = spec["paths"][f"/api/{version}/profiles"]
        assert set(ops["post"]["responses"]) >= {"201", "401", "402", "422"}
        assert set(ops["get"]["responses"]) >= {"200", "401", "422"}
        one = spec["paths"][f"/api/{version}/profiles/{{profile_id}}"]
        for method, ok in (("get", "200"), ("patch", "200"), ("delete", "204")):
            assert set(one[method]["responses"]) >= {ok, "401", "404", "422"}, method
