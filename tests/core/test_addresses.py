"""Strict address parsing and the forwarding-chain walk."""

from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest

from hookbouncer.addresses import (
    AddressError,
    client_address,
    parse_address,
    parse_forwarded,
    parse_x_forwarded_for,
)
from hookbouncer.allowlist import Allowlist

TRUSTED = Allowlist([ip_network("10.0.0.0/8"), ip_network("2001:db8:ff::/48")])


def is_trusted(address: IPv4Address | IPv6Address) -> bool:
    return address in TRUSTED


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::1", "::1"),
        ("::", "::"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("::FFFF:192.0.2.1", "192.0.2.1"),
        ("::ffff:c000:201", "192.0.2.1"),
        ("0:0:0:0:0:ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%25", "fe80::1"),
        ("::ffff:192.0.2.1%eth0", "192.0.2.1"),
        ("::192.0.2.1", "::c000:201"),
        ("64:ff9b::192.0.2.1", "64:ff9b::c000:201"),
    ],
)
def test_parse_address_valid(text: str, expected: str) -> None:
    assert parse_address(text) == ip_address(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "192.0.2.1 ",
        " 192.0.2.1",
        "192.0.2.01",
        "010.0.2.1",
        "192.0.2",
        "192.0.2.1.5",
        "192.0.2.256",
        "192.0.2.-1",
        "0x7f.0.0.1",
        "2130706433",
        "127.1",
        "192.0.2.1/32",
        "192.0.2.1%eth0",
        "::ffff:192.0.2.01",
        "2001:db8::1::1",
        "2001:db8:::1",
        "12345::1",
        "g::1",
        "fe80::1%",
        "[2001:db8::1]",
        "192.0.2.1:80",
        "unknown",
        "localhost",
        "١٩٢.0.2.1",
        "192.0.2.1\x00",
        "192.0.2.1\n",
        "2001:db8::1" + "0" * 200,
    ],
)
def test_parse_address_invalid(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_parse_address_error_is_403() -> None:
    with pytest.raises(AddressError) as caught:
        parse_address("bogus")
    assert caught.value.status == 403
    assert caught.value.reason == "invalid_address"


@pytest.mark.parametrize(
    ("peer", "headers", "expected"),
    [
        # Untrusted peer: forwarding headers are ignored, however they look.
        ("198.51.100.7", [("x-forwarded-for", "203.0.113.1")], "198.51.100.7"),
        ("198.51.100.7", [("forwarded", "for=203.0.113.1")], "198.51.100.7"),
        ("198.51.100.7", [("x-forwarded-for", "garbage")], "198.51.100.7"),
        ("::ffff:198.51.100.7", [], "198.51.100.7"),
        # Trusted peer without headers: the peer itself.
        ("10.0.0.1", [], "10.0.0.1"),
        # One hop.
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.1")], "203.0.113.1"),
        # A client-written entry on the left is skipped: rightmost untrusted wins.
        (
            "10.0.0.1",
            [("x-forwarded-for", "1.2.3.4, 203.0.113.1")],
            "203.0.113.1",
        ),
        (
            "10.0.0.1",
            [("x-forwarded-for", "1.2.3.4, 203.0.113.1, 10.9.9.9")],
            "203.0.113.1",
        ),
        # Spoofed trusted-looking entries left of the real client do not matter.
        (
            "10.0.0.1",
            [("x-forwarded-for", "10.1.1.1, 203.0.113.1, 10.2.2.2")],
            "203.0.113.1",
        ),
        # Whole chain trusted: the leftmost.
        ("10.0.0.1", [("x-forwarded-for", "10.1.1.1, 10.2.2.2")], "10.1.1.1"),
        # Multiple header lines are one list in arrival order.
        (
            "10.0.0.1",
            [
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "203.0.113.1"),
            ],
            "203.0.113.1",
        ),
        (
            "10.0.0.1",
            [
                ("x-forwarded-for", "203.0.113.1"),
                ("x-forwarded-for", "10.1.1.1"),
            ],
            "203.0.113.1",
        ),
        # Ports and brackets.
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.1:4711")], "203.0.113.1"),
        ("10.0.0.1", [("x-forwarded-for", "[2001:db8::1]:4711")], "2001:db8::1"),
        ("10.0.0.1", [("x-forwarded-for", "2001:db8::1")], "2001:db8::1"),
        ("10.0.0.1", [("x-forwarded-for", "::ffff:203.0.113.1")], "203.0.113.1"),
        # Mapped trusted peer.
        ("::ffff:10.0.0.1", [("x-forwarded-for", "203.0.113.1")], "203.0.113.1"),
        ("2001:db8:ff::5", [("x-forwarded-for", "203.0.113.1")], "203.0.113.1"),
        # RFC 7239.
        ("10.0.0.1", [("forwarded", "for=203.0.113.1")], "203.0.113.1"),
        ("10.0.0.1", [("forwarded", 'for="203.0.113.1:80"')], "203.0.113.1"),
        (
            "10.0.0.1",
            [("forwarded", 'for="[2001:db8::1]:4711";proto=https')],
            "2001:db8::1",
        ),
        ("10.0.0.1", [("forwarded", 'For="[2001:db8::1]"')], "2001:db8::1"),
        (
            "10.0.0.1",
            [("forwarded", "for=1.2.3.4, for=203.0.113.1;by=10.0.0.1")],
            "203.0.113.1",
        ),
        (
            "10.0.0.1",
            [("forwarded", 'for=203.0.113.1;host="a,b;c"')],
            "203.0.113.1",
        ),
        # Forwarded is preferred over X-Forwarded-For.
        (
            "10.0.0.1",
            [
                ("x-forwarded-for", "198.51.100.99"),
                ("forwarded", "for=203.0.113.1"),
            ],
            "203.0.113.1",
        ),
    ],
)
def test_client_address(
    peer: str, headers: list[tuple[str, str]], expected: str
) -> None:
    assert client_address(peer, headers, is_trusted) == ip_address(expected)


