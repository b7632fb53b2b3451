"""End-to-end fixtures: real `browserfleet serve` processes, real Chromium, a loopback page server.

One server is shared by most tests (2 cores: keep the suite fast); the signal and crash tests
get their own. Every session a test creates is stopped at teardown so the shared server stays
within its limits, and every data dir lives under the suite's temp prefix for the leak check.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from api_checks import DECIMAL_RE

# The harness lives in tests/support (fleet_server, loopback, pages); its names stay importable
# from here for tests that `from conftest import ...`.
from fleet_server import (
    BIN,
    POOL_SIZE,
    READY_TIMEOUT_S,
    REPO,
    RESOLVER_RULES,
    TOO_MANY,
    Janitor,
    Resources,
    Server,
    base_env,
    cost6,
    free_port,
    money,
    parse_time,
    start_server,
    wait_for,
)
from pages import PageServer

__all__ = [
    "BIN",
    "DECIMAL_RE",
    "POOL_SIZE",
    "READY_TIMEOUT_S",
    "REPO",
    "RESOLVER_RULES",
    "TOO_MANY",
    "Janitor",
    "PageServer",
    "Server",
    "base_env",
    "cost6",
    "free_port",
    "money",
    "parse_time",
    "start_server",
    "wait_for",
]


@pytest.fixture(scope="session")
def pages(suite_resources: Resources) -> Iterator[PageServer]:
    with PageServer() as page_server:
        suite_resources.ports.add(page_server.port)
        yield page_server


@pytest.fixture(scope="session")
def server(suite_resources: Resources) -> Iterator[Server]:
    shared = start_server(suite_resources)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
def make_server(suite_resources: Resources) -> Iterator[Callable[..., Server]]:
    """Factory of fresh servers for tests that signal, kill or reconfigure them."""
    started: list[Server] = []

    def make(**env: str) -> Server:
        fresh = start_server(suite_resources, **env)
        started.append(fresh)
        return fresh

    yield make
    for fresh in started:
        fresh.close()


@pytest.fixture
def janitor() -> Iterator[Janitor]:
    jan = Janitor()
    try:
        yield jan
    finally:
        jan.stop_all()


@pytest.fixture
def tag() -> str:
    """A unique metadata value so a test can find its own sessions on the shared server."""
    return uuid.uuid4().hex


@pytest.fixture
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    try:
        yield pw
    finally:
        pw.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test's report carries the end of each server's log it used: what the server
    did (a session stopped, and why) is gone with the run's temp dirs otherwise."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name, value in funcargs.items():
        if isinstance(value, Server):
            report.sections.append((f"log of server `{name}`", value.log_tail(80)))
