"""API key minting and hashing (pure).

Keys carry 256 bits from the OS CSPRNG, so a single SHA-256 is a safe at-rest hash: there is
nothing to brute-force that a slow KDF would protect, and lookups stay O(1) by hash.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "bu_"
_SHOWN_CHARS = 8


@dataclass(frozen=True, slots=True)
class MintedKey:
    secret: str  # shown to the operator once, never stored
    digest: str
    prefix: str


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint_key() -> MintedKey:
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return MintedKey(
        secret=secret, digest=hash_key(secret), prefix=secret[: len(KEY_PREFIX) + _SHOWN_CHARS]
    )
