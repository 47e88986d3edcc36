"""Which resolved addresses the outbound client may reach: every special-purpose network, IPv4
hidden in IPv6 in each of its forms, and the operator's allow-list."""

from __future__ import annotations

import ipaddress

import pytest

from baas.config import Settings, SettingsError
from baas.net import AddressPolicy, judge, parse_networks, policy_from_settings

JUDGED = [
    # address, what it is (None: public, allowed)
    ("8.8.8.8", None),
    ("1.1.1.1", None),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:80b::200e", None),
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("0.0.0.0", "an unspecified address"),
    ("0.1.2.3", "an unspecified address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.255", "a private address"),
    ("192.168.1.1", "a private address"),
    ("100.64.0.1", "a shared (carrier-grade NAT) address"),
    ("169.254.169.254", "a link-local address"),  # cloud metadata
    ("192.0.0.8", "a reserved address"),
    ("192.0.2.1", "a reserved address"),
    ("198.18.0.1", "a reserved address"),
    ("198.51.100.7", "a reserved address"),
    ("203.0.113.9", "a reserved address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a reserved address"),
    ("::", "an unspecified address"),
    ("::1", "a loopback address"),
    ("fe80::1", "a link-local address"),
    ("fc00::1", "a unique-local address"),
    ("fd12:3456::1", "a unique-local address"),
    ("fec0::1", "a private address"),
    ("ff02::1", "a multicast address"),
    ("2001:db8::1", "a reserved address"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a reserved address"),  # Teredo
    ("100::1", "a reserved address"),
    ("64:ff9b:1::a", "a private address"),
    ("4000::1", "a reserved address"),  # outside 2000::/3: nothing allocated
    # IPv4 inside IPv6: judged by the IPv4 address
    ("::ffff:127.0.0.1", "an IPv4-mapped loopback address (127.0.0.1)"),
    ("::ffff:169.254.169.254", "an IPv4-mapped link-local address (169.254.169.254)"),
    ("::ffff:10.0.0.1", "an IPv4-mapped private address (10.0.0.1)"),
    ("::ffff:0:127.0.0.1", "an IPv4-translated loopback address (127.0.0.1)"),
    ("::127.0.0.1", "an IPv4-compatible loopback address (127.0.0.1)"),
    ("::192.168.0.1", "an IPv4-compatible private address (192.168.0.1)"),
    ("64:ff9b::7f00:1", "a NAT64 loopback address (127.0.0.1)"),
    ("64:ff9b::a9fe:a9fe", "a NAT64 link-local address (169.254.169.254)"),
    ("2002:7f00:1::1", "a 6to4 loopback address (127.0.0.1)"),
    ("2002:c0a8:101::", "a 6to4 private address (192.168.1.1)"),
    ("::ffff:8.8.8.8", None),
    ("64:ff9b::808:808", None),
    ("2002:808:808::1", None),
]


@pytest.mark.parametrize(("address", "expected"), JUDGED)
def test_every_kind_of_address_is_judged(address: str, expected: str | None) -> None:
    verdict = judge(ipaddress.ip_address(address))
    assert (verdict.describe() if verdict else None) == expected


def test_the_default_policy_refuses_every_internal_address() -> None:
    policy = AddressPolicy()
    for address, expected in JUDGED:
        refusal = policy.refusal(ipaddress.ip_address(address))
        assert (refusal is None) == (expected is None), address


@pytest.mark.parametrize(
    ("allowed", "address", "refused"),
    [
        (["127.0.0.0/8"], "127.0.0.1", False),
        (["127.0.0.0/8"], "::ffff:127.0.0.1", False),  # the same host
        (["127.0.0.0/8"], "::1", True),
        (["127.0.0.2"], "127.0.0.2", False),
        (["127.0.0.2"], "127.0.0.1", True),
        (["10.0.0.0/8"], "10.9.8.7", False),
        (["10.0.0.0/8"], "192.168.1.1", True),
        (["fd00::/8"], "fd00::5", False),
        # never, whatever the operator lists: 0.0.0.0 is this very host, multicast no server
        (["0.0.0.0/0"], "0.0.0.0", True),
        (["0.0.0.0/0"], "224.0.0.1", True),
        (["::/0"], "::", True),
        (["0.0.0.0/0"], "10.0.0.1", False),
    ],
)
def test_the_operator_opens_only_the_networks_listed(
    allowed: list[str], address: str, refused: bool
) -> None:
    policy = AddressPolicy(parse_networks(allowed))
    assert (policy.refusal(ipaddress.ip_address(address)) is not None) == refused


def test_the_setting_lists_networks_and_refuses_anything_else() -> None:
    settings = Settings.from_raw({"outbound_allow_private": "127.0.0.0/8, 10.1.2.3,fd00::/8"})
    assert policy_from_settings(settings).allowed == parse_networks(
        ["127.0.0.0/8", "10.1.2.3/32", "fd00::/8"]
    )
    assert policy_from_settings(Settings()).allowed == ()  # default: nothing internal
    with pytest.raises(SettingsError, match=r"BAAS_OUTBOUND_ALLOW_PRIVATE: 'localhost' is not"):
        Settings.from_raw({"outbound_allow_private": "localhost"})
