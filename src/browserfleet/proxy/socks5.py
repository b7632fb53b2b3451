"""Pure SOCKS5 client messages: RFC 1928 (CONNECT) and RFC 1929 (username/password).

Host names are sent as names (ATYP 3) so the upstream resolves them, as residential providers
expect; IP literals go as addresses.
"""

from __future__ import annotations

import ipaddress
import struct

VERSION = 5
NO_AUTH = 0x00
USERNAME_PASSWORD = 0x02
NO_ACCEPTABLE = 0xFF
CMD_CONNECT = 0x01
ATYP_IPV4, ATYP_NAME, ATYP_IPV6 = 0x01, 0x03, 0x04
REPLY_ERRORS = {
    0x01: "general SOCKS server failure",
    0x02: "connection not allowed by ruleset",
    0x03: "network unreachable",
    0x04: "host unreachable",
    0x05: "connection refused",
    0x06: "TTL expired",
    0x07: "command not supported",
    0x08: "address type not supported",
}


class Socks5Error(Exception):
    """The SOCKS5 server broke the protocol or refused the request."""


def greeting(with_credentials: bool) -> bytes:
    """The method-selection message: offer username/password only when we have credentials."""
    methods = [USERNAME_PASSWORD] if with_credentials else [NO_AUTH]
    return bytes([VERSION, len(methods), *methods])


def parse_method_choice(reply: bytes) -> int:
    """The method the server chose (2 bytes: VER METHOD)."""
    if len(reply) != 2 or reply[0] != VERSION:
        raise Socks5Error("not a SOCKS5 server")
    return reply[1]


def auth_request(username: str, password: str) -> bytes:
    """RFC 1929 sub-negotiation: VER=1 ULEN UNAME PLEN PASSWD."""
    user, secret = username.encode(), password.encode()
    if not 0 < len(user) < 256 or len(secret) > 255:
        raise ValueError("SOCKS5 username and password must be 1-255 and 0-255 bytes")
    return bytes([1, len(user)]) + user + bytes([len(secret)]) + secret


def auth_succeeded(reply: bytes) -> bool:
    """RFC 1929 reply: VER STATUS; status 0 is success."""
    return len(reply) == 2 and reply[1] == 0


def connect_request(host: str, port: int) -> bytes:
    """CONNECT to host:port, by name unless host is an IP literal."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host.encode("idna")
        if not 0 < len(name) < 256:
            raise ValueError("host name too long for SOCKS5") from None
        destination = bytes([ATYP_NAME, len(name)]) + name
    else:
        atyp = ATYP_IPV4 if address.version == 4 else ATYP_IPV6
        destination = bytes([atyp]) + address.packed
    return bytes([VERSION, CMD_CONNECT, 0]) + destination + struct.pack("!H", port)


def reply_address_length(header: bytes) -> int:
    """Given the first 5 reply bytes (VER REP RSV ATYP + 1), how many bytes remain to read.

    Raises Socks5Error if the server refused the CONNECT.
    """
    if len(header) != 5 or header[0] != VERSION:
        raise Socks5Error("malformed SOCKS5 reply")
    if header[1] != 0:
        raise Socks5Error(REPLY_ERRORS.get(header[1], f"SOCKS5 error {header[1]}"))
    atyp = header[3]
    if atyp == ATYP_IPV4:
        return 4 - 1 + 2
    if atyp == ATYP_IPV6:
        return 16 - 1 + 2
    if atyp == ATYP_NAME:
        return header[4] + 2
    raise Socks5Error("malformed SOCKS5 reply address")
