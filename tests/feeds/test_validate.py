"""Entry validation: networks and thumbprints, one entry at a time."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookbouncer.feeds.validate import (
    normalize_thumbprint,
    normalize_thumbprints,
    parse_network,
    parse_networks,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("  192.0.2.0/24\n", "192.0.2.0/24"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("192.0.2.7/32", "192.0.2.7/32"),
        ("10.0.0.0/16", "10.0.0.0/16"),
        ("127.0.0.1", "127.0.0.1/32"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:DB8::/48", "2001:db8::/48"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::1", "::1/128"),
        ("::ffff:192.0.2.0/120", "192.0.2.0/24"),
        ("::ffff:192.0.2.9", "192.0.2.9/32"),
        ("::ffff:c000:200/120", "192.0.2.0/24"),
    ],
)
def test_parse_network_accepts(text: str, expected: str) -> None:
    assert parse_network(text, 16, 32) == ip_network(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("0.0.0.0/0", "/0"),
        ("::/0", "/0"),
        ("10.0.0.1/8", "host bits"),
        ("192.0.2.1/24", "host bits"),
        ("2001:db8::1/32", "host bits"),
        ("10.0.0.0/8", "minimum prefix /16"),
        ("2001:db8::/31", "minimum prefix /32"),
        ("010.0.0.0/16", "leading zeros"),
        ("10.00.0.0/16", "leading zeros"),
        ("10.0.0.0/016", "prefix length"),
        ("10.0.0.0/255.255.0.0", "prefix length"),
        ("10.0.0.0/0.0.255.255", "prefix length"),
        ("10.0.0.0/", "prefix length"),
        ("10.0.0.0/33", "longer than /32"),
        ("2001:db8::/129", "longer than /128"),
        ("10.0.0.0/+16", "prefix length"),
        ("10.0.0.0 /16", "not an IP address"),
        ("10.0.0/24", "not an IP address"),
        ("10.0.0.256", "not an IP address"),
        ("fe80::1%eth0", "not an IP address"),
        ("example.com", "not an IP address"),
        ("*", "not an IP address"),
        ("1\uff10.0.0.0/16", "not an IP address"),
        ("10.0.0.0/1\uff16", "not an IP address"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.0/16", "multicast"),
        ("1" * 100, "not an IP address"),
    ],
)
def test_parse_network_rejects(text: str, message: str) -> None:
    with pytest.raises(
        ValueError, match=message.replace("/", r"\/").replace("+", r"\+")
    ):
        parse_network(text, 16, 32)


def test_parse_network_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="not a string"):
        parse_network(167772160, 16, 32)  # type: ignore[arg-type]


def test_minimum_prefix_applies_after_unmapping() -> None:
    with pytest.raises(ValueError, match="minimum prefix /16 for IPv4"):
        parse_network("::ffff:10.0.0.0/104", 16, 32)


def test_slash_zero_always_rejected() -> None:
    with pytest.raises(ValueError, match="/0"):
        parse_network("0.0.0.0/0", 0, 0)


def test_parse_networks_deduplicates_in_order() -> None:
    networks = parse_networks(
        ["192.0.2.0/24", "2001:db8::/32", "192.0.2.0/24", "::ffff:192.0.2.0/120"]
    )
    assert networks == (ip_network("192.0.2.0/24"), ip_network("2001:db8::/32"))


def test_parse_networks_names_position_of_bad_entry() -> None:
    with pytest.raises(ValueError, match=r"position 2 in the list"):
        parse_networks(["192.0.2.0/24", "198.51.100.0/24", "10.0.0.1/8"])


SHA1 = "a1b2c3d4e5f60718293a4b5c6d7e8f9011223344"
SHA256 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SHA1, SHA1),
        (SHA1.upper(), SHA1),
        (":".join(SHA1[i : i + 2] for i in range(0, 40, 2)).upper(), SHA1),
        (" ".join(SHA1[i : i + 2] for i in range(0, 40, 2)), SHA1),
        (f"  {SHA1}  ", SHA1),
        (SHA256, SHA256),
        (SHA256.upper(), SHA256),
        (":".join(SHA256[i : i + 2] for i in range(0, 64, 2)), SHA256),
    ],
)
def test_normalize_thumbprint_accepts(text: str, expected: str) -> None:
    assert normalize_thumbprint(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" : ", "empty"),
        (SHA1[:-1], "39 hex digits"),
        (SHA1 + "0", "41 hex digits"),
        (SHA256 + "00", "66 hex digits"),
        ("a" * 32, "32 hex digits"),
        (SHA1[:-1] + "g", "other than hex"),
        (SHA1.replace("a", "-"), "other than hex"),
        (SHA1[:-1] + "\t", "39 hex digits"),
        ("\uff41" * 40, "not hex"),
        ("0x" + SHA1[2:], "other than hex"),
        ("a" * 500, "not hex"),
    ],
)
def test_normalize_thumbprint_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_thumbprint(text)


def test_normalize_thumbprints_deduplicates() -> None:
    assert normalize_thumbprints([SHA1, SHA1.upper(), SHA256]) == (SHA1, SHA256)


def test_mapped_ipv4_leading_zero_rejected() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        parse_network("::ffff:010.0.0.1", 16, 32)


def _reference(text: str, min_v4: int, min_v6: int) -> IPv4Network | IPv6Network | None:
    """The same rules written with the ipaddress module's own checks."""
    try:
        network = ip_network(text, strict=True)
    except ValueError:
        return None
    if isinstance(network, IPv6Network) and network.subnet_of(MAPPED):
        network = IPv4Network(
            (int(network.network_address) & 0xFFFFFFFF, network.prefixlen - 96)
        )
    minimum = min_v4 if network.version == 4 else min_v6
    first = network.network_address
    if network.prefixlen < max(minimum, 1) or first.is_unspecified:
        return None
    if first.is_multicast:
        return None
    return network


