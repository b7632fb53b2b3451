"""Servers on one database must share the server secret (CDP tokens derive from it): the first
to start records a check value, and one started with another secret refuses to serve."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import pytest
from api_harness import api_settings
from pydantic import SecretStr
from runtime_fakes import FakeGateway, FakeLauncher

from browserfleet.bootstrap import SECRET_CHECK_SETTING, Adapters, build_runtime
from browserfleet.errors import SecretMismatch
from browserfleet.store.engine import create_engine, dispose
from browserfleet.store.projects import SqlProjectStore


async def _start(data_dir: Path, database_url: str, secret: str) -> None:
    settings = api_settings(data_dir, database_url, server_secret=SecretStr(secret))
    adapters = Adapters(launcher=FakeLauncher(), gateway=FakeGateway())
    async with build_runtime(settings, adapters):
        pass


async def test_a_server_with_another_secret_is_refused_and_one_with_the_same_serves(
    database_url: str, tmp_path: Path
) -> None:
    shared, other = secrets.token_hex(32), secrets.token_hex(32)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    await _start(tmp_path / "a", database_url, shared)
    with pytest.raises(SecretMismatch, match="BROWSERFLEET_SERVER_SECRET"):
        await _start(tmp_path / "b", database_url, other)
    await _start(tmp_path / "b", database_url, shared)


async def test_servers_starting_at_once_agree_on_one_value(database_url: str) -> None:
    engines = [create_engine(database_url) for _ in range(4)]
    try:
        stores = [SqlProjectStore(engine) for engine in engines]
        values = [f"v{i}" for i in range(len(stores))]
        got = await asyncio.gather(
            *(s.claim_shared(SECRET_CHECK_SETTING, v) for s, v in zip(stores, values, strict=True))
        )
        assert len(set(got)) == 1 and got[0] in values
        assert await stores[0].claim_shared(SECRET_CHECK_SETTING, "late") == got[0]
    finally:
        for engine in engines:
            await dispose(engine)
