"""A real uvicorn server around the real app, with the hand-written runtime fakes instead of
Chromium: `python fake_server.py DATA_DIR PORT [LABEL]` (LABEL only shows in the command
line). The fuzzing suite aims at it (thousands of creates cost nothing), over real HTTP, so
uvicorn's own edge is under test too; the multi-process tests run several on one database.
Settings not given here come from BROWSERFLEET_* variables (database URL, server secret,
heartbeat interval)."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from runtime_fakes import FakeGateway, FakeLauncher

from browserfleet.app import create_app
from browserfleet.bootstrap import Adapters
from browserfleet.sessions.service import CountedCapacity
from browserfleet.settings import BrowserSettings, LimitSettings, Settings

# Roomy: the fuzzer creates far more sessions than it stops.
ROOM = 100_000


def main(data_dir: Path, port: int) -> None:
    settings = Settings(
        data_dir=data_dir,
        browser=BrowserSettings(pool_size=0),
        limits=LimitSettings(default_concurrent_sessions=ROOM, host_max_browsers=ROOM),
    )
    adapters = Adapters(
        launcher=FakeLauncher(), gateway=FakeGateway(), capacity=CountedCapacity(ROOM)
    )
    uvicorn.run(
        create_app(settings, adapters),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
