"""`browserfleet serve`: one process serving the REST API, the CDP gateway and health checks."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from browserfleet.api.websocket_protocol import GatewayWebSocketProtocol
from browserfleet.app import create_app
from browserfleet.bootstrap import NO_ISOLATION_WARNING, sandbox_config
from browserfleet.logs import configure_logging
from browserfleet.sandbox import preflight
from browserfleet.settings import Isolation, Settings

# CDP messages (screenshots, DOM snapshots) can be hundreds of MB: no practical frame limit.
WS_MAX_SIZE = 2**31 - 1


def run(settings: Settings, _args: argparse.Namespace) -> int:
    configure_logging(settings.log_level)
    if settings.sandbox.isolation is Isolation.NONE:
        sys.stderr.write(f"WARNING: {NO_ISOLATION_WARNING}\n")
    else:
        checks = asyncio.run(preflight.check(sandbox_config(settings)))
        if not all(c.ok for c in checks):
            sys.stderr.write(f"error: {preflight.SandboxUnavailable(checks)}\n")
            sys.stderr.write("(browserfleet doctor shows every layer; --isolation none runs ")
            sys.stderr.write("without a sandbox, for development only)\n")
            return 2
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws=GatewayWebSocketProtocol,  # CDP websockets: the gateway's raw relay, not ASGI
        ws_max_size=WS_MAX_SIZE,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