MAPPED = IPv6Network("::ffff:0:0/96")


@given(
    value=st.integers(0, 2**32 - 1),
    prefix=st.integers(0, 32),
    min_v4=st.integers(1, 32),
)
def test_parse_network_matches_reference_ipv4(
    value: int, prefix: int, min_v4: int
) -> None:
    text = f"{IPv4Address(value)}/{prefix}"
    expected = _reference(text, min_v4, 32)
    if expected is None:
        with pytest.raises(ValueError):
            parse_network(text, min_v4, 32)
    else:
        assert parse_network(text, min_v4, 32) == expected


@given(
    value=st.one_of(
        st.integers(0, 2**128 - 1),
        st.integers(0xFFFF00000000, 0xFFFFFFFFFFFF),
    ),
    prefix=st.integers(0, 128),
    min_v6=st.integers(1, 128),
)
def test_parse_network_matches_reference_ipv6(
    value: int, prefix: int, min_v6: int
) -> None:
    text = f"{IPv6Address(value)}/{prefix}"
    expected = _reference(text, 16, min_v6)
    if expected is None:
        with pytest.raises(ValueError):
            parse_network(text, 16, min_v6)
    else:
        assert parse_network(text, 16, min_v6) == expected


@given(text=st.text(alphabet="0123456789abcdef:./ x%", max_size=45))
def test_parse_network_stricter_than_ipaddress(text: str) -> None:
    try:
        network = parse_network(text, 1, 1)
    except ValueError:
        return
    assert network == _reference(text.strip(), 1, 1)


@given(
    digest=st.sampled_from([20, 32]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
    separator=st.sampled_from(["", ":", " "]),
    upper=st.booleans(),
)
def test_normalize_thumbprint_round_trips(
    digest: bytes, separator: str, upper: bool
) -> None:
    hex_digits = digest.hex()
    text = separator.join(hex_digits[i : i + 2] for i in range(0, len(hex_digits), 2))
    assert normalize_thumbprint(text.upper() if upper else text) == hex_digits