@pytest.mark.parametrize(
    ("peer", "headers", "reason"),
    [
        ("not-an-ip", [], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "")], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.1,")], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "unknown")], "unknown_hop"),
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.01")], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "203.0.113.1:99999x")], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "[203.0.113.1]")], "invalid_address"),
        ("10.0.0.1", [("x-forwarded-for", "[2001:db8::1")], "invalid_address"),
        ("10.0.0.1", [("forwarded", "for=unknown")], "unknown_hop"),
        ("10.0.0.1", [("forwarded", "for=_hidden")], "unknown_hop"),
        ("10.0.0.1", [("forwarded", "for=2001:db8::1")], "invalid_address"),
        ("10.0.0.1", [("forwarded", 'for="203.0.113.1')], "invalid_forwarded"),
        ("10.0.0.1", [("forwarded", "proto=https")], "invalid_forwarded"),
        (
            "10.0.0.1",
            [("forwarded", "for=203.0.113.1;for=198.51.100.1")],
            "invalid_forwarded",
        ),
        ("10.0.0.1", [("forwarded", "for")], "invalid_forwarded"),
        # Any unreadable hop denies, even one left of the client address.
        (
            "10.0.0.1",
            [("forwarded", "for=unknown, for=203.0.113.1")],
            "unknown_hop",
        ),
        # The hop next to the proxy is unreadable: deny, never skip it.
        (
            "10.0.0.1",
            [("x-forwarded-for", "203.0.113.1, bogus")],
            "invalid_address",
        ),
    ],
)
def test_client_address_denies(
    peer: str, headers: list[tuple[str, str]], reason: str
) -> None:
    with pytest.raises(AddressError) as caught:
        client_address(peer, headers, is_trusted)
    assert caught.value.reason == reason


def test_parse_x_forwarded_for_order() -> None:
    chain = parse_x_forwarded_for(["192.0.2.1, 192.0.2.2", "192.0.2.3"])
    assert chain == [ip_address(f"192.0.2.{n}") for n in (1, 2, 3)]


def test_parse_forwarded_escaped_quotes() -> None:
    chain = parse_forwarded(['for="192.0.2.1";ext="a\\"b,c"'])
    assert chain == [ip_address("192.0.2.1")]
