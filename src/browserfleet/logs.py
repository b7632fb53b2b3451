"""Logging set-up: one line per event, with the session id (and other context) appended."""

from __future__ import annotations

import logging
import re

_CONTEXT_KEYS = ("session_id", "project_id", "pid")
# CDP tokens are credentials; uvicorn logs websocket paths, so every line is scrubbed.
_CDP_TOKEN = re.compile(r"(/cdp/|%2Fcdp%2F)[A-Za-z0-9_-]{8,}")


def redact(line: str) -> str:
    return _CDP_TOKEN.sub(r"\1<token>", line)


class ContextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        context = " ".join(
            f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS if hasattr(record, key)
        )
        return f"{line} {context}" if context else line


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(ContextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
