"""The official browser-use-sdk (v3) against a real server: create, list, get, stop, billing."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from browser_use_sdk.v3 import (
    AccountView,
    BrowserSessionItemView,
    BrowserSessionView,
    CustomProxy,
)

from conftest import Janitor, Server, cost6, money, parse_time

pytestmark = pytest.mark.e2e

ONE_MINUTE_COST = Decimal("0.000333")


def test_sdk_create_with_every_field_returns_an_active_view_that_reflects_them(
    server: Server, janitor: Janitor, tag: str, pages
) -> None:
    metadata = {"suite": tag, "job": "every-field"}
    with server.sdk() as client:
        created = client.browsers.create(
            proxy_country_code="de",
            metadata=metadata,
            timeout=7,
            browser_screen_width=1280,
            browser_screen_height=800,
            allow_resizing=True,
            pdf_renderer_enabled=False,
            solve_captchas=False,
            custom_proxy=CustomProxy(
                host="127.0.0.1",
                port=pages.port,
                username="u1",
                password="p1",
                ignore_cert_errors=True,
            ),
            enable_recording=True,
            extension_ids=[],
        )
        janitor.track(server, server.key, str(created.id))
        assert isinstance(created, BrowserSessionItemView)
        assert created.status.value == "active"
        assert created.metadata == metadata
        assert created.timeout_at - created.started_at == timedelta(minutes=7)
        assert created.finished_at is None
        assert created.agent_session_id is None
        assert created.recording_url is None
        assert created.extensions == []
        assert created.cdp_url is not None
        assert created.cdp_url.startswith(f"{server.url}/cdp/")
        token = created.cdp_url.removeprefix(f"{server.url}/cdp/")
        assert len(token) >= 22 and "/" not in token and "?" not in token  # >= 128 bits
        assert created.live_url == f"{server.url}/live?wss={quote(created.cdp_url, safe='')}"
        assert money(created.browser_cost) == 0
        assert money(created.proxy_cost) == 0
        assert money(created.proxy_used_mb) == 0

        fetched = client.browsers.get(created.id)
        assert isinstance(fetched, BrowserSessionView)
        assert fetched.id == created.id
        assert fetched.metadata == metadata
        assert fetched.cdp_url == created.cdp_url
        assert fetched.timeout_at == created.timeout_at
        assert fetched.recording_available is True  # recording was asked for

        stopped = client.browsers.stop(created.id)
        assert stopped.status.value == "stopped"
        assert stopped.finished_at is not None
        assert stopped.recording_url is None  # never ready in the stop response


def test_recording_off_means_recording_is_never_available(
    server: Server, janitor: Janitor, tag: str
) -> None:
    with server.sdk() as client:
        created = client.browsers.create(metadata={"suite": tag}, timeout=3)
        janitor.track(server, server.key, str(created.id))
        stopped = client.browsers.stop(created.id)
        assert stopped.recording_available is False
        assert client.browsers.get(created.id).recording_available is False


def test_sdk_create_defaults_to_sixty_minutes_and_no_metadata(
    server: Server, janitor: Janitor
) -> None:
    with server.sdk() as client:
        created = client.browsers.create()
        janitor.track(server, server.key, str(created.id))
        assert created.timeout_at - created.started_at == timedelta(minutes=60)
        assert created.metadata == {}
        assert created.started_at <= created.timeout_at
        client.browsers.stop(created.id)


def test_sdk_list_filters_by_metadata_and_status_and_pages_newest_first(
    server: Server, janitor: Janitor, tag: str
) -> None:
    key_only = f"k{tag[:12]}"
    with server.sdk() as client:
        ids = []
        for idx in range(3):
            view = client.browsers.create(
                metadata={"suite": tag, key_only: "x", "idx": str(idx)}, timeout=3
            )
            ids.append(str(janitor.track(server, server.key, str(view.id))))
            time.sleep(0.05)  # distinct startedAt
        client.browsers.stop(ids[0])
        newest_first = list(reversed(ids))

        everything = client.browsers.list(metadata=[f"suite={tag}"], page_size=100)
        assert everything.total_items == 3
        assert [str(i.id) for i in everything.items] == newest_first
        assert all(i.recording_url is None for i in everything.items)

        page1 = client.browsers.list(metadata=[f"suite={tag}"], page_size=2, page_number=1)
        page2 = client.browsers.list(metadata=[f"suite={tag}"], page_size=2, page_number=2)
        page3 = client.browsers.list(metadata=[f"suite={tag}"], page_size=2, page_number=3)
        assert (page1.page_size, page1.page_number, page1.total_items) == (2, 1, 3)
        assert [str(i.id) for i in page1.items] == newest_first[:2]
        assert (page2.page_number, page2.total_items) == (2, 3)
        assert [str(i.id) for i in page2.items] == newest_first[2:]
        assert page3.items == []
        assert page3.total_items == 3

        active = client.browsers.list(metadata=[f"suite={tag}"], filter_by="active")
        stopped = client.browsers.list(metadata=[f"suite={tag}"], filter_by="stopped")
        assert {str(i.id) for i in active.items} == set(ids[1:])
        assert all(i.status.value == "active" for i in active.items)
        assert [str(i.id) for i in stopped.items] == [ids[0]]
        assert stopped.items[0].finished_at is not None

        by_key_only = client.browsers.list(metadata=[key_only])
        assert by_key_only.total_items == 3
        both_terms = client.browsers.list(metadata=[f"suite={tag}", "idx=1"])
        assert [str(i.id) for i in both_terms.items] == [ids[1]]
        wrong_value = client.browsers.list(metadata=[f"suite={tag}", "idx=9"])
        assert wrong_value.total_items == 0
        assert wrong_value.items == []

        by_agent = client.browsers.list(agent_session_id=str(uuid.uuid4()))
        assert by_agent.items == []

        default_page = client.browsers.list(metadata=[f"suite={tag}"])
        assert default_page.page_size == 10
        assert default_page.page_number == 1
        for session_id in ids[1:]:
            client.browsers.stop(session_id)


def test_list_metadata_value_may_contain_equals_sign(
    server: Server, janitor: Janitor, tag: str
) -> None:
    with server.sdk() as client:
        view = client.browsers.create(metadata={"suite": tag, "q": "a=b"}, timeout=2)
        janitor.track(server, server.key, str(view.id))
        found = client.browsers.list(metadata=[f"suite={tag}", "q=a=b"])
        assert [str(i.id) for i in found.items] == [str(view.id)]
        client.browsers.stop(view.id)


def test_stop_is_idempotent_and_refunds_once(server: Server, janitor: Janitor, tag: str) -> None:
    _, key = server.new_project(credits="1")
    with server.sdk(key) as client:
        before = client.billing.account().total_credits_balance_usd
        view = client.browsers.create(metadata={"suite": tag}, timeout=60)
        janitor.track(server, key, str(view.id))
        during = client.billing.account().total_credits_balance_usd
        assert Decimal(str(during)) == Decimal(str(before)) - Decimal("0.02")  # upfront charge

        first = client.browsers.stop(view.id)
        after_first = client.billing.account().total_credits_balance_usd
        second = client.browsers.stop(view.id)
        after_second = client.billing.account().total_credits_balance_usd

        assert first.status.value == "stopped"
        assert second.model_dump() == first.model_dump()
        assert second.browser_cost == first.browser_cost
        assert second.finished_at == first.finished_at
        assert cost6(first.browser_cost) == ONE_MINUTE_COST
        refunded = Decimal(str(before)) - Decimal(str(after_first))
        assert refunded.quantize(Decimal("0.000001")) == ONE_MINUTE_COST
        assert after_second == after_first  # no second refund
        assert client.browsers.get(view.id).finished_at == first.finished_at


def test_browser_cost_is_zero_at_create_running_while_active_and_final_after_stop(
    server: Server, janitor: Janitor, tag: str
) -> None:
    with server.sdk() as client:
        view = client.browsers.create(metadata={"suite": tag}, timeout=60)
        janitor.track(server, server.key, str(view.id))
        assert money(view.browser_cost) == 0
        time.sleep(2)
        running = client.browsers.get(view.id)
        assert cost6(running.browser_cost) == ONE_MINUTE_COST  # at least one minute, so far
        stopped = client.browsers.stop(view.id)
        assert cost6(stopped.browser_cost) == ONE_MINUTE_COST
        assert stopped.finished_at is not None and stopped.finished_at > stopped.started_at
        time.sleep(1)
        assert client.browsers.get(view.id).browser_cost == stopped.browser_cost


def test_billing_account_has_every_key_and_counts_active_sessions_live(
    server: Server, janitor: Janitor, tag: str
) -> None:
    _, key = server.new_project(concurrent_limit=4)
    with server.sdk(key) as client, server.http(key) as raw:
        body = raw.get("/billing/account").json()
        assert set(body) >= {
            "totalCreditsBalanceUsd",
            "monthlyCreditsBalanceUsd",
            "additionalCreditsBalanceUsd",
            "rateLimit",
            "concurrentSessionLimit",
            "activeSessionCount",
            "planInfo",
            "projectId",
            "name",
            "isFreeTier",
            "apiKeyId",
            "tracingDisabled",
        }
        assert body["planInfo"] == {
            "planName": "self-hosted",
            "subscriptionStatus": None,
            "subscriptionId": None,
            "subscriptionCurrentPeriodEnd": None,
            "subscriptionCanceledAt": None,
        }
        account = client.billing.account()
        assert isinstance(account, AccountView)
        assert account.concurrent_session_limit == 4
        assert account.rate_limit == 4
        assert account.is_free_tier is False
        assert account.active_session_count == 0
        assert account.api_key_id is not None
        uuid.UUID(str(account.project_id))

        view = client.browsers.create(metadata={"suite": tag}, timeout=2)
        janitor.track(server, key, str(view.id))
        assert client.billing.account().active_session_count == 1
        client.browsers.stop(view.id)
        assert client.billing.account().active_session_count == 0

    with server.sdk() as default_client:
        assert default_client.billing.account().project_id != account.project_id


def test_a_key_sees_only_its_own_projects_sessions(
    server: Server, janitor: Janitor, tag: str
) -> None:
    _, other_key = server.new_project()
    with server.sdk(other_key) as other:
        theirs = other.browsers.create(metadata={"suite": tag}, timeout=2)
        janitor.track(server, other_key, str(theirs.id))
    with server.http() as mine:
        got = mine.get(f"/browsers/{theirs.id}")
        assert (got.status_code, got.json()) == (404, {"detail": "Session not found"})
        patched = mine.patch(f"/browsers/{theirs.id}", json={"action": "stop"})
        assert (patched.status_code, patched.json()) == (404, {"detail": "Session not found"})
        listed = mine.get("/browsers", params={"metadata": f"suite={tag}"}).json()
        assert listed["items"] == [] and listed["totalItems"] == 0
    with server.sdk(other_key) as other:
        assert other.browsers.get(theirs.id).status.value == "active"  # my stop did nothing
        listed_theirs = other.browsers.list(metadata=[f"suite={tag}"])
        assert [str(i.id) for i in listed_theirs.items] == [str(theirs.id)]
        other.browsers.stop(theirs.id)


def test_timeout_of_240_minutes_is_accepted(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, metadata={"suite": tag}, timeout=240)
    assert parse_time(view["timeoutAt"]) - parse_time(view["startedAt"]) == timedelta(minutes=240)


def test_timeout_null_means_sixty_minutes(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, metadata={"suite": tag}, timeout=None)
    assert parse_time(view["timeoutAt"]) - parse_time(view["startedAt"]) == timedelta(minutes=60)


def test_snake_case_body_from_the_browser_use_library_is_accepted_on_v2(
    server: Server, janitor: Janitor, tag: str
) -> None:
    with server.http(version="v2") as v2:
        resp = v2.post(
            "/browsers",
            json={"proxy_country_code": None, "timeout": 5, "metadata": {"suite": tag}},
        )
        assert resp.status_code == 201, resp.text
        view = resp.json()
        janitor.track(server, server.key, view["id"])
        assert parse_time(view["timeoutAt"]) - parse_time(view["startedAt"]) == timedelta(minutes=5)
        assert view["status"] == "active"
        assert isinstance(view["cdpUrl"], str) and isinstance(view["liveUrl"], str)
        stopped = v2.patch(f"/browsers/{view['id']}", json={"action": "stop"})
        assert stopped.status_code == 200
        assert stopped.json()["status"] == "stopped"
        assert isinstance(stopped.json()["cdpUrl"], str)  # the library requires both strings
        assert isinstance(stopped.json()["liveUrl"], str)


def test_unknown_body_fields_are_ignored(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(
        server, metadata={"suite": tag}, timeout=3, someFutureField={"x": 1}, another=True
    )
    assert view["status"] == "active"
    assert "someFutureField" not in view


def test_proxy_country_code_is_case_insensitive(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, metadata={"suite": tag}, timeout=2, proxyCountryCode="US")
    assert view["status"] == "active"


@pytest.mark.parametrize("version", ["v2", "v4"])
def test_browsers_routes_are_mounted_under_v2_and_v4(
    server: Server, janitor: Janitor, tag: str, version: str
) -> None:
    with server.http(version=version) as client:
        resp = client.post("/browsers", json={"metadata": {"suite": tag}, "timeout": 2})
        assert resp.status_code == 201, resp.text
        session_id = janitor.track(server, server.key, resp.json()["id"])
        got = client.get(f"/browsers/{session_id}")
        assert got.status_code == 200 and got.json()["id"] == session_id
        listed = client.get("/browsers", params={"metadata": f"suite={tag}"})
        assert [i["id"] for i in listed.json()["items"]] == [session_id]
        stopped = client.patch(f"/browsers/{session_id}", json={"action": "stop"})
        assert stopped.status_code == 200 and stopped.json()["status"] == "stopped"
    with server.http() as v3:
        assert v3.get(f"/browsers/{session_id}").json()["status"] == "stopped"


def test_billing_account_is_served_under_v2(server: Server) -> None:
    with server.http(version="v2") as v2:
        resp = v2.get("/billing/account")
    assert resp.status_code == 200
    assert resp.json()["planInfo"]["planName"] == "self-hosted"


def test_wire_timestamps_are_utc_with_offset_and_ids_are_uuids(
    server: Server, janitor: Janitor, tag: str
) -> None:
    view = janitor.create(server, metadata={"suite": tag}, timeout=2)
    uuid.UUID(view["id"])
    for field in ("startedAt", "timeoutAt"):
        assert parse_time(view[field]).utcoffset() == timedelta(0)
    assert view["finishedAt"] is None
    with server.http() as client:
        stopped = client.patch(f"/browsers/{view['id']}", json={"action": "stop"}).json()
    assert parse_time(stopped["finishedAt"]).utcoffset() == timedelta(0)
    assert parse_time(stopped["startedAt"]) <= parse_time(stopped["finishedAt"])


def test_stopped_view_keeps_cdp_and_live_urls(server: Server, janitor: Janitor, tag: str) -> None:
    view = janitor.create(server, metadata={"suite": tag}, timeout=2)
    with server.sdk() as client:
        client.browsers.stop(view["id"])
        stopped = client.browsers.get(view["id"])
        assert stopped.cdp_url == view["cdpUrl"]
        assert stopped.live_url == view["liveUrl"]
        assert stopped.status.value == "stopped"
