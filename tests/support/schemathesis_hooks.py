"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks): generated data never points a
browser anywhere but loopback. A custom proxy is the one field that names a network peer; the
fuzzer keeps every other part of it (port, credentials, flags) and a valid host becomes
127.0.0.1. An invalid host (absent, empty, too long, not a string) stays as generated: the server
must refuse it without connecting anywhere, and rewriting it would make a request the fuzzer
meant as invalid a valid one.
"""

from __future__ import annotations

from typing import Any

import schemathesis

MAX_HOST = 255  # CustomProxy.host's bounds in the API schema


@schemathesis.hook
def map_body(context: Any, body: Any) -> Any:
    if isinstance(body, dict):
        for field in ("customProxy", "custom_proxy"):
            proxy = body.get(field)
            if isinstance(proxy, dict) and _valid_host(proxy.get("host")):
                proxy["host"] = "127.0.0.1"
    return body


def _valid_host(host: object) -> bool:
    return isinstance(host, str) and 1 <= len(host) <= MAX_HOST
