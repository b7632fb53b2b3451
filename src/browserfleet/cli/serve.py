"""`browserfleet serve`: one process serving the REST API, the CDP gateway and health checks."""

from __future__ import annotations

import argparse

import uvicorn

from browserfleet.api.websocket_protocol import GatewayWebSocketProtocol
from browserfleet.app import create_app
from browserfleet.logs import configure_logging
from browserfleet.settings import Settings

# CDP messages (screenshots, DOM snapshots) can be hundreds of MB: no practical frame limit.
WS_MAX_SIZE = 2**31 - 1


def run(settings: Settings, _args: argparse.Namespace) -> int:
    configure_logging(settings.log_level)
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
