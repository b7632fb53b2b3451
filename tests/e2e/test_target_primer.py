"""The TargetPrimer with another debugger that also auto-attaches and waits (as Playwright and
Puppeteer do): the primer's commands are in effect while the client still holds the new target,
and the target runs once the client lets it go; without such a client the primer's own resume
starts it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from loopback import RESOLVER_RULES

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import ChromiumProcess, LocalChromiumLauncher
from browserfleet.cdp.client import JsonObject
from browserfleet.cdp.dial import get_json
from browserfleet.cdp.link import CdpLink
from browserfleet.cdp.primer import AUTO_ATTACH, RESUME

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SPEC = LaunchSpec(HeadlessMode.NEW, 1280, 720, extra_args=(RESOLVER_RULES,))
PAGE = "data:text/html,<title>ran</title>"


class Client:
    """A debugger of our own making: auto-attaches, waits, and records what it is told."""

    def __init__(self) -> None:
        self.attached: asyncio.Queue[JsonObject] = asyncio.Queue()
        self.link: CdpLink | None = None

    async def on_event(self, method: str, params: JsonObject, _session: str | None) -> None:
        if method == "Target.attachedToTarget":
            await self.attached.put(params)

    async def evaluate(self, session_id: str, expression: str) -> object:
        assert self.link is not None
        answer = await self.link.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            session_id=session_id,
        )
        result = answer["result"]
        assert isinstance(result, dict)
        return result.get("value")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(suite_resources: Any) -> AsyncIterator[ChromiumProcess]:
    launcher = LocalChromiumLauncher(
        Path("/usr/lib/chromium/chromium"), Path("/usr/lib/chromium/chromium-headless-shell")
    )
    async with await launcher.launch(SPEC, suite_resources.new_data_dir() / "b") as launched:
        yield launched


async def open_link(browser: ChromiumProcess, client: Client) -> CdpLink:
    """A browser-level connection through the browser's own DevTools dialer."""
    version = await get_json(browser.devtools, "/json/version")
    assert isinstance(version, dict)
    return await CdpLink.open(
        str(version["webSocketDebuggerUrl"]), client.on_event, dialer=browser.devtools
    )


async def connect(browser: ChromiumProcess) -> Client:
    client = Client()
    client.link = await open_link(browser, client)
    await client.link.call("Target.setAutoAttach", AUTO_ATTACH)
    return client


async def new_page(client: Client) -> tuple[str, str]:
    """Create a page and wait for the client's own (waiting) attachment to it."""
    assert client.link is not None
    created = await client.link.call("Target.createTarget", {"url": PAGE})
    async with asyncio.timeout(10):
        while True:
            event = await client.attached.get()
            info = event["targetInfo"]
            assert isinstance(info, dict)
            if info["targetId"] == created["targetId"]:
                assert event["waitingForDebugger"] is True
                return str(created["targetId"]), str(event["sessionId"])


async def title_becomes(client: Client, session_id: str, want: str) -> None:
    async with asyncio.timeout(10):
        while await client.evaluate(session_id, "document.title") != want:
            await asyncio.sleep(0.02)


async def test_the_primer_has_primed_a_target_the_client_still_holds(
    browser: ChromiumProcess,
) -> None:
    client = await connect(browser)
    assert client.link is not None
    try:
        target_id, session_id = await new_page(client)
        # The client has not let it run: its document is still the initial one...
        assert await client.evaluate(session_id, "document.title") == ""
        # ...and the primer's overrides are already there.
        user_agent = await client.evaluate(session_id, "navigator.userAgent")
        assert isinstance(user_agent, str) and "HeadlessChrome" not in user_agent
        await client.link.call(RESUME, session_id=session_id)
        await title_becomes(client, session_id, "ran")
        await client.link.call("Target.closeTarget", {"targetId": target_id})
    finally:
        await client.link.close()


async def test_without_a_waiting_client_the_primer_lets_new_targets_run(
    browser: ChromiumProcess,
) -> None:
    """Only the primer waits here: its own resume must start the page (no hang)."""
    client = Client()
    client.link = await open_link(browser, client)
    try:
        created = await client.link.call("Target.createTarget", {"url": PAGE})
        attached = await client.link.call(
            "Target.attachToTarget", {"targetId": created["targetId"], "flatten": True}
        )
        session_id = str(attached["sessionId"])
        await title_becomes(client, session_id, "ran")
        user_agent = await client.evaluate(session_id, "navigator.userAgent")
        assert isinstance(user_agent, str) and "HeadlessChrome" not in user_agent
        await client.link.call("Target.closeTarget", {"targetId": created["targetId"]})
    finally:
        await client.link.close()
