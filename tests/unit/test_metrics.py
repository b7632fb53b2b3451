"""Metrics: drive the methods, render, parse the exposition back and check the numbers."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from browserfleet.api.routes.metrics import build_metrics_router
from browserfleet.ids import ProjectId
from browserfleet.metrics import CapacityInUse, Metrics
from browserfleet.sessions.model import StopReason

PROJECT_A = ProjectId(uuid.UUID(int=1))
PROJECT_B = ProjectId(uuid.UUID(int=2))


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the rendered text, keyed by name and labels."""
    payload, _ = metrics.render()
    found = {}
    for family in text_string_to_metric_families(payload.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(metrics: Metrics, name: str, **labels: str) -> float:
    return samples(metrics)[(name, frozenset(labels.items()))]


@dataclass(frozen=True)
class FakeCdpTotals:
    open_connections: int
    bytes_to_browser: int
    bytes_to_client: int


@dataclass(frozen=True)
class FakeEgressTotals:
    from_browser: int
    to_browser: int
    blocked: int


def test_render_is_prometheus_text() -> None:
    payload, content_type = Metrics().render()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert b"# TYPE browserfleet_sessions_active gauge" in payload


def test_active_sessions_are_counted_per_project_when_the_operator_asks() -> None:
    metrics = Metrics(project_ids=True)
    metrics.session_started(PROJECT_A, from_pool=True, seconds=0.02)
    metrics.session_started(PROJECT_A, from_pool=False, seconds=1.5)
    metrics.session_started(PROJECT_B, from_pool=True, seconds=0.03)
    metrics.session_stopped(PROJECT_A, StopReason.USER)
    assert value(metrics, "browserfleet_sessions_active", project_id=str(PROJECT_A)) == 1
    assert value(metrics, "browserfleet_sessions_active", project_id=str(PROJECT_B)) == 1


def test_project_ids_are_not_shown_by_default_only_the_total() -> None:
    metrics = Metrics()
    metrics.session_started(PROJECT_A, from_pool=True, seconds=0.02)
    metrics.session_started(PROJECT_B, from_pool=True, seconds=0.03)
    metrics.session_stopped(PROJECT_A, StopReason.USER)
    assert value(metrics, "browserfleet_sessions_active") == 1
    payload, _ = metrics.render()
    assert str(PROJECT_A).encode() not in payload and str(PROJECT_B).encode() not in payload


def test_a_stop_never_drives_active_sessions_negative() -> None:
    metrics = Metrics(project_ids=True)
    # An orphan adopted from a dead instance was never started here.
    metrics.session_stopped(PROJECT_A, StopReason.ORPHANED)
    assert value(metrics, "browserfleet_sessions_active", project_id=str(PROJECT_A)) == 0
    metrics.session_started(PROJECT_A, from_pool=True, seconds=0.01)
    assert value(metrics, "browserfleet_sessions_active", project_id=str(PROJECT_A)) == 1


def test_create_latency_is_split_by_pool_hit_and_cold_launch() -> None:
    metrics = Metrics()
    metrics.session_started(PROJECT_A, from_pool=True, seconds=0.004)
    metrics.session_started(PROJECT_A, from_pool=True, seconds=0.04)
    metrics.session_started(PROJECT_A, from_pool=False, seconds=2.5)
    name = "browserfleet_session_create_seconds"
    assert value(metrics, f"{name}_count", source="pool") == 2
    assert value(metrics, f"{name}_sum", source="pool") == pytest.approx(0.044)
    assert value(metrics, f"{name}_bucket", source="pool", le="0.005") == 1
    assert value(metrics, f"{name}_bucket", source="pool", le="0.05") == 2
    assert value(metrics, f"{name}_count", source="cold") == 1
    assert value(metrics, f"{name}_bucket", source="cold", le="2.0") == 0
    assert value(metrics, f"{name}_bucket", source="cold", le="3.0") == 1
    assert value(metrics, f"{name}_bucket", source="cold", le="10.0") == 1


def test_stops_are_counted_by_reason_and_every_reason_starts_at_zero() -> None:
    metrics = Metrics()
    for reason in (StopReason.USER, StopReason.USER, StopReason.TIMEOUT, StopReason.CRASH):
        metrics.session_started(PROJECT_A, from_pool=True, seconds=0.01)
        metrics.session_stopped(PROJECT_A, reason)
    counts = {
        reason: value(metrics, "browserfleet_session_stops_total", reason=reason.value)
        for reason in StopReason
    }
    assert counts == {
        StopReason.USER: 2,
        StopReason.TIMEOUT: 1,
        StopReason.CRASH: 1,
        StopReason.SHUTDOWN: 0,
        StopReason.ORPHANED: 0,
        StopReason.FENCED: 0,
    }


def test_launches_failures_and_pool_levels() -> None:
    metrics = Metrics()
    for _ in range(3):
        metrics.browser_launched()
    metrics.launch_failed()
    metrics.pool_changed(size=4, ready=3)
    metrics.pool_changed(size=2, ready=1)
    assert value(metrics, "browserfleet_browser_launches_total") == 3
    assert value(metrics, "browserfleet_browser_launch_failures_total") == 1
    assert value(metrics, "browserfleet_pool_size") == 2
    assert value(metrics, "browserfleet_pool_ready") == 1


def test_live_sources_are_read_at_every_scrape() -> None:
    metrics = Metrics()
    cdp = [FakeCdpTotals(2, 100, 5000)]
    metrics.watch_cdp(lambda: cdp[0])
    metrics.watch_egress(lambda: FakeEgressTotals(from_browser=300, to_browser=9000, blocked=4))
    metrics.watch_capacity(lambda: CapacityInUse(5, 20, 3 * 2**30, 0.75))
    assert value(metrics, "browserfleet_cdp_connections_open") == 2
    assert value(metrics, "browserfleet_cdp_bytes_relayed_total", direction="to_client") == 5000
    cdp[0] = FakeCdpTotals(0, 150, 7000)
    assert value(metrics, "browserfleet_cdp_connections_open") == 0
    assert value(metrics, "browserfleet_cdp_bytes_relayed_total", direction="to_browser") == 150
    assert value(metrics, "browserfleet_egress_bytes_total", direction="from_browser") == 300
    assert value(metrics, "browserfleet_egress_bytes_total", direction="to_browser") == 9000
    assert value(metrics, "browserfleet_egress_blocked_requests_total") == 4
    assert value(metrics, "browserfleet_host_browsers_running") == 5
    assert value(metrics, "browserfleet_host_browsers_max") == 20
    assert value(metrics, "browserfleet_host_memory_available_bytes") == 3 * 2**30
    assert value(metrics, "browserfleet_host_load_per_cpu") == 0.75


def test_unwired_live_sources_are_absent() -> None:
    names = {name for name, _ in samples(Metrics())}
    assert not any(name.startswith(("browserfleet_cdp", "browserfleet_host")) for name in names)


def test_a_failing_source_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()

    def broken() -> CapacityInUse:
        raise OSError("no /proc")

    metrics.watch_capacity(broken)
    metrics.watch_cdp(lambda: FakeCdpTotals(1, 2, 3))
    with caplog.at_level(logging.ERROR, logger="browserfleet.metrics"):
        found = samples(metrics)
    assert found[("browserfleet_cdp_connections_open", frozenset())] == 1
    assert not any(name.startswith("browserfleet_host") for name, _ in found)
    assert "reading live metrics failed" in caplog.text


def test_two_instances_in_one_process_do_not_share_values() -> None:
    first, second = Metrics(), Metrics()
    first.browser_launched()
    assert value(first, "browserfleet_browser_launches_total") == 1
    assert value(second, "browserfleet_browser_launches_total") == 0


def test_a_given_registry_is_used() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.launch_failed()
    assert registry.get_sample_value("browserfleet_browser_launch_failures_total") == 1


async def test_get_metrics_serves_the_app_state_metrics() -> None:
    app = FastAPI()
    app.include_router(build_metrics_router())
    app.state.metrics = Metrics()
    app.state.metrics.session_started(PROJECT_A, from_pool=True, seconds=0.01)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert families["browserfleet_sessions_active"].samples[0].value == 1


async def test_get_metrics_with_an_explicit_lookup() -> None:
    metrics = Metrics()
    metrics.browser_launched()
    app = FastAPI()
    app.include_router(build_metrics_router(lambda _connection: metrics))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/metrics")
    assert "browserfleet_browser_launches_total 1.0" in response.text
