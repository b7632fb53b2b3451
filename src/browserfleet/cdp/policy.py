"""The CDP policy: what the gateway does with each client command, by method. One table, pure.

Every command is answered by the gateway, rewritten, confined to the session's own files,
refused, capped, or forwarded as it is. Paths are the browser's view of the session's
directories (`SessionPolicy`); URLs are checked for the schemes that reach the host's files or
the browser's own privileged pages. Methods that take a path or URL and are forwarded unchanged
are listed in REVIEWED, so a protocol update that adds one is noticed (tests/integration).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import PurePosixPath

from browserfleet.cdp.command import Command, plain_envelope


class Action(StrEnum):
    ANSWERED = "answered"  # the gateway replies itself; Chrome never sees it
    REWRITTEN = "rewritten"  # forwarded with a parameter replaced
    CONFINED = "confined"  # forwarded only if its paths lie in the session's upload area
    CHECKED = "checked"  # forwarded only if its URLs are allowed
    CAPPED = "capped"  # forwarded only while the session is under a limit
    REFUSED = "refused"  # always answered with an error


class Limit(StrEnum):
    CONTEXTS = "browser contexts"
    TARGETS = "targets"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """What the policy needs to know of one session: its directories as the browser sees them."""

    downloads: PurePosixPath
    uploads: PurePosixPath
    allow_resizing: bool = False


@dataclass(frozen=True, slots=True)
class Forward:
    command: Command


@dataclass(frozen=True, slots=True)
class Reply:
    """The gateway answers (a success or an error); nothing reaches Chrome."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class Count:
    """Forward `command` only while the session has fewer than its cap of `limit`."""

    command: Command
    limit: Limit


Decision = Forward | Reply | Count
Handler = Callable[[Command, SessionPolicy], Decision]

