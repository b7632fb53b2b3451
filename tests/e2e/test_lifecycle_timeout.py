"""A real one-minute session timeout: the reaper stops and bills the session on time."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fleet_server import Janitor, Server, cost6, parse_time, wait_for
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_a_one_minute_session_is_stopped_at_its_timeout_and_billed_in_full(
    make_server: Callable[..., Server], janitor: Janitor, tag: str
) -> None:
    # Sweeps 30 s apart at most: stopping on time shows the reaper wakes at the deadline itself.
    server = make_server(BROWSERFLEET_REAPER_INTERVAL_S="30")
    view = janitor.create(server, timeout=1, metadata={"suite": tag})
    session_id = view["id"]
    started, timeout_at = parse_time(view["startedAt"]), parse_time(view["timeoutAt"])
    assert timeout_at - started == timedelta(minutes=1)
    ws_url = httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).json()["webSocketDebuggerUrl"]

    with server.http() as client, connect(ws_url, open_timeout=10) as ws:
        # Still active a few seconds before the deadline: no early reaping, no idle reaper.
        wait_until(timeout_at - timedelta(seconds=4))
        assert client.get(f"/browsers/{session_id}").json()["status"] == "active"
        assert session_id in server.browser_sessions_running()

        def stopped_view() -> dict[str, Any] | None:
            body = client.get(f"/browsers/{session_id}").json()
            return body if body["status"] == "stopped" else None

        final = wait_for(stopped_view, 20, interval=0.25, what="the reaper to stop the session")
        seen_stopped_at = datetime.now(UTC)
        assert seen_stopped_at >= timeout_at - timedelta(seconds=1)
        assert seen_stopped_at <= timeout_at + timedelta(seconds=5)

        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)

    finished = parse_time(final["finishedAt"])
    assert abs(finished - timeout_at) <= timedelta(seconds=2)
    assert cost6(final["browserCost"]) == Decimal("0.000333")  # the full minute, no refund
    assert httpx.get(f"{view['cdpUrl']}/json/version", timeout=10).status_code == 404
    wait_for(
        lambda: session_id not in server.browser_sessions_running(),
        10,
        what="the timed-out session's Chromium to exit",
    )
    with server.http() as client:
        again = client.patch(f"/browsers/{session_id}", json={"action": "stop"}).json()
    assert again == final  # stopping a timed-out session changes nothing


def wait_until(moment: datetime) -> None:
    delay = (moment - datetime.now(UTC)).total_seconds()
    if delay > 0:
        time.sleep(delay)
