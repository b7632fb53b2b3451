"""Logging set-up: one line per event, with the session id (and other context) appended."""

from __future__ import annotations

import logging
import re

_CONTEXT_KEYS = ("session_id", "project_id", "pid")
# Every line is scrubbed of credentials, however a URL encoded them: CDP tokens (in /cdp/ paths,
# percent-encoded in live-view URLs in either case), API keys, and passwords in proxy URLs.
_CDP_TOKEN = re.compile(r"(/cdp/|%2fcdp%2f)[A-Za-z0-9_-]{8,}", re.IGNORECASE)
_API_KEY = re.compile(r"\bbu_[A-Za-z0-9_-]{8,}")
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/@:\s]*:)[^/@\s]+@")
# A session's host label (cdp.addressing: the token as base32), and query parameters that carry
# a key or a password (connect URLs: apiKey=..., customProxy.password=...), however encoded.
_HOST_TOKEN = re.compile(r"\b[a-z2-7]{52}(?=\.)")
_QUERY_SECRET = re.compile(r"(?i)((?:apikey|password)(?:=|%3d))[^&\s\"']+")


def redact(line: str) -> str:
    line = _CDP_TOKEN.sub(r"\1<token>", line)
    line = _API_KEY.sub("bu_<key>", line)
    line = _HOST_TOKEN.sub("<token>", line)
    line = _QUERY_SECRET.sub(r"\1<hidden>", line)
    return _URL_PASSWORD.sub(r"\1<password>@", line)


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
