"""PROXY protocol v1 and v2: complete, partial and hostile headers."""

import socket
import struct

import pytest

from hookbouncer.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    parse_proxy_header,
)


def v2_header(
    command: int = 0x1,
    family: int = 0x11,
    address: bytes = b"",
    tlvs: bytes = b"",
    version: int = 0x2,
) -> bytes:
    body = address + tlvs
    return (
        V2_SIGNATURE
        + bytes([version << 4 | command, family])
        + struct.pack(">H", len(body))
        + body
    )


def v4_block(source: str, destination: str, sport: int, dport: int) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET, source)
        + socket.inet_pton(socket.AF_INET, destination)
        + struct.pack(">HH", sport, dport)
    )


def v6_block(source: str, destination: str, sport: int, dport: int) -> bytes:
    return (
        socket.inet_pton(socket.AF_INET6, source)
        + socket.inet_pton(socket.AF_INET6, destination)
        + struct.pack(">HH", sport, dport)
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
            ProxyHeader(1, "PROXY", "192.0.2.1", 56324, "198.51.100.2", 443, 45),
        ),
        (
            b"PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\nGET /",
            ProxyHeader(1, "PROXY", "2001:db8::1", 0, "2001:db8::2", 65535, 44),
        ),
        (
            b"PROXY UNKNOWN\r\n",
            ProxyHeader(1, "PROXY", None, None, None, None, 15),
        ),
        (
            b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n",
            ProxyHeader(1, "PROXY", None, None, None, None, 35),
        ),
    ],
)
def test_parse_v1(data: bytes, expected: ProxyHeader) -> None:
    assert parse_proxy_header(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXY\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 extra\r\n",
        b"PROXY TCP4  192.0.2.1 198.51.100.2 56324 443\r\n",
        b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
        b"PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n",
        b"PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\rX",
        b"PROXY TCP4 \xff.0.2.1 198.51.100.2 1 2\r\n",
        b"proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n",
        b"PROXY " + b"A" * 200,
    ],
)
def test_parse_v1_invalid(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError) as caught:
        parse_proxy_header(data)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"P",
        b"PROX",
        b"PROXY ",
        b"PROXY TCP4 192.0.2.1",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r",
        V2_SIGNATURE[:5],
        V2_SIGNATURE,
        V2_SIGNATURE + b"\x21",
        V2_SIGNATURE + b"\x21\x11\x00",
        v2_header(address=v4_block("192.0.2.1", "198.51.100.2", 1, 2))[:-1],
    ],
)
def test_parse_needs_more(data: bytes) -> None:
    assert parse_proxy_header(data) is None


def test_parse_v2_ipv4() -> None:
    data = v2_header(address=v4_block("192.0.2.1", "198.51.100.2", 56324, 443))
    header = parse_proxy_header(data + b"GET / HTTP/1.1")
    assert header == ProxyHeader(
        2, "PROXY", "192.0.2.1", 56324, "198.51.100.2", 443, 28
    )


def test_parse_v2_ipv6_with_tlvs() -> None:
    tlvs = b"\x01\x00\x02h2" + b"\x04\x00\x03abc"
    data = v2_header(
        family=0x21,
        address=v6_block("2001:db8::1", "2001:db8::2", 1, 2),
        tlvs=tlvs,
    )
    header = parse_proxy_header(data)
    assert header is not None
    assert header.source == "2001:db8::1"
    assert header.length == len(data)


def test_parse_v2_local_ignores_address() -> None:
    data = v2_header(command=0x0, address=v4_block("192.0.2.1", "198.51.100.2", 1, 2))
    header = parse_proxy_header(data)
    assert header == ProxyHeader(2, "LOCAL", None, None, None, None, len(data))


def test_parse_v2_unspec_family() -> None:
    data = v2_header(family=0x00)
    header = parse_proxy_header(data)
    assert header == ProxyHeader(2, "PROXY", None, None, None, None, 16)


def test_parse_v2_unix_family_has_no_source() -> None:
    data = v2_header(family=0x31, address=b"\x00" * 216)
    header = parse_proxy_header(data)
    assert header is not None
    assert header.source is None


@pytest.mark.parametrize(
    "data",
    [
        b"\r\n\r\n\x00\r\nQUIX\n" + b"\x21\x11\x00\x0c" + b"\x00" * 12,
        v2_header(version=0x1),
        v2_header(version=0x3),
        v2_header(command=0x2),
        v2_header(family=0x41),
        v2_header(family=0x13),
        v2_header(family=0x11, address=b"\x00" * 11),
        v2_header(family=0x21, address=b"\x00" * 12),
        V2_SIGNATURE + b"\x21\x11\xff\xff",
        V2_SIGNATURE + b"\x11",
        b"\x00\x01",
    ],
)
def test_parse_v2_invalid(data: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data)


def test_parse_v2_length_bounded() -> None:
    data = v2_header(
        address=v4_block("192.0.2.1", "198.51.100.2", 1, 2), tlvs=b"x" * 200
    )
    with pytest.raises(ProxyProtocolError):
        parse_proxy_header(data, max_v2_bytes=64)


def test_parse_incremental_byte_by_byte() -> None:
    for data in (
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        v2_header(address=v4_block("192.0.2.1", "198.51.100.2", 1, 2)),
    ):
        for end in range(len(data)):
            assert parse_proxy_header(data[:end]) is None
        header = parse_proxy_header(data)
        assert header is not None
        assert header.source == "192.0.2.1"
