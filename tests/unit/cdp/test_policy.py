"""The CDP policy table, rule by rule: answered, rewritten, confined, checked, capped, refused."""

from __future__ import annotations

import json
from pathlib import PurePosixPath

import pytest

from browserfleet.cdp.command import Command
from browserfleet.cdp.policy import (
    REVIEWED,
    RULES,
    Action,
    Count,
    Forward,
    Limit,
    Reply,
    SessionPolicy,
    blocked_url,
    decide,
    within,
)

POLICY = SessionPolicy(PurePosixPath("/srv/s1/downloads"), PurePosixPath("/srv/s1/uploads"))


def run(method: str, policy: SessionPolicy = POLICY, **params: object) -> object:
    return decide(Command(3, method, params), policy)


def run_with(method: str, params: dict[str, object]) -> object:
    """`run` with parameters from a dict (their names are CDP's, not Python keywords)."""
    return decide(Command(3, method, params), POLICY)


def error_of(decision: object) -> str:
    assert isinstance(decision, Reply)
    reply = json.loads(decision.payload)
    assert reply["id"] == 3
    return str(reply["error"]["message"])


@pytest.mark.parametrize("method", ["Browser.close", "Browser.crash", "Browser.crashGpuProcess"])
def test_ending_the_browser_is_answered_as_done_and_never_forwarded(method: str) -> None:
    decision = run(method)
    assert isinstance(decision, Reply)
    assert json.loads(decision.payload) == {"id": 3, "result": {}}


def test_unlisted_methods_are_forwarded_unchanged() -> None:
    command = Command(3, "Runtime.evaluate", {"expression": "1+1"})
    assert decide(command, POLICY) == Forward(command)


@pytest.mark.parametrize(
    ("method", "named"),
    [("Browser.setDownloadBehavior", "allowAndName"), ("Page.setDownloadBehavior", "allow")],
)
@pytest.mark.parametrize(
    "given",
    [
        {"behavior": "allow", "downloadPath": "/etc"},
        {"behavior": "allowAndName", "downloadPath": "/srv/s1/downloads/../../s2"},
        {"behavior": "default"},
        {"behavior": "allow"},
    ],
)
def test_download_paths_are_replaced_by_the_sessions_directory(
    method: str, named: str, given: dict[str, object]
) -> None:
    """Browser-level downloads are saved under their GUIDs (the server names them when
    complete); Page.setDownloadBehavior has no such behavior and saves them by name."""
    decision = run_with(method, given)
    assert isinstance(decision, Forward)
    assert decision.command.params["downloadPath"] == "/srv/s1/downloads"
    assert decision.command.params["behavior"] == named


def test_denying_downloads_carries_no_path() -> None:
    decision = run("Browser.setDownloadBehavior", behavior="deny", downloadPath="/etc")
    assert isinstance(decision, Forward)
    assert decision.command.params == {"behavior": "deny"}


@pytest.mark.parametrize(
    "files",
    [
        ["/etc/passwd"],
        ["/srv/s1/uploads/../downloads/x"],
        ["/srv/s1/uploads"],  # the directory itself
        ["/srv/s1/uploadsX/a"],
        ["relative.txt"],
        ["/srv/s1/uploads/ok.txt", "/etc/shadow"],
        ["/srv/s1/uploads/a\x00"],
        "/srv/s1/uploads/not-a-list",
        [5],
    ],
)
def test_files_outside_the_upload_area_are_refused(files: object) -> None:
    assert "uploads" in error_of(run("DOM.setFileInputFiles", files=files))
    assert "uploads" in error_of(run("Page.handleFileChooser", action="accept", files=files))
    assert "uploads" in error_of(run("Input.dispatchDragEvent", type="drop", data={"files": files}))


def test_files_inside_the_upload_area_are_forwarded() -> None:
    files = ["/srv/s1/uploads/a.txt", "/srv/s1/uploads/./b c.pdf"]
    assert isinstance(run("DOM.setFileInputFiles", files=files, nodeId=1), Forward)
    assert isinstance(run("Input.dispatchDragEvent", type="drop", data={"items": []}), Forward)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "FILE:///etc/passwd",
        "  file:///etc/passwd",
        "\x00\x1ffile:///etc/passwd",
        "fi\tle:///etc/passwd",
        "fi\nle:/etc/passwd",
        "chrome://settings",
        "chrome-untrusted://terminal",
        "devtools://devtools/bundled/inspector.html",
        "view-source:file:///etc/passwd",
        "view-source:view-source:chrome://version",
        "VIEW-SOURCE: chrome://version",
    ],
)
def test_privileged_and_local_urls_are_blocked_everywhere(url: str) -> None:
    assert blocked_url(url) is not None
    for method, name in [
        ("Page.navigate", "url"),
        ("Target.createTarget", "url"),
        ("Network.loadNetworkResource", "url"),
        ("Fetch.continueRequest", "url"),
        ("PWA.install", "installUrlOrBundleUrl"),
    ]:
        assert "blocked" in error_of(run_with(method, {name: url}))


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "about:blank", "data:text/html,hi", "view-source:https://a.b/", 5],
)
def test_ordinary_urls_pass(url: object) -> None:
    assert blocked_url(url) is None
    assert isinstance(run("Page.navigate", url=url), Forward)


def test_new_targets_and_contexts_are_counted_against_their_caps() -> None:
    target = run("Target.createTarget", url="about:blank")
    assert isinstance(target, Count) and target.limit is Limit.TARGETS
    context = run("Target.createBrowserContext", disposeOnDetach=True)
    assert isinstance(context, Count) and context.limit is Limit.CONTEXTS


@pytest.mark.parametrize("field", ["proxyServer", "proxyBypassList"])
def test_a_context_with_its_own_proxy_is_refused(field: str) -> None:
    assert field in error_of(run_with("Target.createBrowserContext", {field: "http://1.2.3.4:8"}))


@pytest.mark.parametrize(
    "method",
    [m for m, rule in RULES.items() if rule.action is Action.REFUSED],
)
def test_refused_methods_are_refused(method: str) -> None:
    assert "not allowed" in error_of(run(method, targetId="T", path="/tmp"))


def test_every_rule_says_why_and_reviewed_methods_have_no_rule() -> None:
    assert all(rule.why for rule in RULES.values())
    assert not REVIEWED & RULES.keys()


@pytest.mark.parametrize(
    ("path", "inside"),
    [
        ("/srv/s1/uploads/a", True),
        ("/srv/s1/uploads//a", True),
        ("/srv/s1/uploads/a/../b", True),
        ("/srv/s1/uploads/../uploads/a", True),
        ("/srv/s1/uploads/..", False),
        ("//srv/s1/uploads/a", False),
    ],
)
def test_within_removes_dots_before_comparing(path: str, inside: bool) -> None:
    assert within(path, PurePosixPath("/srv/s1/uploads")) is inside
