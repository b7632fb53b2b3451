"""Which files of a Chromium user-data-dir are a profile's state: one table, pure.

Kept: cookies, Local Storage, IndexedDB (and the newer WebStorage buckets), saved passwords
(Login Data), autofill (Web Data), preferences, and Local State (it holds the key Chromium
encrypts cookies and passwords with on some platforms; with --password-store=basic, which every
browser here runs with, that key is a fixed one, so a profile saved on one host decrypts on
another). Everything else - caches, crash dumps, Singleton* locks, GPU and shader caches, the
DevTools port file, histograms - is left out, so a profile stays small.
"""

from __future__ import annotations

from browserfleet.storage.selection import PathFilter

# Written by the server into a profile when it saves one: the session cookies (no expiry) a
# graceful close does not keep for the next start; set again over CDP when the profile loads.
SESSION_COOKIES_FILE = "browserfleet-session-cookies.json"

STATE = PathFilter(
    include=(
        SESSION_COOKIES_FILE,
        "Local State",
        "Default/Cookies",
        "Default/Cookies-journal",
        "Default/Local Storage",
        "Default/IndexedDB",
        "Default/WebStorage",
        "Default/Login Data",
        "Default/Login Data-journal",
        "Default/Login Data For Account",
        "Default/Login Data For Account-journal",
        "Default/Web Data",
        "Default/Web Data-journal",
        "Default/Preferences",
        "Default/Secure Preferences",
    ),
    exclude=(
        "Singleton*",
        "DevToolsActivePort",
        "*.tmp",
        "LOCK",
        "Cache",
        "Code Cache",
        "GPUCache",
        "DawnCache",
        "DawnGraphiteCache",
        "DawnWebGPUCache",
        "GrShaderCache",
        "GraphiteDawnCache",
        "ShaderCache",
        "Crashpad",
        "Crash Reports",
        "BrowserMetrics*",
    ),
)
COOKIES_DB = "Default/Cookies"
