"""Which resolved addresses a server-side fetch may reach: special-purpose networks, IPv4 hidden
inside IPv6, and the operator's allow-list (BAAS_OUTBOUND_ALLOW_PRIVATE).

Only RESOLVED addresses are judged, parsed with `ipaddress`: whatever notation a URL used
(2130706433, 0x7f.0.0.1, 0177.0.0.1, 127.1, [::ffff:127.0.0.1]), the resolver turned it into an
address first, so a notation cannot hide what it names. The tables follow IANA's special-purpose
registries rather than `ipaddress.is_global`, whose answers differ between Python versions (3.11
calls ::127.0.0.1 global).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "BAAS_OUTBOUND_ALLOW_PRIVATE"

# Kinds the allow-list cannot open: connecting to 0.0.0.0 reaches this very host, and multicast
# is no server at all.
NEVER_ALLOWED = frozenset({"unspecified", "multicast"})

_V4 = tuple(
    (ipaddress.IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # also cloud metadata services (169.254.169.254)
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "reserved"),  # documentation
        ("192.88.99.0/24", "reserved"),  # former 6to4 relays
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),  # benchmarking
        ("198.51.100.0/24", "reserved"),  # documentation
        ("203.0.113.0/24", "reserved"),  # documentation
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # and 255.255.255.255
    )
)
_V6 = tuple(
    (ipaddress.IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "private"),  # local-use NAT64
        ("100::/64", "reserved"),  # discard
        ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo among them
        ("2001:db8::/32", "reserved"),  # documentation
        ("3fff::/20", "reserved"),  # documentation
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local, deprecated
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")  # IANA has allocated nothing else
_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


@dataclass(frozen=True)
class Verdict:
    """What an address is when it is no plain public one: its kind, and the IPv4 address it
    carries when that is what made it so ("loopback", "IPv4-mapped", 127.0.0.1)."""

    kind: str
    embedding: str = ""
    embedded: ipaddress.IPv4Address | None = None

    def describe(self) -> str:
        """'a loopback address', 'an IPv4-mapped loopback address (127.0.0.1)'."""
        if self.embedded is None:
            return f"{_article(self.kind)} {self.kind} address"
        words = f"{self.embedding} {self.kind}"
        return f"{_article(words)} {words} address ({self.embedded})"


def judge(address: IPAddress) -> Verdict | None:
    """None for an address on the public internet, else what it is."""
    if isinstance(address, ipaddress.IPv4Address):
        return _special_v4(address)
    embedded = _embedded_v4(address)
    if embedded is not None:
        name, v4 = embedded
        inner = _special_v4(v4)
        return None if inner is None else Verdict(inner.kind, name, v4)
    for network, kind in _V6:
        if address in network:
            return Verdict(kind)
    return None if address in _GLOBAL_UNICAST else Verdict("reserved")


def _special_v4(address: ipaddress.IPv4Address) -> Verdict | None:
    for network, kind in _V4:
        if address in network:
            return Verdict(kind)
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    """The IPv4 address inside an IPv4-mapped, -translated, -compatible, NAT64 or 6to4 one."""
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _MAPPED:
        return "IPv4-mapped", low32
    if address in _TRANSLATED:
        return "IPv4-translated", low32
    if address in _COMPATIBLE and int(address) > 1:  # not :: nor ::1
        return "IPv4-compatible", low32
    if address in _NAT64:
        return "NAT64", low32
    if address in _SIX_TO_FOUR:
        return "6to4", ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


def _article(words: str) -> str:
    return "an" if words.startswith(("IPv", "unspecified")) else "a"


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Networks in CIDR notation (a bare address is a network of one); ValueError names the bad
    one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{value!r} is not a network such as 10.0.0.0/8, 127.0.0.1/32 or fd00::/8"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class AddressPolicy:
    """Public addresses are allowed; internal ones only inside a network the operator listed."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, *networks: str) -> AddressPolicy:
        return cls(parse_networks(networks))

    def refusal(self, address: IPAddress) -> Verdict | None:
        """Why a fetch may not connect to `address`, or None when it may."""
        verdict = judge(address)
        if verdict is None or verdict.kind in NEVER_ALLOWED:
            return verdict
        return None if self.listed(address) else verdict

    def listed(self, address: IPAddress) -> bool:
        """Whether `address` (or the IPv4 address it carries) is in an allowed network."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            embedded = _embedded_v4(address)
            if embedded is not None:
                candidates.append(embedded[1])
        return any(
            candidate.version == network.version and candidate in network
            for candidate in candidates
            for network in self.allowed
        )
