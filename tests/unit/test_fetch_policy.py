"""NetworkPolicy: which addresses an agent's external_request may reach."""

import ipaddress

import pytest

from omnibot.shared.net.policy import NetworkPolicy

pytestmark = pytest.mark.timeout(5)

DEFAULT = NetworkPolicy.from_setting("")


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("172.16.3.4", "172.16.3.4 is a private address"),
        ("172.31.255.255", "172.31.255.255 is a private address"),
        ("192.168.1.1", "192.168.1.1 is a private address"),
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.255.0.9", "127.255.0.9 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address (cloud metadata service)"),
        ("169.254.1.2", "169.254.1.2 is a link-local address"),
        ("0.0.0.0", "0.0.0.0 is the unspecified address"),
        ("0.1.2.3", "0.1.2.3 is a 'this network' address"),
        ("224.0.0.1", "224.0.0.1 is a multicast address"),
        ("239.255.255.250", "239.255.255.250 is a multicast address"),
        ("240.0.0.1", "240.0.0.1 is a reserved address"),
        ("255.255.255.255", "255.255.255.255 is the broadcast address"),
        ("100.64.0.1", "100.64.0.1 is a shared (CGNAT) address"),
        ("100.127.255.254", "100.127.255.254 is a shared (CGNAT) address"),
        ("192.0.2.10", "192.0.2.10 is a documentation address"),
        ("198.18.0.1", "198.18.0.1 is a benchmarking address"),
    ],
)
def test_ipv4_classes_are_refused_with_a_readable_reason(address: str, reason: str) -> None:
    assert not DEFAULT.is_allowed(ip(address))
    assert DEFAULT.refusal_reason(ip(address)) == reason


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "unique local"),
        ("fd12:3456:789a::1", "unique local"),
        ("ff02::1", "multicast"),
        ("fec0::1", "site-local"),
        ("2001:db8::1", "documentation"),
        ("::127.0.0.1", "reserved"),
        ("64:ff9b:1::a00:5", "NAT64"),
    ],
)
def test_ipv6_classes_are_refused(address: str, fragment: str) -> None:
    reason = DEFAULT.refusal_reason(ip(address))
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize(
    ("address", "fragment"),
    [
        ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, a loopback address"),
        ("::ffff:10.0.0.5", "IPv4-mapped form of 10.0.0.5, a private address"),
        ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, a link-local address"),
        ("::ffff:100.64.1.1", "IPv4-mapped form of 100.64.1.1, a shared (CGNAT) address"),
        ("::ffff:0.0.0.0", "IPv4-mapped form of 0.0.0.0, the unspecified address"),
        ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1, a loopback address"),
        ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254"),
        ("64:ff9b::c0a8:101", "NAT64 form of 192.168.1.1, a private address"),
        ("2002:7f00:1::1", "6to4 form of 127.0.0.1, a loopback address"),
    ],
)
def test_ipv6_forms_of_refused_ipv4_addresses_are_refused(address: str, fragment: str) -> None:
    reason = DEFAULT.refusal_reason(ip(address))
    assert reason is not None
    assert fragment in reason


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.215.14",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:82a::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses_are_allowed_by_default(address: str) -> None:
    assert DEFAULT.is_allowed(ip(address))
    assert DEFAULT.refusal_reason(ip(address)) is None


def test_allowed_networks_override_refusal_only_inside_them() -> None:
    policy = NetworkPolicy.from_setting(" 10.1.0.0/16 , 127.0.0.0/8,fd00:1::/32 ")

    assert policy.is_allowed(ip("10.1.2.3"))
    assert policy.is_allowed(ip("127.0.0.1"))
    assert policy.is_allowed(ip("fd00:1::5"))
    assert not policy.is_allowed(ip("10.2.0.1"))
    assert not policy.is_allowed(ip("169.254.169.254"))
    assert not policy.is_allowed(ip("::1"))
    assert not policy.is_allowed(ip("fd00:2::5"))
    assert policy.is_allowed(ip("8.8.8.8"))


def test_allowed_ipv4_network_covers_its_ipv4_mapped_spelling() -> None:
    policy = NetworkPolicy.from_setting("127.0.0.0/8")

    assert policy.is_allowed(ip("::ffff:127.0.0.1"))
    assert not policy.is_allowed(ip("::ffff:10.0.0.1"))


def test_empty_setting_allows_no_internal_network() -> None:
    assert NetworkPolicy.from_setting("").allowed_networks == ()
    assert NetworkPolicy.from_setting(" , ").allowed_networks == ()


def test_single_address_is_a_host_network() -> None:
    policy = NetworkPolicy.from_setting("10.0.0.7")

    assert policy.is_allowed(ip("10.0.0.7"))
    assert not policy.is_allowed(ip("10.0.0.8"))


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "not-a-network", "10.0.0.1/8", "fd00::/129", "10.0.0"])
def test_bad_cidr_is_rejected_with_the_setting_name_and_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match="EXTERNAL_REQUEST_ALLOW_NETWORKS") as info:
        NetworkPolicy.from_setting(f"127.0.0.0/8,{bad}")

    assert repr(bad) in str(info.value)
    assert "not a valid CIDR network" in str(info.value)
