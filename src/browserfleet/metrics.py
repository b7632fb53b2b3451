"""Prometheus metrics of one server: instruments the session service drives, and live values
(CDP traffic, egress, host capacity) read from their owners at scrape time.

Every Metrics has its own CollectorRegistry, so several apps and tests share a process safely.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from browserfleet.ids import ProjectId
from browserfleet.sessions.model import StopReason

log = logging.getLogger(__name__)
T = TypeVar("T")

PREFIX = "browserfleet"
# From a pool hit (~5-50 ms) to a slow cold launch (seconds).
CREATE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0)


class CdpTraffic(Protocol):
    """Lifetime totals of the CDP gateway (the shape of cdp.relay.Counters)."""

    @property
    def open_connections(self) -> int: ...
    @property
    def bytes_to_browser(self) -> int: ...
    @property
    def bytes_to_client(self) -> int: ...


class EgressTraffic(Protocol):
    """Lifetime totals of every egress proxy (the shape of proxy.meter.ByteMeter)."""

    @property
    def from_browser(self) -> int: ...
    @property
    def to_browser(self) -> int: ...
    @property
    def blocked(self) -> int: ...


@dataclass(frozen=True, slots=True)
class CapacityInUse:
    """How much of the host is used now, for the capacity gauges."""

    browsers_running: int
    browsers_max: int
    memory_available_bytes: int
    load_per_cpu: float


class Metrics:
    """The metrics of one server. Push methods are cheap and never raise on the hot path."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, project_ids: bool = False
    ) -> None:
        """`project_ids`: label sessions_active by project (off by default: /metrics needs no
        key, and one project's activity is no other's business)."""
        self.registry = registry if registry is not None else CollectorRegistry()
        self._project_ids = project_ids
        self._active_counts: dict[str, int] = {}
        self._active = Gauge(
            f"{PREFIX}_sessions_active",
            "Sessions running now" + (", per project." if project_ids else "."),
            ["project_id"] if project_ids else [],
            registry=self.registry,
        )
        self._pool_size = Gauge(
            f"{PREFIX}_pool_size", "Browsers in the warm pool.", registry=self.registry
        )
        self._pool_ready = Gauge(
            f"{PREFIX}_pool_ready", "Pooled browsers ready to serve.", registry=self.registry
        )
        self._create_seconds = Histogram(
            f"{PREFIX}_session_create_seconds",
            "From create request to CDP ready, by where the browser came from.",
            ["source"],
            buckets=CREATE_BUCKETS,
            registry=self.registry,
        )
        self._stops = Counter(
            f"{PREFIX}_session_stops",
            "Sessions stopped, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self._launches = Counter(
            f"{PREFIX}_browser_launches", "Chromium processes started.", registry=self.registry
        )
        self._launch_failures = Counter(
            f"{PREFIX}_browser_launch_failures",
            "Chromium launches that failed.",
            registry=self.registry,
        )
        for source in ("pool", "cold"):
            self._create_seconds.labels(source=source)
        for reason in StopReason:
            self._stops.labels(reason=reason.value)
        self._live = _LiveCollector()
        self.registry.register(self._live)

    def session_started(self, project_id: ProjectId, *, from_pool: bool, seconds: float) -> None:
        """A session is running: `seconds` from its create request to CDP ready."""
        key = str(project_id)
        self._active_counts[key] = self._active_counts.get(key, 0) + 1
        self._show_active(key)
        self._create_seconds.labels(source="pool" if from_pool else "cold").observe(seconds)

    def session_stopped(self, project_id: ProjectId, reason: StopReason) -> None:
        """A session has stopped (including sessions adopted from another instance)."""
        key = str(project_id)
        # Clamped: an orphan adopted from a dead instance was never started here.
        self._active_counts[key] = max(0, self._active_counts.get(key, 0) - 1)
        self._show_active(key)
        self._stops.labels(reason=reason.value).inc()

    def _show_active(self, key: str) -> None:
        if self._project_ids:
            self._active.labels(project_id=key).set(self._active_counts[key])
        else:
            self._active.set(sum(self._active_counts.values()))

    def browser_launched(self) -> None:
        """A Chromium process started (cold or for the pool)."""
        self._launches.inc()

    def launch_failed(self) -> None:
        """A Chromium launch failed."""
        self._launch_failures.inc()

    def pool_changed(self, size: int, ready: int) -> None:
        """The warm pool now holds `size` browsers, `ready` of them able to serve."""
        self._pool_size.set(size)
        self._pool_ready.set(ready)

    def watch_cdp(self, read: Callable[[], CdpTraffic]) -> None:
        """Read the CDP gateway's lifetime totals at every scrape."""
        self._live.cdp = read

    def watch_egress(self, read: Callable[[], EgressTraffic]) -> None:
        """Read the egress proxies' lifetime totals at every scrape."""
        self._live.egress = read

    def watch_capacity(self, read: Callable[[], CapacityInUse]) -> None:
        """Read the host's capacity in use at every scrape."""
        self._live.capacity = read

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition of every metric, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


