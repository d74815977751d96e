"""Strict validation of one feed entry: a network or a thumbprint.

Each function takes one untrusted string and either returns the normalised
value or raises `ValueError` with a message that names the entry and the
rule it breaks. Nothing here is lenient about the value itself. A network
with host bits set, a prefix in netmask form, a leading zero or a range
wider than the configured minimum prefix is an error, never a guess,
because a widened range lets strangers in. Validation does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Address, IPv6Network

IPNetwork = IPv4Network | IPv6Network

# Longer entries are rejected before parsing. The longest valid text is a
# full IPv6 address with an embedded IPv4 part and a prefix, 49 characters.
MAX_ENTRY_LENGTH = 64

# The prefix must be plain decimal digits without a leading zero, so that
# netmask forms ("/255.0.0.0") and "/08" are rejected.
_PREFIX = re.compile(r"0|[1-9][0-9]{0,2}")
# A dotted quad whose octets are 0-255 without leading zeros.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}")
_MAPPED_TOP = 0xFFFF  # the upper 96 bits of ::ffff:0:0/96
# First byte of multicast addresses: 224.0.0.0/4 and ff00::/8.
_MULTICAST_TOP_BYTES = {32: range(0xE0, 0xF0), 128: range(0xFF, 0x100)}
_ADDRESS_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
_HEX = re.compile(r"[0-9a-f]+")

SHA1_HEX_DIGITS = 40
SHA256_HEX_DIGITS = 64


def parse_network(text: str, min_v4: int = 16, min_v6: int = 32) -> IPNetwork:
    """Parse one CIDR range or single address and check it strictly.

    A single address becomes a /32 or /128 network. An IPv4-mapped IPv6
    range such as ``::ffff:192.0.2.0/120`` is returned as its IPv4 range
    (``192.0.2.0/24``). Raise `ValueError` when the entry is malformed,
    has host bits set, has a prefix of 0 or shorter than `min_v4` or
    `min_v6`, or names the unspecified or a multicast address.
    """
    entry = _clean(text)
    address_text, slash, prefix_text = entry.partition("/")
    if slash and not _PREFIX.fullmatch(prefix_text):
        raise ValueError(
            f"entry {entry!r} has an invalid prefix length: write it as"
            " decimal digits without a leading zero, such as /24"
        )
    value, bits = _address_value(address_text, entry)
    prefix = int(prefix_text) if slash else bits
    if prefix > bits:
        raise ValueError(f"entry {entry!r} has prefix /{prefix}, longer than /{bits}")
    if prefix == 0:
        raise ValueError(f"entry {entry!r} covers every address (/0)")
    host_bits = (1 << (bits - prefix)) - 1
    if value & host_bits:
        base = _network(value & ~host_bits, prefix, bits)
        raise ValueError(
            f"entry {entry!r} has host bits set: write the network"
            f" address {base} if that range is meant"
        )
    if bits == 128 and value >> 32 == _MAPPED_TOP:
        if prefix < 96:
            raise ValueError(
                f"entry {entry!r} reaches outside the IPv4-mapped range"
                " ::ffff:0:0/96; write the IPv4 range instead"
            )
        value, prefix, bits = value & 0xFFFFFFFF, prefix - 96, 32
    minimum = min_v4 if bits == 32 else min_v6
    if prefix < minimum:
        raise ValueError(
            f"entry {entry!r} is wider than the allowed minimum prefix"
            f" /{minimum} for IPv{4 if bits == 32 else 6}"
        )
    multicast = value >> (bits - 8) in _MULTICAST_TOP_BYTES[bits]
    if value == 0 or multicast:
        raise ValueError(
            f"entry {entry!r} is the unspecified or a multicast range,"
            " which never sends webhooks"
        )
    return _network(value, prefix, bits)


def _clean(text: str) -> str:
    if not isinstance(text, str):
        raise ValueError(f"entry {text!r} is not a string")
    entry = text.strip()
    if not entry:
        raise ValueError("entry is empty")
    if len(entry) > MAX_ENTRY_LENGTH or not entry.isascii():
        raise ValueError(f"entry {_short(entry)!r} is not an IP address or CIDR")
    return entry


def _address_value(address_text: str, entry: str) -> tuple[int, int]:
    """Return an address as an integer and its bit width, 32 or 128."""
    match = _IPV4.fullmatch(address_text)
    if match is not None:
        a, b, c, d = (int(octet) for octet in match.groups())
        return (a << 24) | (b << 16) | (c << 8) | d, 32
    if ":" in address_text and _ADDRESS_CHARS.fullmatch(address_text):
        try:
            return int(IPv6Address(address_text)), 128
        except ValueError:
            pass
    raise ValueError(
        f"entry {entry!r} is not an IP address or CIDR"
        " (IPv4 octets must not have leading zeros)"
    )


def _network(value: int, prefix: int, bits: int) -> IPNetwork:
    if bits == 32:
        return IPv4Network((value, prefix))
    return IPv6Network((value, prefix))


def parse_networks(
    entries: Iterable[str], min_v4: int = 16, min_v6: int = 32
) -> tuple[IPNetwork, ...]:
    """Validate every entry and return the networks without duplicates.

    The first invalid entry raises `ValueError` naming its position in
    the list, so one bad entry rejects the whole list.
    """
    seen: dict[IPNetwork, None] = {}
    for index, entry in enumerate(entries):
        try:
            seen[parse_network(entry, min_v4, min_v6)] = None
        except ValueError as error:
            raise ValueError(f"{error} (position {index} in the list)") from None
    return tuple(seen)


def normalize_thumbprint(text: str) -> str:
    """Return a certificate thumbprint as lowercase hex without separators.

    Accept SHA-1 (40 hex digits) or SHA-256 (64 hex digits) in any case,
    with or without colons or spaces between the digits. Raise
    `ValueError` for any other length or character.
    """
    if not isinstance(text, str):
        raise ValueError(f"thumbprint {text!r} is not a string")
    entry = text.strip()
    if len(entry) > 3 * SHA256_HEX_DIGITS or not entry.isascii():
        raise ValueError(f"thumbprint {_short(entry)!r} is not hex SHA-1 or SHA-256")
    digits = entry.replace(":", "").replace(" ", "").lower()
    if not digits:
        raise ValueError("thumbprint is empty")
    if not _HEX.fullmatch(digits):
        raise ValueError(
            f"thumbprint {entry!r} contains characters other than hex"
            " digits, colons and spaces"
        )
    if len(digits) not in (SHA1_HEX_DIGITS, SHA256_HEX_DIGITS):
        raise ValueError(
            f"thumbprint {entry!r} has {len(digits)} hex digits: expected"
            f" {SHA1_HEX_DIGITS} (SHA-1) or {SHA256_HEX_DIGITS} (SHA-256)"
        )
    return digits


def normalize_thumbprints(entries: Iterable[str]) -> tuple[str, ...]:
    """Normalise every thumbprint and return them without duplicates."""
    seen: dict[str, None] = {}
    for index, entry in enumerate(entries):
        try:
            seen[normalize_thumbprint(entry)] = None
        except ValueError as error:
            raise ValueError(f"{error} (position {index} in the list)") from None
    return tuple(seen)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


__all__ = [
    "IPNetwork",
    "normalize_thumbprint",
    "normalize_thumbprints",
    "parse_network",
    "parse_networks",
]
