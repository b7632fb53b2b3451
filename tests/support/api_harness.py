"""The real FastAPI app over ASGI, with the hand-written runtime fakes and a real SQLite.

No browser and no server process: a request costs milliseconds, so every error status and
every response shape can be checked exhaustively (tests/integration/api); tests/e2e checks the
same paths with Chromium for real.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from runtime_fakes import FakeClock, FakeGateway, FakeLauncher

from browserfleet.app import create_app
from browserfleet.auth.keys import mint_key
from browserfleet.bootstrap import INITIAL_KEY_FILE, Adapters, open_stores
from browserfleet.sessions.service import CountedCapacity
from browserfleet.settings import BrowserSettings, LimitSettings, Settings
from browserfleet.store.projects import SqlProjectStore

BASE = "http://testserver"
HOST_MAX_BROWSERS = 8


@dataclass
class Api:
    """The app, its fakes, and a way to make projects and keys (as the CLI would)."""

    app: FastAPI
    client: httpx.AsyncClient
    key: str
    settings: Settings
    launcher: FakeLauncher
    gateway: FakeGateway
    clock: FakeClock
    projects: SqlProjectStore

    def url(self, path: str, version: str = "v3") -> str:
        return f"/api/{version}{path}"

    async def call(
        self, method: str, path: str, *, key: str | None = None, version: str = "v3", **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if key != "":
            headers.setdefault("X-Browser-Use-API-Key", key or self.key)
        return await self.client.request(method, self.url(path, version), headers=headers, **kw)

    async def new_project(
        self, *, concurrent_limit: int | None = None, credits_micros: int | None = None
    ) -> str:
        """A fresh project and the secret of one key of it."""
        project = await self.projects.create_project(
            f"p-{uuid.uuid4().hex[:10]}",
            concurrent_limit=concurrent_limit,
            credits_micros=credits_micros,
        )
        minted = mint_key()
        await self.projects.add_api_key(project.id, minted.digest, minted.prefix)
        return minted.secret


def api_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        data_dir=data_dir,
        public_url=BASE,
        browser=BrowserSettings(pool_size=0),
        limits=LimitSettings(default_concurrent_sessions=3, host_max_browsers=HOST_MAX_BROWSERS),
        reaper_interval_s=3600,
        heartbeat_interval_s=3600,
        **overrides,
    )


@asynccontextmanager
async def running_api(data_dir: Path, **overrides: Any) -> AsyncIterator[Api]:
    """The app with its lifespan started, a client over ASGI, and the fakes to steer it."""
    settings = api_settings(data_dir, **overrides)
    launcher, gateway, clock = FakeLauncher(), FakeGateway(), FakeClock()
    adapters = Adapters(
        launcher=launcher,
        gateway=gateway,
        clock=clock,
        capacity=CountedCapacity(HOST_MAX_BROWSERS),
    )
    app = create_app(settings, adapters)
    async with (
        app.router.lifespan_context(app),
        open_stores(settings) as (projects, _sessions),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client,
    ):
        key = (data_dir / INITIAL_KEY_FILE).read_text().strip()
        yield Api(app, client, key, settings, launcher, gateway, clock, projects)
