"""A real uvicorn serving an app and the CDP gateway's websockets, in the test's event loop."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from fastapi import FastAPI

from browserfleet.api.websocket_protocol import with_gateway
from browserfleet.cdp import CdpGatewayServer
from browserfleet.tasks import TaskSet


class LocalUvicorn:
    """A real uvicorn server on a free loopback port, run in the test's event loop."""

    def __init__(self, app: FastAPI, gateway: CdpGatewayServer) -> None:
        config = uvicorn.Config(
            app,
            ws=with_gateway(gateway),
            lifespan="off",
            log_level="warning",
            ws_max_size=2**30,
            ws_per_message_deflate=False,
        )
        self._server = uvicorn.Server(config)
        self._socket = socket.socket()
        self._tasks = TaskSet("test-uvicorn")

    async def __aenter__(self) -> str:
        self._socket.bind(("127.0.0.1", 0))
        self._tasks.spawn(self._server.serve(sockets=[self._socket]), name="serve")
        for _ in range(500):
            if self._server.started:
                break
            await asyncio.sleep(0.01)
        assert self._server.started, "uvicorn did not start"
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        for _ in range(500):
            if not len(self._tasks):
                break
            await asyncio.sleep(0.01)
        await self._tasks.close()
        self._socket.close()
