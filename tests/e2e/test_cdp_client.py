"""The launcher's minimal CDP client against a real, sandboxed browser (reached through its
dialer, inside the sandbox's network namespace): batches keep their order."""

from __future__ import annotations

from typing import Any

import pytest
from loopback import RESOLVER_RULES
from sandboxes import CHROMIUM, HEADLESS_SHELL, make_runner

from browserfleet.browsers.launch_spec import HeadlessMode, LaunchSpec
from browserfleet.browsers.process import LocalChromiumLauncher
from browserfleet.cdp.client import CdpConnection, CdpError
from browserfleet.cdp.dial import get_json

pytestmark = pytest.mark.e2e

SPEC = LaunchSpec(
    mode=HeadlessMode.SHELL,
    screen_width=800,
    screen_height=600,
    extra_args=(RESOLVER_RULES,),
)


async def test_a_batch_answers_in_command_order_and_names_a_failing_method(
    suite_resources: Any,
) -> None:
    runner = make_runner()
    launcher = LocalChromiumLauncher(CHROMIUM, HEADLESS_SHELL, enclosures=runner)
    browser = await launcher.launch(SPEC, suite_resources.new_data_dir() / "b")
    try:
        version = await get_json(browser.devtools, "/json/version")
        assert isinstance(version, dict)
        ws_url = str(version["webSocketDebuggerUrl"])
        async with CdpConnection.connect(ws_url, dialer=browser.devtools) as cdp:
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
        runner.close()