class _LiveCollector(Collector):
    """Families read from their owners when Prometheus scrapes; a failing source is skipped."""

    def __init__(self) -> None:
        self.cdp: Callable[[], CdpTraffic] | None = None
        self.egress: Callable[[], EgressTraffic] | None = None
        self.capacity: Callable[[], CapacityInUse] | None = None

    def collect(self) -> Iterable[Metric]:
        return [
            *_families(self.cdp, _cdp),
            *_families(self.egress, _egress),
            *_families(self.capacity, _capacity),
        ]

    def describe(self) -> Iterable[Metric]:
        # Registering must not call the sources (they may not be wired yet).
        return []


def _families(
    source: Callable[[], T] | None, render: Callable[[T], Iterator[Metric]]
) -> list[Metric]:
    """The families `render` makes of what `source` reads now; none if it is unset or fails."""
    if source is None:
        return []
    try:
        return list(render(source()))
    except Exception:  # a broken source must not break the whole scrape
        log.exception("reading live metrics failed")
        return []


def _cdp(traffic: CdpTraffic) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        f"{PREFIX}_cdp_connections_open",
        "CDP websocket connections open through the gateway.",
        value=traffic.open_connections,
    )
    relayed = CounterMetricFamily(
        f"{PREFIX}_cdp_bytes_relayed",
        "WebSocket bytes (frames with their headers) relayed by the CDP gateway.",
        labels=["direction"],
    )
    relayed.add_metric(["to_browser"], traffic.bytes_to_browser)
    relayed.add_metric(["to_client"], traffic.bytes_to_client)
    yield relayed


def _egress(traffic: EgressTraffic) -> Iterator[Metric]:
    relayed = CounterMetricFamily(
        f"{PREFIX}_egress_bytes",
        "Bytes through the egress proxies, counted on the browser side.",
        labels=["direction"],
    )
    relayed.add_metric(["from_browser"], traffic.from_browser)
    relayed.add_metric(["to_browser"], traffic.to_browser)
    yield relayed
    yield CounterMetricFamily(
        f"{PREFIX}_egress_blocked_requests",
        "Requests the egress guard refused.",
        value=traffic.blocked,
    )


def _capacity(used: CapacityInUse) -> Iterator[Metric]:
    gauges = (
        ("browsers_running", "Browsers running, pooled ones included.", used.browsers_running),
        ("browsers_max", "Browsers this host may run at most.", used.browsers_max),
        (
            "memory_available_bytes",
            "Memory available to us (cgroup limit applied).",
            used.memory_available_bytes,
        ),
        ("load_per_cpu", "1-minute load average per CPU we may use.", used.load_per_cpu),
    )
    for name, documentation, value in gauges:
        yield GaugeMetricFamily(f"{PREFIX}_host_{name}", documentation, value=value)
