"""Reads a launched browser's own user agent and client hints (stealth.IDENTITY_JS).

navigator.userAgentData exists only in secure contexts, which the first tab's about:blank is
not: the question is asked in a throwaway tab on file:///dev/null (a secure context) of a
throwaway browser context, so the session's own tab keeps an empty history.
"""

from __future__ import annotations

import asyncio

from browserfleet.browsers.devtools_endpoint import DevtoolsEndpoint
from browserfleet.browsers.stealth import IDENTITY_JS, BrowserIdentity, identity_from
from browserfleet.cdp.client import CdpConnection, JsonObject
from browserfleet.errors import BrowserLaunchFailed

SECURE_PAGE = "file:///dev/null"
READY = "location.protocol === 'file:' && isSecureContext"
POLL_S = 0.01
TRIES = 300


async def read_identity(endpoint: DevtoolsEndpoint) -> BrowserIdentity:
    """Ask a fresh secure page what the browser is, before anything overrides it."""
    async with CdpConnection.connect(endpoint.browser_ws_url, dialer=endpoint.dialer) as cdp:
        context = await cdp.call("Target.createBrowserContext", {"disposeOnDetach": True})
        try:
            target = await cdp.call(
                "Target.createTarget",
                {"url": SECURE_PAGE, "browserContextId": context["browserContextId"]},
            )
            attached = await cdp.call(
                "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
            )
            session_id = str(attached["sessionId"])
            await _wait_until_secure(cdp, session_id)
            answer = await cdp.call(
                "Runtime.evaluate",
                {"expression": IDENTITY_JS, "awaitPromise": True, "returnByValue": True},
                session_id=session_id,
            )
        finally:
            await cdp.call("Target.disposeBrowserContext", context)
    try:
        return identity_from(_value(answer))
    except ValueError as error:
        raise BrowserLaunchFailed(f"cannot read the browser's user agent: {error}") from None


async def _wait_until_secure(cdp: CdpConnection, session_id: str) -> None:
    params: JsonObject = {"expression": READY, "returnByValue": True}
    for _ in range(TRIES):
        if _value(await cdp.call("Runtime.evaluate", params, session_id=session_id)) is True:
            return
        await asyncio.sleep(POLL_S)
    raise BrowserLaunchFailed(f"{SECURE_PAGE} did not load in a fresh tab")


def _value(answer: JsonObject) -> object:
    result = answer.get("result")
    return result.get("value") if isinstance(result, dict) else None
