"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks): generated data never points a
browser anywhere but loopback. A custom proxy is the one field that names a network peer; the
fuzzer keeps every other part of it (port, credentials, flags) and its host becomes 127.0.0.1.
"""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if isinstance(body, dict) and isinstance(body.get("customProxy"), dict):
        body["customProxy"]["host"] = "127.0.0.1"
    if isinstance(body, dict) and isinstance(body.get("custom_proxy"), dict):
        body["custom_proxy"]["host"] = "127.0.0.1"
    return body
