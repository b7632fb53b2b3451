"""What a blob key may be: the one rule table both stores enforce before touching anything.

A key is a '/'-separated path of segments. Parts of keys come from outside (a downloaded file's
name), and the local store maps keys onto a directory tree, so every rule here exists to keep a
key inside its store: no '..' or '.', no empty segment (no leading, trailing or double '/'), no
control characters, and lengths a filesystem (255 bytes a name) and S3 (1024 bytes a key) accept.
"""

from __future__ import annotations

from browserfleet.storage.errors import InvalidBlobKey

SEPARATOR = "/"
MAX_KEY_BYTES = 1024  # S3's limit for a whole key (after the store's own key prefix)
MAX_SEGMENT_BYTES = 255  # NAME_MAX of Linux filesystems


def check_key(key: str) -> str:
    """The key itself if every rule holds, else InvalidBlobKey naming the first rule broken."""
    if not key:
        raise InvalidBlobKey("a key must not be empty")
    _check_length(key)
    for segment in key.split(SEPARATOR):
        check_segment(segment, key)
    return key


def check_prefix(prefix: str) -> str:
    """A prefix to list under: '' (everything), 'dir/' (a folder), or 'dir/na' (names starting).

    Every complete segment follows the key rules; the last, unfinished one is only the start of
    a name (it may be empty, '.' or '..': '..' starts the valid name '..x'), so it is only
    checked for characters no key holds.
    """
    if not prefix:
        return prefix
    _check_length(prefix)
    *complete, last = prefix.split(SEPARATOR)
    for segment in complete:
        check_segment(segment, prefix)
    if any(_is_control(ch) for ch in last):
        raise InvalidBlobKey(f"{prefix!r} contains a control character")
    return prefix


def check_folder(prefix: str) -> str:
    """A non-empty prefix ending with '/': what bulk deletion accepts, so that deleting
    'downloads/p/s1/' can never take 'downloads/p/s10/...' with it."""
    if not prefix.endswith(SEPARATOR):
        raise InvalidBlobKey(f"{prefix!r} is not a folder prefix (it must end with '/')")
    return check_prefix(prefix)


def check_segment(segment: str, whole: str | None = None) -> str:
    """One path segment (also: a file name that becomes the last segment of a key)."""
    where = f" in {whole!r}" if whole is not None and whole != segment else ""
    if not segment:
        raise InvalidBlobKey(f"empty segment{where} (leading, trailing or double '/')")
    if segment in (".", ".."):
        raise InvalidBlobKey(f"segment {segment!r}{where} is not allowed")
    if SEPARATOR in segment:
        raise InvalidBlobKey(f"segment {segment!r}{where} contains '/'")
    if any(_is_control(ch) for ch in segment):
        raise InvalidBlobKey(f"segment {segment!r}{where} contains a control character")
    if len(_utf8(segment)) > MAX_SEGMENT_BYTES:
        raise InvalidBlobKey(f"a segment{where} is longer than {MAX_SEGMENT_BYTES} bytes")
    return segment


def is_under(key: str, prefix: str) -> bool:
    """S3's meaning of a prefix: a plain string prefix ('a/b' covers 'a/b/c' and 'a/bc')."""
    return key.startswith(prefix)


def _check_length(text: str) -> None:
    if len(_utf8(text)) > MAX_KEY_BYTES:
        raise InvalidBlobKey(f"longer than {MAX_KEY_BYTES} bytes in UTF-8")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as error:  # lone surrogates, e.g. from undecodable file names
        raise InvalidBlobKey(f"{text!r} is not valid Unicode") from error


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code < 0xA0
