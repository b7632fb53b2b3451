"""Signed links to stored files (recordings, downloads) that browserfleet serves itself.

A link names a blob key, an expiry (Unix seconds) and how to serve it (inline for a video a
`<video>` plays, attachment for a download); the signature is an HMAC of all three under the
server secret with its own label, so it can stand for nothing else (not a CDP token, not another
file, not a later expiry). Pure: the clock is passed in.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import quote

from browserfleet.auth.signing import ServerSecret

LINK_LABEL = "blob-link"
FILES_PATH = "/files/"


class Disposition(StrEnum):
    INLINE = "inline"
    ATTACHMENT = "attachment"


@dataclass(frozen=True, slots=True)
class SignedLink:
    key: str
    expires: int  # Unix seconds
    disposition: Disposition
    signature: str

    def url(self, base_url: str) -> str:
        return (
            f"{base_url.rstrip('/')}{FILES_PATH}{quote(self.key, safe='/')}"
            f"?expires={self.expires}&disposition={self.disposition.value}"
            f"&signature={self.signature}"
        )


def _message(key: str, expires: int, disposition: Disposition) -> str:
    return f"{key}\n{expires}\n{disposition.value}"


def sign(
    secret: ServerSecret, key: str, *, expires_at: datetime, disposition: Disposition
) -> SignedLink:
    expires = int(expires_at.timestamp())
    signature = secret.derive(LINK_LABEL, _message(key, expires, disposition))
    return SignedLink(key, expires, disposition, signature)


def verify(
    secret: ServerSecret,
    key: str,
    *,
    expires: int,
    disposition: Disposition,
    signature: str,
    now: datetime,
) -> bool:
    """True only for a link this server signed, for exactly this key, expiry and disposition,
    that has not expired yet."""
    expected = secret.derive(LINK_LABEL, _message(key, expires, disposition))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return False
    return now.timestamp() < expires
