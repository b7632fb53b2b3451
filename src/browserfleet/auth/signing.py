"""The server secret and what is derived from it: per-session CDP tokens (and, later, signed
recording and download URLs), each under its own label so no derived value can stand for another.

Pure apart from `load_or_create_secret`. A token is HMAC-SHA256(secret, label + message), so a
server can render a session's cdpUrl again from its id without storing the token; the database
keeps only a digest of it. Servers sharing a database must share the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

SECRET_FILE = "server-secret"
_SECRET_BYTES = 32
CDP_TOKEN = "cdp-token"
SECRET_CHECK = "secret-check"


class ServerSecret:
    """A 256-bit secret; `derive` gives URL-safe values bound to a label and a message."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < _SECRET_BYTES:
            raise ValueError(f"the server secret must hold at least {_SECRET_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "ServerSecret(<hidden>)"

    def derive(self, label: str, message: str) -> str:
        """43 URL-safe characters (256 bits) for `message` under `label`."""
        mac = hmac.new(self._key, f"{label}\x00{message}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def cdp_token(self, session_id: str) -> str:
        return self.derive(CDP_TOKEN, session_id)

    def check_value(self) -> str:
        """Stored in the database so servers can tell they share this secret; it says nothing
        of the secret itself (an HMAC under a label of its own)."""
        return self.derive(SECRET_CHECK, "browserfleet")


def token_digest(token: str) -> str:
    """What the database keeps of a token: enough to look one up, nothing to use."""
    return hashlib.sha256(token.encode()).hexdigest()


def parse_secret(text: str) -> ServerSecret:
    """A secret given as text (a setting): at least 32 bytes once decoded from hex/base64."""
    raw = text.strip()
    try:
        key = bytes.fromhex(raw)
    except ValueError:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    return ServerSecret(key)


def load_or_create_secret(data_dir: Path) -> ServerSecret:
    """The secret in DATA_DIR/server-secret (0600), created at the first start. Two processes
    starting at once agree: the file is created exclusively, and the loser reads the winner's."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        draft = data_dir / f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(_SECRET_BYTES) + "\n")
            os.link(draft, path)  # atomic, and never replaces a secret already there
        except FileExistsError:
            pass  # another process was first: use its secret
        finally:
            draft.unlink()
    return parse_secret(path.read_text())
