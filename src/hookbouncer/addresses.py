"""Client addresses: strict IP parsing and the forwarding-chain walk.

The client address is the socket peer, unless that peer is a configured
trusted proxy. Only then are `X-Forwarded-For` and `Forwarded` read, from
the right, skipping trusted hops, and the first untrusted address wins. A
forwarding header from any other peer is ignored, because any client can
write one.

Every parse failure raises `AddressError`, so the caller denies with a
typed reason instead of guessing an address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv6Address

from hookbouncer.errors import RequestError
from hookbouncer.quoted import split_outside_quotes, unquote

IPAddress = IPv4Address | IPv6Address

# Maximum length of address text: an IPv6 address with an embedded IPv4
# part is at most 45 characters, which leaves room for a zone id.
_MAX_ADDRESS_CHARS = 100

# RFC 7239 obfuscated node names: "_" followed by ALPHA / DIGIT / "." / "_" / "-".
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]+")


class AddressError(RequestError):
    """An address or forwarding header cannot be read; deny the request."""

    status = 403


def parse_address(text: str) -> IPAddress:
    """Parse one IP address strictly and normalise it.

    IPv4-mapped IPv6 (`::ffff:192.0.2.1`) becomes IPv4, an IPv6 zone id
    (`%eth0`) is stripped, and IPv4 octets with leading zeros are rejected
    (they read as octal in some parsers). Raise `AddressError` otherwise.
    """
    if not text or len(text) > _MAX_ADDRESS_CHARS or not text.isascii():
        raise AddressError("invalid_address", "not an IP address")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise AddressError("invalid_address", "not an IP address") from None
    if isinstance(address, IPv6Address):
        if address.scope_id is not None:
            address = IPv6Address(text.partition("%")[0])
        mapped = address.ipv4_mapped
        if mapped is not None:
            return mapped
    return address


def client_address(
    peer: str,
    headers: Sequence[tuple[str, str]],
    is_trusted: Callable[[IPAddress], bool],
) -> IPAddress:
    """Return the client address for a request from `peer`.

    `headers` are (lowercase name, value) pairs in arrival order.
    `Forwarded` is preferred over `X-Forwarded-For` when both are present,
    because it is the standard form.
    """
    address = parse_address(peer)
    if not is_trusted(address):
        return address
    forwarded = [value for name, value in headers if name == "forwarded"]
    if forwarded:
        chain = parse_forwarded(forwarded)
    else:
        chain = parse_x_forwarded_for(
            [value for name, value in headers if name == "x-forwarded-for"]
        )
    return walk_chain(address, chain, is_trusted)


def walk_chain(
    peer: IPAddress,
    chain: Sequence[IPAddress],
    is_trusted: Callable[[IPAddress], bool],
) -> IPAddress:
    """Take the first untrusted hop from the right, else the leftmost hop."""
    for hop in reversed(chain):
        if not is_trusted(hop):
            return hop
    return chain[0] if chain else peer


def parse_x_forwarded_for(lines: Sequence[str]) -> list[IPAddress]:
    """Parse `X-Forwarded-For` lines, concatenated in order, into addresses.

    Elements may carry a port (`192.0.2.1:443`, `[2001:db8::1]:443`). An
    empty element or `unknown` raises `AddressError`.
    """
    chain: list[IPAddress] = []
    for line in lines:
        for element in line.split(","):
            chain.append(_parse_node(element.strip(), allow_bare_v6=True))
    return chain


def parse_forwarded(lines: Sequence[str]) -> list[IPAddress]:
    """Parse RFC 7239 `Forwarded` lines into the `for=` addresses in order.

    Each element must have exactly one `for=`. Obfuscated identifiers and
    `unknown` raise `AddressError`, because the hop cannot be checked.
    """
    chain: list[IPAddress] = []
    for line in lines:
        for element in _split_outside_quotes(line, ","):
            found: list[IPAddress] = []
            for pair in _split_outside_quotes(element, ";"):
                name, equals, value = pair.strip().partition("=")
                if not equals or not name:
                    raise AddressError("invalid_forwarded", "parameter without =")
                if name.strip().lower() == "for":
                    found.append(_parse_node(_unquote(value.strip()), False))
            if len(found) != 1:
                raise AddressError("invalid_forwarded", "element without one for=")
            chain.append(found[0])
    return chain


def _parse_node(node: str, allow_bare_v6: bool) -> IPAddress:
    """Parse a node: `IPv4[:port]`, `[IPv6][:port]` or (XFF only) bare IPv6."""
    lowered = node.lower()
    if lowered == "unknown" or _OBFUSCATED.fullmatch(node):
        raise AddressError("unknown_hop", "hop is unknown or obfuscated")
    if node.startswith("["):
        host, bracket, rest = node[1:].partition("]")
        if not bracket or (rest and not _valid_port(rest)):
            raise AddressError("invalid_address", "malformed bracketed address")
        address = parse_address(host)
        if not isinstance(address, IPv6Address) and ":" not in host:
            raise AddressError("invalid_address", "IPv4 inside brackets")
        return address
    if node.count(":") == 1:
        host, _, port = node.partition(":")
        if not _valid_port(":" + port):
            raise AddressError("invalid_address", "malformed port")
        address = parse_address(host)
        if not isinstance(address, IPv4Address):
            raise AddressError("invalid_address", "IPv6 without brackets")
        return address
    if ":" in node and not allow_bare_v6:
        raise AddressError("invalid_address", "IPv6 without brackets")
    return parse_address(node)


def _valid_port(text: str) -> bool:
    return text.startswith(":") and _PORT.fullmatch(text[1:]) is not None


def _unquote(value: str) -> str:
    try:
        return unquote(value)
    except ValueError as error:
        raise AddressError("invalid_forwarded", str(error)) from None


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    try:
        return split_outside_quotes(text, separator)
    except ValueError as error:
        raise AddressError("invalid_forwarded", str(error)) from None
