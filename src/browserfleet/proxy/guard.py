"""The egress guard: which addresses a session's browser may reach on a direct route.

The check runs on resolved addresses at connect time and the caller connects to the very address
that was checked, so a name that re-resolves (DNS rebinding) cannot slip past it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import psutil

from browserfleet.proxy.errors import EgressBlocked, TargetUnreachable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


# First match names the reason, so the specific entries come before the ranges holding them.
BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (_net("169.254.169.254/32"), "cloud metadata"),
    (_net("fd00:ec2::254/128"), "cloud metadata"),
    (_net("168.63.129.16/32"), "cloud platform endpoint (Azure WireServer)"),
    (_net("0.0.0.0/8"), "unspecified"),
    (_net("127.0.0.0/8"), "loopback"),
    (_net("10.0.0.0/8"), "private"),
    (_net("172.16.0.0/12"), "private"),
    (_net("192.168.0.0/16"), "private"),
    (_net("100.64.0.0/10"), "shared address space (CGNAT)"),
    (_net("169.254.0.0/16"), "link-local"),
    (_net("192.0.0.0/24"), "IETF protocol assignments"),
    (_net("198.18.0.0/15"), "benchmarking"),
    (_net("224.0.0.0/4"), "multicast"),
    (_net("240.0.0.0/4"), "reserved"),
    (_net("::/128"), "unspecified"),
    (_net("::1/128"), "loopback"),
    (_net("::/96"), "IPv4-compatible (deprecated)"),
    (_net("64:ff9b:1::/48"), "local-use NAT64"),
    (_net("100::/64"), "discard-only"),
    (_net("2001::/32"), "Teredo"),
    (_net("fc00::/7"), "unique local (private)"),
    (_net("fe80::/10"), "link-local"),
    (_net("fec0::/10"), "site-local (deprecated)"),
    (_net("ff00::/8"), "multicast"),
)
_NAT64 = _net("64:ff9b::/96")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4 or NAT64 IPv6 address, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: IPAddress) -> str | None:
    """Why a direct connection to this address is refused by default, or None if it is allowed."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = blocked_reason(inner)
        return None if reason is None else f"{reason}, embedded in {address}"
    address = _without_scope(address)
    return next((reason for network, reason in BLOCKED if address in network), None)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve a host name with the event loop's getaddrinfo (TCP addresses, in its order)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True, slots=True)
class EgressGuard:
    """Blocks non-public addresses unless an operator-listed network allows them."""

    allow_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False, repr=False)
    # This host's own interface addresses (public ones too): its services are not the web's.
    local_addresses: frozenset[IPAddress] = frozenset()

    def check(self, host: str, address: IPAddress) -> None:
        """Raise EgressBlocked unless this resolved address may be reached."""
        if self.is_allow_listed(address):
            return
        reason = blocked_reason(address)
        if reason is None and _without_scope(address) in self.local_addresses:
            reason = "an address of this server"
        if reason is not None:
            raise EgressBlocked(host, address, reason)

    def is_allow_listed(self, address: IPAddress) -> bool:
        """True when the address, or the IPv4 address it embeds, is in an allowed network."""
        candidates = [_without_scope(address)]
        if (inner := embedded_ipv4(address)) is not None:
            candidates.append(inner)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allow_networks
        )

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each checked; raise EgressBlocked if any is refused.

        Raises TargetUnreachable when the name does not resolve.

        Refusing the whole name when one of its addresses is private (rather than skipping that
        address) keeps a mixed answer from becoming a way to probe internal hosts.
        """
        literal = _literal(host)
        addresses = [literal] if literal is not None else await self._lookup(host, port)
        if not addresses:
            raise TargetUnreachable(f"{host} has no address")
        for address in addresses:
            self.check(host, address)
        return addresses

    async def _lookup(self, host: str, port: int) -> list[IPAddress]:
        try:
            return await self.resolver(host, port)
        except OSError as exc:
            raise TargetUnreachable(f"{host} does not resolve") from exc


def host_addresses() -> frozenset[IPAddress]:
    """Every address of this host's network interfaces."""
    found: set[IPAddress] = set()
    for addresses in psutil.net_if_addrs().values():
        for entry in addresses:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(ValueError):
                    found.add(ipaddress.ip_address(entry.address.partition("%")[0]))
    return frozenset(found)


def parse_networks(texts: tuple[str, ...] | list[str]) -> tuple[IPNetwork, ...]:
    """Operator allow-list entries ("127.0.0.0/8", "::1") as networks."""
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _without_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return ipaddress.IPv6Address(str(address).partition("%")[0])
    return address
