"""`browserfleet serve`: one process serving the REST API, the CDP gateway and health checks."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from browserfleet.api.http_protocol import HttpLimits, guarded_http
from browserfleet.api.websocket_protocol import GatewayWebSocketProtocol
from browserfleet.app import create_app
from browserfleet.bootstrap import NO_ISOLATION_WARNING, cluster_problem, sandbox_config
from browserfleet.logs import configure_logging
from browserfleet.sandbox import preflight
from browserfleet.settings import Isolation, Settings

# Only non-CDP websockets use uvicorn's own implementation; none of them carries large messages.
WS_MAX_SIZE = 1024 * 1024


def http_limits(settings: Settings) -> HttpLimits:
    http = settings.http
    return HttpLimits(
        max_body_bytes=http.max_body_bytes,
        max_upload_bytes=http.max_upload_bytes,
        max_head_bytes=http.max_head_bytes,
        max_header_count=http.max_header_count,
        head_timeout_s=http.head_timeout_s,
        body_timeout_s=http.body_timeout_s,
    )


def run(settings: Settings, _args: argparse.Namespace) -> int:
    configure_logging(settings.log_level)
    if settings.cluster.address is not None:
        return _serve_on_cluster(settings)
    if settings.sandbox.isolation is Isolation.NONE:
        sys.stderr.write(f"WARNING: {NO_ISOLATION_WARNING}\n")
    else:
        checks = asyncio.run(preflight.check(sandbox_config(settings)))
        if not all(c.ok for c in checks):
            sys.stderr.write(f"error: {preflight.SandboxUnavailable(checks)}\n")
            sys.stderr.write("(browserfleet doctor shows every layer; --isolation none runs ")
            sys.stderr.write("without a sandbox, for development only)\n")
            return 2
    return _serve(settings)


def _serve_on_cluster(settings: Settings) -> int:
    """The browsers run on the cluster's nodes (each checks its own sandbox): this process
    joins the cluster as their driver and serves."""
    problem = cluster_problem(settings)
    if problem is not None:
        sys.stderr.write(f"error: {problem}\n")
        return 2
    # Imported here: Ray is an optional extra, needed only with a cluster address.
    from browserfleet.cluster.driver import connected

    with connected(settings.cluster):
        return _serve(settings)


def _serve(settings: Settings) -> int:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=guarded_http(http_limits(settings)),  # size and time limits before the app
        ws=GatewayWebSocketProtocol,  # CDP websockets: the gateway's raw relay, not ASGI
        ws_max_size=WS_MAX_SIZE,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        timeout_keep_alive=settings.http.keep_alive_s,
    )
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
