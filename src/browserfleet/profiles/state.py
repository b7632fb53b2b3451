"""Reading and writing a saved browser state's own files, trusting nothing the tenant left.

Called once nothing of the tenant runs any more (its browser was closed and killed), on files
the tenant wrote: the profile directory must be a real directory (not a symlink to the host's
files), and files are opened without following links and copied before SQLite reads them.
All blocking: call from a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from browserfleet.profiles.snapshot import COOKIES_DB, SESSION_COOKIES_FILE
from browserfleet.storage.errors import UnsafeSource
from browserfleet.storage.fileio import copy_fd, open_regular

MAX_SESSION_COOKIES = 10_000
MAX_COOKIES_DB_BYTES = 256 * 1024 * 1024  # a real jar is a few MB; a planted sparse file is not
MAX_SESSION_COOKIES_BYTES = 16 * 1024 * 1024
# Fields of a CDP Cookie that Storage.setCookies takes back (a session cookie has no expiry).
COOKIE_PARAMS = (
    "name",
    "value",
    "domain",
    "path",
    "secure",
    "httpOnly",
    "sameSite",
    "priority",
    "sameParty",
    "sourceScheme",
    "sourcePort",
    "partitionKey",
)

Cookie = Mapping[str, object]


def check_profile_dir(profile: Path) -> None:
    """UnsafeSource unless `profile` is a directory itself (never a link to elsewhere)."""
    info = os.lstat(profile)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeSource(f"{profile} is not a directory")


def session_cookies(cookies: Iterable[object]) -> list[dict[str, object]]:
    """The session cookies (no expiry) of a Storage.getCookies answer, as setCookies params."""
    return cookie_params(c for c in cookies if isinstance(c, dict) and c.get("session") is True)


def cookie_params(cookies: Iterable[object]) -> list[dict[str, object]]:
    """Cookies as Storage.setCookies params: only its fields, only well-formed ones."""
    kept: list[dict[str, object]] = []
    for cookie in cookies:
        if not isinstance(cookie, dict):
            continue
        if not isinstance(cookie.get("name"), str) or not isinstance(cookie.get("value"), str):
            continue
        kept.append({k: cookie[k] for k in COOKIE_PARAMS if k in cookie})
    return kept[:MAX_SESSION_COOKIES]


def write_session_cookies(profile: Path, cookies: list[dict[str, object]]) -> None:
    """Put the session cookies in the profile, replacing whatever the tenant left there."""
    path = profile / SESSION_COOKIES_FILE
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # unlink never follows a link: it removes the link itself
    if not cookies:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(cookies, file)


def take_session_cookies(profile: Path) -> list[dict[str, object]]:
    """Read and remove the session cookies file of an unpacked profile (our own archive's)."""
    path = profile / SESSION_COOKIES_FILE
    try:
        with open_regular(path) as (fd, info):
            if info.st_size > MAX_SESSION_COOKIES_BYTES:
                return []
            data = os.read(fd, info.st_size) if info.st_size else b""
    except (FileNotFoundError, UnsafeSource):
        return []
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    try:
        found = json.loads(data)
    except ValueError:
        return []
    return cookie_params(found) if isinstance(found, list) else []


def cookie_domains(profile: Path, scratch: Path, extra: Iterable[Cookie] = ()) -> tuple[str, ...]:
    """The distinct domains of the cookies saved in the profile (as Chromium stores them, e.g.
    '.example.com'), and of `extra` (the session cookies), sorted."""
    domains = {str(c["domain"]) for c in extra if isinstance(c.get("domain"), str)}
    domains |= _stored_domains(profile / COOKIES_DB, scratch)
    return tuple(sorted(d for d in domains if d))


def _stored_domains(database: Path, scratch: Path) -> set[str]:
    try:
        with open_regular(database) as (fd, info):
            if info.st_size > MAX_COOKIES_DB_BYTES:
                return set()
            copy = tempfile.NamedTemporaryFile(dir=scratch, suffix=".cookies", delete=False)  # noqa: SIM115
            try:
                with copy:
                    copy_fd(fd, copy.fileno())
                return _read_domains(Path(copy.name))
            finally:
                os.unlink(copy.name)
    except (FileNotFoundError, UnsafeSource):
        return set()


def _read_domains(copy: Path) -> set[str]:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{copy}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT DISTINCT host_key FROM cookies").fetchall()
    except sqlite3.Error:
        return set()
    return {str(row[0]) for row in rows}
