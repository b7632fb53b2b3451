"""The launcher's minimal CDP client against a real browser: batches keep their order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import LocalChromiumLauncher
from browserfleet.cdp.client import CdpConnection, CdpError

pytestmark = pytest.mark.e2e

SPEC = LaunchSpec(
    mode=HeadlessMode.SHELL,
    screen_width=800,
    screen_height=600,
    extra_args=("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",),
)


async def test_a_batch_answers_in_command_order_and_names_a_failing_method(
    suite_resources: Any,
) -> None:
    launcher = LocalChromiumLauncher(
        Path("/usr/lib/chromium/chromium"), Path("/usr/lib/chromium/chromium-headless-shell")
    )
    browser = await launcher.launch(SPEC, suite_resources.new_data_dir() / "b")
    try:
        version = await _browser_ws(browser.cdp_port)
        async with CdpConnection.connect(version) as cdp:
            answers = await cdp.call_many(
                [
                    ("Browser.getVersion", None, None),
                    ("Target.getTargets", None, None),
                    ("Browser.getVersion", None, None),
                ]
            )
            assert "product" in answers[0] and "targetInfos" in answers[1]
            assert answers[2] == answers[0]
            with pytest.raises(CdpError, match=r"^Target\.attachToTarget"):
                await cdp.call_many(
                    [
                        ("Browser.getVersion", None, None),
                        ("Target.attachToTarget", {"targetId": "no-such-target"}, None),
                    ]
                )
    finally:
        await browser.close()


async def _browser_ws(port: int) -> str:
    async with httpx.AsyncClient(trust_env=False) as client:
        version = (await client.get(f"http://127.0.0.1:{port}/json/version")).json()
    return str(version["webSocketDebuggerUrl"])
