"""The sandbox's synthetic /etc: user database, hosts, and Chromium's managed policy (pure).

The policy is a second fence inside the OS sandbox: the sandbox already hides the host, and the
policy keeps the browser from even pointing its own UI at the few local things that remain.
Each entry says which door it closes; every name is a policy of Chromium's published list
(chromium.org/administrators/policy-list-3), mandatory on Linux under
/etc/chromium/policies/managed.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath

from browserfleet.browsers.identity import SECURE_PAGE
from browserfleet.sandbox.spec import DOWNLOADS, HOME, SANDBOX_UID

POLICY_FILE = PurePosixPath("/etc/chromium/policies/managed/browserfleet.json")

# Navigations refused in every tab and frame (net::ERR_BLOCKED_BY_ADMINISTRATOR). A view-source:
# URL is judged by the URL it shows, so view-source:file:///... is refused by "file://*" (the
# filter format has no pattern for the view-source: prefix itself).
URL_BLOCKLIST = (
    "file://*",  # the sandbox's own files: /etc, /session (its profile, its downloads)
    "chrome://*",  # internal pages: chrome://version, net-export, policy, downloads...
    "chrome-untrusted://*",
    "devtools://*",  # the DevTools front-end, which could open local files in its workspace
)
# Pages the server itself needs, each revealing nothing:
# - chrome://omnibox-popup.top-chrome: headless=new keeps its omnibox popup as a hidden WebUI;
#   blocked, it turns into a second "page" target and a tab navigated to it crashes the browser
#   (Chromium 156).
# - file:///dev/null: the secure, empty page where the launcher reads the browser's own user
#   agent and client hints (browsers/identity.py) before stealth overrides them. A filter's path
#   matches as a prefix; inside the sandbox nothing else in /dev starts with "null", and a
#   client's CDP commands cannot name file: URLs at all (the gateway's policy refuses them).
URL_ALLOWLIST = ("chrome://omnibox-popup.top-chrome", SECURE_PAGE)


def managed_policy(disk_cache_bytes: int) -> dict[str, object]:
    """Chromium's mandatory policy for every sandboxed browser."""
    return {
        "URLBlocklist": list(URL_BLOCKLIST),
        "URLAllowlist": list(URL_ALLOWLIST),
        # Downloads land in the session's own directory unless CDP names another place, which
        # the sandbox confines anyway (everything outside /session is read-only or absent).
        "DownloadDirectory": str(DOWNLOADS),
        "PromptForDownloadLocation": False,
        # Chromium sizes its cache from the free space it sees: without a cap it would take most
        # of the session's disk quota and leave little for downloads.
        "DiskCacheSize": disk_cache_bytes,
        # WebRTC may send UDP only through a proxy (ours speaks none): no direct UDP at all,
        # even towards the loopback of the sandbox's own network namespace.
        "WebRtcIPHandling": "disable_non_proxied_udp",
    }


def etc_files(disk_cache_bytes: int) -> dict[PurePosixPath, bytes]:
    """Every generated file of the sandbox's /etc, by path."""
    uid = SANDBOX_UID
    return {
        PurePosixPath("/etc/passwd"): (
            "root:x:0:0:root:/:/usr/sbin/nologin\n"
            f"browser:x:{uid}:{uid}:browser:{HOME}:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
        ).encode(),
        PurePosixPath("/etc/group"): f"root:x:0:\nbrowser:x:{uid}:\nnogroup:x:65534:\n".encode(),
        # Names resolve from these files only: there is no DNS server to ask in the sandbox.
        PurePosixPath("/etc/nsswitch.conf"): (
            b"passwd: files\ngroup: files\nshadow: files\nhosts: files\n"
            b"networks: files\nprotocols: files\nservices: files\n"
        ),
        PurePosixPath("/etc/hosts"): b"127.0.0.1 localhost\n::1 localhost\n",
        POLICY_FILE: json.dumps(managed_policy(disk_cache_bytes), indent=1).encode(),
    }
