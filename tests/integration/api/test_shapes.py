"""What the API answers, checked against the official SDK's own models, over ASGI with fakes.

The SDK validates every answer with these pydantic models (camelCase aliases, aware
timestamps, decimal strings), so a body they accept is a body the SDK accepts. Time is the
fake clock: costs and ordering are exact, with no sleeping.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import pytest
from api_checks import cost6
from api_harness import BASE, Api
from browser_use_sdk.v3 import (
    AccountView,
    BrowserSessionItemView,
    BrowserSessionListResponse,
    BrowserSessionView,
)
from runtime_fakes import T0

ONE_MINUTE = Decimal("0.000333")


async def create(api: Api, key: str | None = None, **body: Any) -> dict[str, Any]:
    resp = await api.call("POST", "/browsers", key=key, json=body)
    assert resp.status_code == 201, resp.text
    BrowserSessionItemView.model_validate(resp.json())
    return dict(resp.json())


async def test_create_with_every_field_reflects_them_and_reaches_the_launcher(api: Api) -> None:
    metadata = {"job": "every-field", "team": "qa"}
    view = await create(
        api,
        proxyCountryCode="de",
        metadata=metadata,
        timeout=7,
        browserScreenWidth=1280,
        browserScreenHeight=800,
        allowResizing=True,
        pdfRendererEnabled=False,
        solveCaptchas=False,
        customProxy={"host": "127.0.0.1", "port": 3128, "username": "u", "password": "p"},
        enableRecording=True,
        extensionIds=[],
    )
    item = BrowserSessionItemView.model_validate(view)
    assert item.status.value == "active"
    assert item.metadata == metadata
    assert item.timeout_at - item.started_at == timedelta(minutes=7)
    assert item.started_at == T0
    assert (item.finished_at, item.agent_session_id, item.recording_url) == (None, None, None)
    assert item.extensions == []
    assert item.cdp_url is not None and item.cdp_url.startswith(f"{BASE}/cdp/")
    token = item.cdp_url.removeprefix(f"{BASE}/cdp/")
    assert len(token) >= 22 and "/" not in token  # >= 128 bits, a path segment
    assert item.live_url == f"{BASE}/live?wss={quote(item.cdp_url, safe='')}"
    assert [cost6(v) for v in (item.browser_cost, item.proxy_cost, item.proxy_used_mb)] == [0] * 3
    (browser,) = api.launcher.browsers
    assert (browser.spec.screen_width, browser.spec.screen_height) == (1280, 800)
    assert browser.spec.pdf_viewer is False
    assert token in api.gateway.routes and api.gateway.routes[token].allow_resizing is True
    got = BrowserSessionView.model_validate((await api.call("GET", f"/browsers/{item.id}")).json())
    assert got.recording_available is True
    assert (got.cdp_url, got.timeout_at, got.metadata) == (item.cdp_url, item.timeout_at, metadata)


async def test_defaults_sixty_minutes_and_null_timeout_means_sixty(api: Api) -> None:
    for body in ({}, {"timeout": None}):
        view = await create(api, **body)
        item = BrowserSessionItemView.model_validate(view)
        assert item.timeout_at - item.started_at == timedelta(minutes=60)
        assert item.metadata == {}
    assert (await create(api, timeout=240))["timeoutAt"] == "2026-07-16T00:00:00Z"


async def test_recording_off_means_recording_is_never_available(api: Api) -> None:
    view = await create(api)
    stopped = await api.call("PATCH", f"/browsers/{view['id']}", json={"action": "stop"})
    assert BrowserSessionView.model_validate(stopped.json()).recording_available is False


async def test_list_pages_newest_first_and_filters_by_status_and_metadata(api: Api) -> None:
    await api.projects.update_project("default", concurrent_limit=10)
    ids = []
    for idx in range(3):
        ids.append((await create(api, metadata={"suite": "s", "idx": str(idx), "q": "a=b"}))["id"])
        api.clock.advance(seconds=1)
    await api.call("PATCH", f"/browsers/{ids[0]}", json={"action": "stop"})
    newest_first = list(reversed(ids))

    async def listed(**params: Any) -> BrowserSessionListResponse:
        resp = await api.call("GET", "/browsers", params=params)
        assert resp.status_code == 200, resp.text
        return BrowserSessionListResponse.model_validate(resp.json())

    everything = await listed(metadata="suite=s", pageSize=100)
    assert [str(i.id) for i in everything.items] == newest_first
    assert all(i.recording_url is None for i in everything.items)
    page1, page2, page3 = [await listed(pageSize=2, pageNumber=n) for n in (1, 2, 3)]
    assert (page1.page_size, page1.page_number, page1.total_items) == (2, 1, 3)
    assert [str(i.id) for i in page1.items + page2.items] == newest_first
    assert (page3.items, page3.total_items) == ([], 3)
    active, stopped = await listed(filterBy="active"), await listed(filterBy="stopped")
    assert {str(i.id) for i in active.items} == set(ids[1:])
    assert [str(i.id) for i in stopped.items] == [ids[0]]
    assert stopped.items[0].finished_at is not None
    assert (await listed(metadata="idx")).total_items == 3
    assert [str(i.id) for i in (await listed(metadata=["suite=s", "idx=1"])).items] == [ids[1]]
    assert (await listed(metadata=["idx=9"])).total_items == 0
    assert (await listed(metadata=["q=a=b"])).total_items == 3  # split at the first "="
    assert (await listed(agentSessionId=str(uuid.uuid4()))).items == []
    default = await listed()
    assert (default.page_size, default.page_number) == (10, 1)


async def test_costs_zero_at_create_running_while_active_final_after_stop(api: Api) -> None:
    view = await create(api, timeout=60)
    assert cost6(view["browserCost"]) == 0
    api.clock.advance(minutes=30)
    running = (await api.call("GET", f"/browsers/{view['id']}")).json()
    assert cost6(running["browserCost"]) == Decimal("0.010000")
    listed = (await api.call("GET", "/browsers")).json()["items"][0]
    assert listed["browserCost"] == running["browserCost"]
    api.clock.advance(seconds=1)
    stopped = (await api.call("PATCH", f"/browsers/{view['id']}", json={"action": "stop"})).json()
    assert cost6(stopped["browserCost"]) == Decimal("0.010333")  # 31 minutes, rounded up
    api.clock.advance(hours=1)
    later = (await api.call("GET", f"/browsers/{view['id']}")).json()
    assert later["browserCost"] == stopped["browserCost"]


async def test_stop_is_idempotent_and_refunds_once(api: Api) -> None:
    key = await api.new_project(credits_micros=1_000_000)

    async def balance() -> Decimal:
        account = (await api.call("GET", "/billing/account", key=key)).json()
        return Decimal(str(account["totalCreditsBalanceUsd"]))

    before = await balance()
    view = await create(api, key=key, timeout=60)
    assert await balance() == before - Decimal("0.02")
    api.clock.advance(seconds=10)
    first = await api.call("PATCH", f"/browsers/{view['id']}", key=key, json={"action": "stop"})
    after_first = await balance()
    api.clock.advance(minutes=5)
    second = await api.call("PATCH", f"/browsers/{view['id']}", key=key, json={"action": "stop"})
    assert second.json() == first.json()
    assert cost6(first.json()["browserCost"]) == ONE_MINUTE
    assert (before - after_first).quantize(Decimal("0.000001")) == ONE_MINUTE
    assert await balance() == after_first
    # The browser's teardown follows the first answer (a moment after it is sent), once.
    browser = api.launcher.browsers[0]
    async with asyncio.timeout(10):
        while browser.closed == 0:
            await asyncio.sleep(0.01)
    assert browser.closed == 1


async def test_billing_account_has_every_key_and_counts_active_sessions(api: Api) -> None:
    key = await api.new_project(concurrent_limit=4)
    body = (await api.call("GET", "/billing/account", key=key)).json()
    account = AccountView.model_validate(body)
    assert body["planInfo"] == {
        "planName": "self-hosted",
        "subscriptionStatus": None,
        "subscriptionId": None,
        "subscriptionCurrentPeriodEnd": None,
        "subscriptionCanceledAt": None,
    }
    assert (account.concurrent_session_limit, account.rate_limit) == (4, 4)
    assert (account.is_free_tier, account.active_session_count) == (False, 0)
    view = await create(api, key=key)
    assert (await api.call("GET", "/billing/account", key=key)).json()["activeSessionCount"] == 1
    await api.call("PATCH", f"/browsers/{view['id']}", key=key, json={"action": "stop"})
    assert (await api.call("GET", "/billing/account", key=key)).json()["activeSessionCount"] == 0
    default = (await api.call("GET", "/billing/account")).json()
    assert default["projectId"] != body["projectId"]


async def test_snake_case_body_of_the_browser_use_library_is_accepted_on_v2(api: Api) -> None:
    resp = await api.call(
        "POST",
        "/browsers",
        version="v2",
        json={"proxy_country_code": None, "timeout": 5, "browser_screen_width": 1024},
    )
    assert resp.status_code == 201, resp.text
    view = resp.json()
    assert view["timeoutAt"] == "2026-07-15T20:05:00Z"
    assert api.launcher.browsers[0].spec.screen_width == 1024
    stopped = (
        await api.call("PATCH", f"/browsers/{view['id']}", version="v2", json={"action": "stop"})
    ).json()
    assert stopped["status"] == "stopped"
    assert isinstance(stopped["cdpUrl"], str) and isinstance(stopped["liveUrl"], str)


async def test_unknown_fields_are_ignored_and_country_codes_are_case_insensitive(api: Api) -> None:
    view = await create(api, proxyCountryCode="US", someFutureField={"x": 1}, another=True)
    assert "someFutureField" not in view


@pytest.mark.parametrize("version", ["v2", "v4"])
async def test_the_routes_are_mounted_under_v2_and_v4_too(api: Api, version: str) -> None:
    created = await api.call("POST", "/browsers", version=version, json={})
    assert created.status_code == 201
    session_id = created.json()["id"]
    got = await api.call("GET", f"/browsers/{session_id}", version=version)
    assert got.json()["id"] == session_id
    listed = await api.call("GET", "/browsers", version=version)
    assert [i["id"] for i in listed.json()["items"]] == [session_id]
    stopped = await api.call(
        "PATCH", f"/browsers/{session_id}", version=version, json={"action": "stop"}
    )
    assert stopped.json()["status"] == "stopped"
    assert (await api.call("GET", f"/browsers/{session_id}")).json()["status"] == "stopped"
    account = await api.call("GET", "/billing/account", version=version)
    assert account.json()["planInfo"]["planName"] == "self-hosted"


async def test_timestamps_are_utc_with_z_and_the_stopped_view_keeps_its_urls(api: Api) -> None:
    view = await create(api)
    uuid.UUID(view["id"])
    assert (view["startedAt"], view["finishedAt"]) == ("2026-07-15T20:00:00Z", None)
    api.clock.advance(seconds=90)
    stopped = (await api.call("PATCH", f"/browsers/{view['id']}", json={"action": "stop"})).json()
    assert stopped["finishedAt"] == "2026-07-15T20:01:30Z"
    assert (stopped["cdpUrl"], stopped["liveUrl"]) == (view["cdpUrl"], view["liveUrl"])
    token = view["cdpUrl"].rsplit("/", 1)[-1]
    assert token in api.gateway.closed


async def test_cdp_discovery_answers_while_active_and_404_after_stop(api: Api) -> None:
    view = await create(api)
    path = view["cdpUrl"].removeprefix(BASE) + "/json/version"
    version = await api.client.get(path)
    assert version.status_code == 200
    assert version.json()["webSocketDebuggerUrl"].startswith("ws://testserver/cdp/")
    await api.call("PATCH", f"/browsers/{view['id']}", json={"action": "stop"})
    gone = await api.client.get(path)
    assert (gone.status_code, gone.json()) == (404, {"detail": "Session not found"})


async def test_metrics_show_sessions_and_egress_traffic(api: Api) -> None:
    view = await create(api)
    api.launcher.browsers[0].traffic = 12_345
    text = (await api.client.get("/metrics")).text
    assert 'browserfleet_egress_bytes_total{direction="from_browser"} 12345.0' in text
    assert "browserfleet_cdp_connections_open 0.0" in text
    live = (await api.call("GET", f"/browsers/{view['id']}")).json()
    assert live["proxyUsedMb"] == "0.012345"


async def test_health_and_readiness(api: Api) -> None:
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}
    assert (await api.client.get("/readyz")).json() == {
        "status": "ready",
        "problems": [],
        "isolation": "sandbox",
        "warnings": [],
    }
