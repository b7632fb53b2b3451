"""Fixtures of the API tests: the real app over ASGI with the runtime fakes (api_harness), on
each database backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from api_harness import Api, running_api


@pytest.fixture
async def api(tmp_path: Path, database_url: str) -> AsyncIterator[Api]:
    async with running_api(tmp_path, database_url) as running:
        yield running
