"""PROXY protocol v1 (text) and v2 (binary) header parser.

A load balancer that speaks the PROXY protocol sends one header before the
client's bytes, naming the original client address. The parser is pure
and incremental: feed it the bytes received so far and it returns None
until the header is complete. Anything that cannot become a valid header
raises `ProxyProtocolError` as early as possible, so a connection that
sends garbage is closed without waiting for more.

Sources: the PROXY protocol specification, haproxy.org/download/2.9/doc/
proxy-protocol.txt (versions 1 and 2).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

from hookbouncer.errors import RequestError

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_PREFIX = b"PROXY "
# The v1 header is at most 107 bytes including CRLF.
V1_MAX_BYTES = 107
# Address block and TLVs; the v2 length field allows 65535, which no
# balancer needs for a TCP client's address and a few TLVs.
DEFAULT_MAX_V2_BYTES = 4096
_V2_FIXED = 16
_V2_ADDRESS_BYTES = {0x1: 12, 0x2: 36, 0x3: 216}
_PORT = re.compile(rb"0|[1-9][0-9]{0,4}")


class ProxyProtocolError(RequestError):
    """The connection did not start with a valid PROXY header (400)."""


@dataclass(frozen=True)
class ProxyHeader:
    """A parsed PROXY header.

    `source` is None for a LOCAL command (a health check from the balancer
    itself) or an unknown or UNIX address family; the caller then uses the
    socket peer. `length` is the number of bytes the header took.
    """

    version: Literal[1, 2]
    command: Literal["PROXY", "LOCAL"]
    source: str | None
    source_port: int | None
    destination: str | None
    destination_port: int | None
    length: int


def parse_proxy_header(
    data: bytes, *, max_v2_bytes: int = DEFAULT_MAX_V2_BYTES
) -> ProxyHeader | None:
    """Parse the PROXY header at the start of `data`.

    Return None when more bytes are needed, the header when complete
    (bytes after `length` belong to the client), or raise
    `ProxyProtocolError`.
    """
    if data[:1] == b"P":
        return _parse_v1(data)
    if data[:1] == b"\r":
        return _parse_v2(data, max_v2_bytes)
    if not data:
        return None
    raise ProxyProtocolError("proxy_header_invalid", "no PROXY signature")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    if not V1_PREFIX.startswith(data[: len(V1_PREFIX)]):
        raise ProxyProtocolError("proxy_header_invalid", "bad v1 signature")
    end = data.find(b"\r\n", 0, V1_MAX_BYTES)
    if end < 0:
        if len(data) >= V1_MAX_BYTES:
            raise ProxyProtocolError("proxy_header_invalid", "v1 header too long")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyProtocolError("proxy_header_invalid", "bad v1 line end")
        return None
    line = data[:end]
    fields = line.split(b" ")
    length = end + 2
    if len(fields) >= 2 and fields[1] == b"UNKNOWN":
        # The rest of an UNKNOWN line is to be ignored by receivers.
        return ProxyHeader(1, "PROXY", None, None, None, None, length)
    if len(fields) != 6 or fields[0] != b"PROXY":
        raise ProxyProtocolError("proxy_header_invalid", "v1 needs 6 fields")
    _, family, source, destination, source_port, destination_port = fields
    if family == b"TCP4":
        kind: type[IPv4Address] | type[IPv6Address] = IPv4Address
    elif family == b"TCP6":
        kind = IPv6Address
    else:
        raise ProxyProtocolError("proxy_header_invalid", "v1 family unknown")
    return ProxyHeader(
        1,
        "PROXY",
        _v1_address(kind, source),
        _v1_port(source_port),
        _v1_address(kind, destination),
        _v1_port(destination_port),
        length,
    )


def _v1_address(kind: type[IPv4Address] | type[IPv6Address], raw: bytes) -> str:
    try:
        text = raw.decode("ascii")
        if "%" in text:
            raise ValueError
        return str(kind(text))
    except ValueError:
        raise ProxyProtocolError("proxy_header_invalid", "v1 address") from None


def _v1_port(raw: bytes) -> int:
    if not _PORT.fullmatch(raw) or int(raw) > 65535:
        raise ProxyProtocolError("proxy_header_invalid", "v1 port")
    return int(raw)


def _parse_v2(data: bytes, max_v2_bytes: int) -> ProxyHeader | None:
    if not V2_SIGNATURE.startswith(data[: len(V2_SIGNATURE)]):
        raise ProxyProtocolError("proxy_header_invalid", "bad v2 signature")
    if len(data) < _V2_FIXED:
        if len(data) > len(V2_SIGNATURE):
            _check_v2_command(data[12])
        return None

    version_command, family_protocol, body_length = struct.unpack_from(">BBH", data, 12)
    command = _check_v2_command(version_command)
    total = _V2_FIXED + body_length
    if total > max_v2_bytes:
        raise ProxyProtocolError("proxy_header_invalid", "v2 header too long")
    family = family_protocol >> 4
    protocol = family_protocol & 0x0F
    if family > 0x3 or protocol > 0x2:
        raise ProxyProtocolError("proxy_header_invalid", "v2 family unknown")
    if body_length < _V2_ADDRESS_BYTES.get(family, 0):
        raise ProxyProtocolError("proxy_header_invalid", "v2 address truncated")
    if len(data) < total:
        return None

    # TLVs after the address block are skipped: nothing here relies on them.
    if command == "LOCAL" or family in (0x0, 0x3) or protocol == 0x0:
        return ProxyHeader(2, command, None, None, None, None, total)
    return _v2_addresses(family, data[_V2_FIXED:total], total)


def _v2_addresses(family: int, block: bytes, total: int) -> ProxyHeader:
    kind: type[IPv4Address] | type[IPv6Address]
    if family == 0x1:
        kind, layout = IPv4Address, ">4s4sHH"
    else:
        kind, layout = IPv6Address, ">16s16sHH"
    source, destination, source_port, destination_port = struct.unpack_from(
        layout, block
    )
    return ProxyHeader(
        2,
        "PROXY",
        str(kind(source)),
        source_port,
        str(kind(destination)),
        destination_port,
        total,
    )


def _check_v2_command(version_command: int) -> Literal["PROXY", "LOCAL"]:
    if version_command >> 4 != 0x2:
        raise ProxyProtocolError("proxy_header_invalid", "v2 version is not 2")
    command = version_command & 0x0F
    if command == 0x0:
        return "LOCAL"
    if command == 0x1:
        return "PROXY"
    raise ProxyProtocolError("proxy_header_invalid", "v2 command unknown")
