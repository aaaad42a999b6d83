"""The network policy: which addresses a request made for an agent or a file url may reach.

Every non-public address is refused unless ``EXTERNAL_REQUEST_ALLOW_NETWORKS`` allows it. The
policy is pure; ``PolicyResolver`` applies it to every connection the safe HTTP client makes.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_NETWORKS_SETTING: Final = "EXTERNAL_REQUEST_ALLOW_NETWORKS"


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


# First match wins, so the more specific entries come before the ranges that contain them.
# The stdlib's is_private/is_global flags changed meaning between patch releases, so the refused
# ranges are spelled out here; `not is_global` remains as a backstop for anything not listed.
_REFUSED_V4: Final = _networks(
    ("0.0.0.0/32", "the unspecified address"),
    ("0.0.0.0/8", "a 'this network' address"),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (CGNAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "a link-local address (cloud metadata service)"),
    ("169.254.0.0/16", "a link-local address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "a reserved address (IETF protocol assignments)"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.88.99.0/24", "a reserved address (6to4 relay anycast)"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("240.0.0.0/4", "a reserved address"),
)
_REFUSED_V6: Final = _networks(
    ("::/128", "the unspecified address"),
    ("::1/128", "a loopback address"),
    ("64:ff9b:1::/48", "a local-use NAT64 address"),
    # Also covers the deprecated IPv4-compatible form ::a.b.c.d.
    ("::/8", "a reserved address"),
    ("100::/64", "a discard-only address"),
    ("2001::/23", "a reserved address (IETF protocol assignments, incl. Teredo)"),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("fc00::/7", "a unique local address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
)
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")


def _without_scope(ip: IPAddress) -> IPAddress:
    # A zone id (fe80::1%eth0) is not part of the address; comparisons must not depend on it.
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return ipaddress.IPv6Address(int(ip))
    return ip


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address an IPv6 address stands for, with the name of the mapping, if any."""
    if ip.ipv4_mapped is not None:
        return "an IPv4-mapped form", ip.ipv4_mapped
    if ip in _NAT64_WELL_KNOWN:
        return "a NAT64 form", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return "a 6to4 form", ip.sixtofour
    return None


def _refused_label(ip: IPAddress) -> str | None:
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            # These addresses reach the embedded IPv4 address, so that address decides alone.
            form, v4 = embedded
            inner = _refused_label(v4)
            return None if inner is None else f"{form} of {v4}, {inner}"
        table = _REFUSED_V6
    else:
        table = _REFUSED_V4
    for network, label in table:
        if ip in network:
            return label
    if not ip.is_global:
        return "not a globally routable address"
    return None


class NetworkPolicy:
    """Which addresses omnibot may connect to on behalf of an agent or a file url. Pure.

    Every non-public address is refused unless it lies inside one of the explicitly allowed networks.
    """

    def __init__(self, allowed: Iterable[IPNetwork] = ()) -> None:
        self._allowed: tuple[IPNetwork, ...] = tuple(allowed)

    @classmethod
    def from_setting(cls, allow_networks: str) -> NetworkPolicy:
        """Parse ``EXTERNAL_REQUEST_ALLOW_NETWORKS``: comma-separated CIDRs, empty for none."""
        allowed: list[IPNetwork] = []
        for raw in allow_networks.split(","):
            item = raw.strip()
            if not item:
                continue
            try:
                allowed.append(ipaddress.ip_network(item, strict=True))
            except ValueError as exc:
                raise ValueError(
                    f"{ALLOW_NETWORKS_SETTING}: {item!r} is not a valid CIDR network "
                    f"(expected e.g. 10.1.0.0/16 or fd00::/8): {exc}"
                ) from None
        return cls(allowed)

    @property
    def allowed_networks(self) -> tuple[IPNetwork, ...]:
        return self._allowed

    def is_allowed(self, ip: IPAddress) -> bool:
        return self.refusal_reason(ip) is None

    def refusal_reason(self, ip: IPAddress) -> str | None:
        """Why ``ip`` is refused (e.g. ``"10.0.0.5 is a private address"``), or None if allowed."""
        ip = _without_scope(ip)
        if self._explicitly_allowed(ip):
            return None
        label = _refused_label(ip)
        return None if label is None else f"{ip} is {label}"

    def _explicitly_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        # An allowed IPv4 network also allows its IPv4-mapped IPv6 spelling: it is the same host.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            candidates.append(ip.ipv4_mapped)
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self._allowed
        )


class AddressRefusedError(OSError):
    """A connection target was refused by the network policy.

    An ``OSError`` because aiohttp's connector treats resolver ``OSError``s as resolution failures
    and keeps the original as ``os_error``, which is how the client recognises a refusal.
    """


class PolicyResolver(AbstractResolver):
    """Resolves through ``inner`` and keeps only the addresses the policy allows.

    The connector connects to exactly the addresses returned here, so there is no window between
    check and connect for a rebinding DNS answer, and every hop of a redirect chain is covered.
    """

    def __init__(self, policy: NetworkPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        resolved = await self._inner.resolve(host, port, family)
        kept: list[ResolveResult] = []
        first_refusal: str | None = None
        for entry in resolved:
            try:
                reason = self._policy.refusal_reason(ipaddress.ip_address(entry["host"]))
            except ValueError:
                reason = f"{entry['host']!r} is not an IP address"
            if reason is None:
                kept.append(entry)
            elif first_refusal is None:
                first_refusal = reason
        if kept:
            return kept
        if first_refusal is None:
            raise OSError(f"{host} has no addresses")
        raise AddressRefusedError(f"refused: {host} resolves only to refused addresses ({first_refusal})")

    async def close(self) -> None:
        await self._inner.close()