# Schemes that open the host's files or the browser's privileged pages (view-source: of them too).
BLOCKED_SCHEMES = frozenset({"file", "chrome", "chrome-untrusted", "devtools"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_STRIPPED = "".join(chr(c) for c in range(0x21))  # C0 controls and space, as URL parsers strip
_REMOVED = re.compile("[\t\n\r]")


def blocked_url(url: object) -> str | None:
    """Why a URL may not be opened, or None. Parsed as browsers parse: leading and trailing
    controls and spaces are stripped, tabs and newlines removed, the scheme case-folded."""
    if not isinstance(url, str):
        return None
    text = _REMOVED.sub("", url.strip(_STRIPPED))
    found = _SCHEME.match(text)
    if found is None:
        return None
    scheme = found.group(1).lower()
    if scheme == "view-source":
        inner = blocked_url(text[found.end() :])
        return None if inner is None else f"view-source: of {inner}"
    return f"{scheme}: URLs are blocked" if scheme in BLOCKED_SCHEMES else None


def within(path: object, root: PurePosixPath) -> bool:
    """True when `path` is an absolute path strictly inside `root` (after removing . and ..)."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        return False
    normal = posixpath.normpath(path)
    return normal.startswith(str(root).rstrip("/") + "/")


# --- handlers ---------------------------------------------------------------------------------


def _forward(command: Command, _policy: SessionPolicy) -> Decision:
    return Forward(command)


def _answer(command: Command, _policy: SessionPolicy) -> Decision:
    return Reply(command.result())


def _resize(command: Command, policy: SessionPolicy) -> Decision:
    return Forward(command) if policy.allow_resizing else Reply(command.result())


def _refuse(why: str) -> Handler:
    def refuse(command: Command, _policy: SessionPolicy) -> Decision:
        return Reply(command.refusal(f"{command.method} is not allowed here: {why}").reply())

    return refuse


def _downloads(command: Command, policy: SessionPolicy) -> Decision:
    """Downloads always land in the session's downloads directory (where the API lists them).
    Browser.setDownloadBehavior saves them under their GUIDs whatever the client asked
    ("allow" would let a second file of the same name replace the first, even while both
    download): the server names each finished file from its suggested name (media/
    download_ledger.py). Page.setDownloadBehavior knows no allowAndName: it stays "allow"."""
    params = dict(command.params)
    if params.get("behavior") != "deny":
        if command.method == "Browser.setDownloadBehavior":
            params["behavior"] = "allowAndName"
        else:
            params["behavior"] = "allow"  # "default" would use the browser's own directory
        params["downloadPath"] = str(policy.downloads)
    else:
        params.pop("downloadPath", None)
    return Forward(replace(command, params=params))


def _files(*where: str) -> Handler:
    """Confine the list of paths at params[where[0]][where[1]]... to the upload area."""

    def confine(command: Command, policy: SessionPolicy) -> Decision:
        found: object = command.params
        for key in where:
            found = found.get(key) if isinstance(found, dict) else None
        if found is None:
            return Forward(command)
        if not isinstance(found, list) or not all(within(p, policy.uploads) for p in found):
            return Reply(
                command.refusal(
                    f"{command.method}: files must be inside {policy.uploads}/ "
                    "(upload them with POST /api/v3/browsers/{id}/uploads first)"
                ).reply()
            )
        return Forward(command)

    return confine


def _urls(*names: str, then: Limit | None = None) -> Handler:
    def check(command: Command, _policy: SessionPolicy) -> Decision:
        for name in names:
            why = blocked_url(command.params.get(name))
            if why is not None:
                return Reply(command.refusal(f"{command.method}: {why}").reply())
        return Forward(command) if then is None else Count(command, then)

    return check


def _new_context(command: Command, policy: SessionPolicy) -> Decision:
    for name in ("proxyServer", "proxyBypassList"):
        if command.params.get(name) is not None:
            return Reply(
                command.refusal(
                    f"{command.method}: {name} is not allowed (all traffic goes through the "
                    "session's egress proxy)"
                ).reply()
            )
    return Count(command, Limit.CONTEXTS)


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    why: str
    handler: Handler


_RESIZE_WHY = "answered as a no-op unless the session was created with allowResizing"
_CRASH_WHY = "only the API (stop) or the timeout ends a session"
_FILES_WHY = "only files uploaded to the session's upload area may be given to a page"
_URL_WHY = "file:, chrome:, chrome-untrusted:, devtools: and view-source: of them are blocked"

RULES: dict[str, Rule] = {
    "Browser.close": Rule(Action.ANSWERED, _CRASH_WHY, _answer),
    "Browser.crash": Rule(Action.ANSWERED, _CRASH_WHY, _answer),
    "Browser.crashGpuProcess": Rule(Action.ANSWERED, _CRASH_WHY, _answer),
    "Browser.setWindowBounds": Rule(Action.ANSWERED, _RESIZE_WHY, _resize),
    "Emulation.setDeviceMetricsOverride": Rule(Action.ANSWERED, _RESIZE_WHY, _resize),
    "Emulation.clearDeviceMetricsOverride": Rule(Action.ANSWERED, _RESIZE_WHY, _resize),
    "Emulation.setVisibleSize": Rule(Action.ANSWERED, _RESIZE_WHY, _resize),
    "Page.setDeviceMetricsOverride": Rule(Action.ANSWERED, _RESIZE_WHY, _resize),
    "Browser.setDownloadBehavior": Rule(
        Action.REWRITTEN,
        "downloadPath is always the session's downloads directory; files are saved under "
        "their GUIDs (allowAndName) and named by the server when complete",
        _downloads,
    ),
    "Page.setDownloadBehavior": Rule(
        Action.REWRITTEN, "downloadPath is always the session's downloads directory", _downloads
    ),
    "DOM.setFileInputFiles": Rule(Action.CONFINED, _FILES_WHY, _files("files")),
    "Page.handleFileChooser": Rule(Action.CONFINED, _FILES_WHY, _files("files")),
    "Input.dispatchDragEvent": Rule(Action.CONFINED, _FILES_WHY, _files("data", "files")),
    "Page.navigate": Rule(Action.CHECKED, _URL_WHY, _urls("url")),
    "Network.loadNetworkResource": Rule(Action.CHECKED, _URL_WHY, _urls("url")),
    "Fetch.continueRequest": Rule(Action.CHECKED, _URL_WHY, _urls("url")),
    "Network.continueInterceptedRequest": Rule(Action.CHECKED, _URL_WHY, _urls("url")),
    "PWA.install": Rule(Action.CHECKED, _URL_WHY, _urls("installUrlOrBundleUrl")),
    "PWA.launch": Rule(Action.CHECKED, _URL_WHY, _urls("url")),
    "Target.createTarget": Rule(
        Action.CAPPED,
        f"{_URL_WHY}; at most the session's cap of targets",
        _urls("url", then=Limit.TARGETS),
    ),
    "Target.createBrowserContext": Rule(
        Action.CAPPED,
        "proxyServer/proxyBypassList refused (no way around the egress proxy); at most the "
        "session's cap of browser contexts",
        _new_context,
    ),
    "Target.exposeDevToolsProtocol": Rule(
        Action.REFUSED,
        "it would give page JavaScript a CDP channel that bypasses the gateway",
        _refuse("it would give page JavaScript a CDP channel that bypasses the gateway"),
    ),
    "Target.setRemoteLocations": Rule(
        Action.REFUSED,
        "it makes the browser connect to other hosts, past the egress proxy",
        _refuse("it makes the browser connect to other hosts, past the egress proxy"),
    ),
    "Tethering.bind": Rule(
        Action.REFUSED,
        "it opens a listening port on the server",
        _refuse("it opens a listening port on the server"),
    ),
    "Extensions.loadUnpacked": Rule(
        Action.REFUSED,
        "it loads code from a path on the server",
        _refuse("it loads code from a path on the server"),
    ),
    "PWA.launchFilesInApp": Rule(
        Action.REFUSED,
        "it opens paths on the server",
        _refuse("it opens paths on the server"),
    ),
}

# Methods whose parameters look like a path, URL, origin, host, port or address (by name, in
# Chromium's own protocol) and that are forwarded unchanged, each reviewed: origins and URL
# patterns only name sites (cookies, storage, permissions, interception, breakpoints) and never
# open them; DOM paths, cache entries and script names are not filesystem paths; "location" and
# "address" here are source positions, key locations, emulated Bluetooth devices and autofill
# postal addresses; the rest match by accident (captureBeyondViewport, reportProgress...).
REVIEWED = frozenset(
    {
        "Autofill.setAddresses",
        "Autofill.trigger",
        "BluetoothEmulation.addService",
        "BluetoothEmulation.enable",
        "BluetoothEmulation.simulateAdvertisement",
        "BluetoothEmulation.simulateGATTDisconnection",
        "BluetoothEmulation.simulateGATTOperationResponse",
        "BluetoothEmulation.simulatePreconnectedPeripheral",
        "CSS.addRule",
        "DOMStorage.clear",
        "DOMStorage.getDOMStorageItems",
        "DOMStorage.removeDOMStorageItem",
        "DOMStorage.setDOMStorageItem",
        "Debugger.continueToLocation",
        "Debugger.setBreakpoint",
        "Fetch.enable",
        "HeapProfiler.startTrackingHeapObjects",
        "HeapProfiler.stopTrackingHeapObjects",
        "HeapProfiler.takeHeapSnapshot",
        "Input.dispatchKeyEvent",
        "Network.emulateNetworkConditionsByRule",
        "Overlay.setShowScrollSnapOverlays",
        "Page.captureScreenshot",
        "Page.produceCompilationCache",
        "Storage.setCookies",
        "Tracing.start",
        "WebAuthn.addVirtualAuthenticator",
        "Browser.addPrivacySandboxEnrollmentOverride",
        "Browser.grantPermissions",
        "Browser.setPermission",
        "CacheStorage.deleteEntry",
        "CacheStorage.requestCacheNames",
        "CacheStorage.requestCachedResponse",
        "CacheStorage.requestEntries",
        "Cast.enable",
        "DOM.pushNodeByPathToFrontend",
        "DOMDebugger.removeXHRBreakpoint",
        "DOMDebugger.setXHRBreakpoint",
        "Debugger.setBlackboxPatterns",
        "Debugger.setBreakpointByUrl",
        "FedCm.openUrl",
        "FileSystem.getDirectory",
        "IndexedDB.clearObjectStore",
        "IndexedDB.deleteDatabase",
        "IndexedDB.deleteObjectStoreEntries",
        "IndexedDB.getMetadata",
        "IndexedDB.requestData",
        "IndexedDB.requestDatabase",
        "IndexedDB.requestDatabaseNames",
        "Network.deleteCookies",
        "Network.enable",
        "Network.fetchSchemefulSite",
        "Network.getCertificate",
        "Network.getCookies",
        "Network.setBlockedURLs",
        "Network.setCookie",
        "Network.setCookies",
        "PWA.getOsAppState",
        "Page.addCompilationCache",
        "Page.deleteCookie",
        "Page.enable",
        "Page.getResourceContent",
        "Page.printToPDF",
        "Page.searchInResource",
        "Runtime.compileScript",
        "ServiceWorker.deliverPushMessage",
        "ServiceWorker.dispatchPeriodicSyncEvent",
        "ServiceWorker.dispatchSyncEvent",
        "ServiceWorker.skipWaiting",
        "ServiceWorker.startWorker",
        "ServiceWorker.unregister",
        "ServiceWorker.updateRegistration",
        "Storage.clearDataForOrigin",
        "Storage.clearPrivateVerificationTokens",
        "Storage.clearTrustTokens",
        "Storage.getUsageAndQuota",
        "Storage.overrideQuotaForOrigin",
        "Storage.trackCacheStorageForOrigin",
        "Storage.trackIndexedDBForOrigin",
        "Storage.untrackCacheStorageForOrigin",
        "Storage.untrackIndexedDBForOrigin",
        "Tethering.unbind",
    }
)


def decide(command: Command, policy: SessionPolicy) -> Decision:
    """What to do with one parsed command (flattened-session commands alike)."""
    rule = RULES.get(command.method)
    return _forward(command, policy) if rule is None else rule.handler(command, policy)


def forwarded_unchanged(payload: bytes) -> bool:
    """True when `payload` (one whole message) is a plain command of a method the policy
    forwards as it is, so the client's own bytes may go on to Chrome: what parse_command and
    decide would conclude, reached with less work. The gateway's hot path: False sends the
    message the general way (parse_command, then decide)."""
    envelope = plain_envelope(payload)
    return envelope is not None and envelope.method not in RULES


def refuse_over_limit(command: Command, limit: Limit, cap: int) -> bytes:
    """The error answering a Count the session is already at the cap of."""
    return command.refusal(
        f"{command.method}: this session already has its maximum of {cap} {limit.value}"
    ).reply()
