"""Strict validation of one feed entry: a network or a thumbprint.

Each function takes one untrusted string and either returns the normalised
value or raises `ValueError` with a message that names the entry and the
rule it breaks. Nothing here is lenient about the value itself: a network
with host bits set, a prefix in netmask form, a leading zero or a range
wider than the configured minimum prefix is an error, never a guess,
because a widened range lets strangers in. Validation never does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

IPNetwork = IPv4Network | IPv6Network

# Longer entries are rejected before parsing. The longest valid text is a
# full IPv6 address with an embedded IPv4 part and a prefix, 49 characters.
MAX_ENTRY_LENGTH = 64

# The prefix must be plain decimal digits without a leading zero, so that
# netmask forms ("/255.0.0.0") and "/08" are rejected.
_PREFIX = re.compile(r"0|[1-9][0-9]{0,2}")
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
    if not isinstance(text, str):
        raise ValueError(f"entry {text!r} is not a string")
    entry = text.strip()
    if not entry:
        raise ValueError("entry is empty")
    if len(entry) > MAX_ENTRY_LENGTH or not entry.isascii():
        raise ValueError(f"entry {_short(entry)!r} is not an IP address or CIDR")
    address_text, slash, prefix_text = entry.partition("/")
    if not _ADDRESS_CHARS.fullmatch(address_text):
        raise ValueError(f"entry {entry!r} is not an IP address or CIDR")
    if slash and not _PREFIX.fullmatch(prefix_text):
        raise ValueError(
            f"entry {entry!r} has an invalid prefix length: write it as"
            " decimal digits without a leading zero, such as /24"
        )
    try:
        address = ip_address(address_text)
    except ValueError:
        raise ValueError(
            f"entry {entry!r} is not an IP address or CIDR"
            " (IPv4 octets must not have leading zeros)"
        ) from None
    prefix = int(prefix_text) if slash else address.max_prefixlen
    if prefix > address.max_prefixlen:
        raise ValueError(
            f"entry {entry!r} has prefix /{prefix}, longer than"
            f" /{address.max_prefixlen}"
        )
    if prefix == 0:
        raise ValueError(f"entry {entry!r} covers every address (/0)")
    try:
        network = ip_network((address, prefix), strict=True)
    except ValueError:
        base = ip_network((address, prefix), strict=False)
        raise ValueError(
            f"entry {entry!r} has host bits set: write the network"
            f" address {base} if that range is meant"
        ) from None
    network = _unmap(network, entry)
    minimum = min_v4 if network.version == 4 else min_v6
    if network.prefixlen < minimum:
        raise ValueError(
            f"entry {entry!r} is wider than the allowed minimum prefix"
            f" /{minimum} for IPv{network.version}"
        )
    first = network.network_address
    if first.is_unspecified or first.is_multicast:
        raise ValueError(
            f"entry {entry!r} is the unspecified or a multicast range,"
            " which never sends webhooks"
        )
    return network


def _unmap(network: IPNetwork, entry: str) -> IPNetwork:
    """Rewrite an IPv4-mapped IPv6 range as the IPv4 range it covers."""
    if not isinstance(network, IPv6Network):
        return network
    mapped = network.network_address.ipv4_mapped
    if mapped is None:
        return network
    if network.prefixlen < 96:
        raise ValueError(
            f"entry {entry!r} reaches outside the IPv4-mapped range"
            " ::ffff:0:0/96; write the IPv4 range instead"
        )
    return IPv4Network((mapped, network.prefixlen - 96))


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
