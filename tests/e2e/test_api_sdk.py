"""The official browser-use-sdk (v3) against a real server: create, list, get, stop, billing.

Every answer's shape, error and edge case is checked over ASGI in tests/integration/api; these
are the paths worth a real server, a real browser and the SDK's own HTTP client.
"""

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
from fleet_server import Janitor, Server, cost6, money, parse_time
from pages import PageServer

pytestmark = pytest.mark.e2e

ONE_MINUTE_COST = Decimal("0.000333")


def test_sdk_create_with_every_field_returns_an_active_view_that_reflects_them(
    server: Server, janitor: Janitor, tag: str, pages: PageServer
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
