"""An immutable set of IP prefixes with fast membership tests.

The networks are merged, per family, into sorted disjoint intervals stored
as one flat list of boundaries `[start0, end0 + 1, start1, end1 + 1, ...]`.
An address is inside exactly when `bisect_right` puts it at an odd index,
so a lookup is one C-level binary search.

Two layouts keep lookups fast at every size. Short lists keep the
boundaries as big-endian byte strings, which sort like the numbers and
compare directly with `inet_pton` output. Long IPv4 lists (feeds with
thousands of prefixes) keep them as integers in an `array`, with a second
array indexing them by the top 16 address bits. The search then covers
only the few boundaries in one /16, in contiguous memory, so a lookup
costs few cache misses however long the list is.

The set is built once per feed version and never changes, so the feeds
code can swap a whole `Allowlist` in one assignment. An empty allowlist
contains nothing. Whether a route checks the source address at all is the
policy's decision, never this module's.
"""

from __future__ import annotations

import socket
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hookbouncer.addresses import parse_address

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # the first 96 bits of ::ffff:0:0/96
_MAPPED_NETWORK = IPv6Network("::ffff:0:0/96")
_bisect = bisect_right
_pton = socket.inet_pton
_from_bytes = int.from_bytes
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
# From this many IPv4 boundaries on, the indexed layout is faster.
_INDEX_THRESHOLD = 4096


class Allowlist:
    """Immutable set of IPv4 and IPv6 networks; test with `address in allowlist`."""

    __slots__ = ("_count", "_v4", "_v4_indexed", "_v6")

    def __init__(self, networks: Iterable[IPv4Network | IPv6Network]) -> None:
        v4: list[tuple[int, int]] = []
        v6: list[tuple[int, int]] = []
        count = 0
        for network in networks:
            count += 1
            if isinstance(network, IPv6Network) and network.subnet_of(_MAPPED_NETWORK):
                # Peers arrive unmapped, so a mapped range must match as IPv4.
                network = IPv4Network(
                    (
                        int(network.network_address) & 0xFFFFFFFF,
                        network.prefixlen - 96,
                    )
                )
            start = int(network.network_address)
            end = int(network.broadcast_address)
            (v4 if network.version == 4 else v6).append((start, end))
        self._count = count
        self._v6 = [_pack(value, 16) for value in _boundaries(v6)]
        numbers = _boundaries(v4)
        # Exactly one IPv4 layout is filled: bytes for short lists, or
        # integers with a /16 index for long ones.
        self._v4: list[bytes] = []
        self._v4_indexed: tuple[array[int], array[int]] | None = None
        if len(numbers) < _INDEX_THRESHOLD:
            self._v4 = [_pack(value, 4) for value in numbers]
        else:
            self._v4_indexed = (array("Q", numbers), _slash16_index(numbers))

    def __len__(self) -> int:
        """Return the number of networks given, before merging."""
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @property
    def interval_count(self) -> int:
        """Number of disjoint intervals left after merging."""
        v4 = self._v4 if self._v4_indexed is None else self._v4_indexed[0]
        return (len(v4) + len(self._v6)) // 2

    @property
    def indexed(self) -> bool:
        """Whether IPv4 lookups use the /16 index."""
        return self._v4_indexed is not None

    def __contains__(self, address: object) -> bool:
        """Test an address object or string; an invalid string raises.

        A string that is not a strict IP address raises `AddressError`,
        never returns False silently, so callers can record the reason.
        """
        if type(address) is str:
            # Fast path: inet_pton accepts a subset of what the strict
            # parser accepts (no zone ids, no leading zeros). Whatever it
            # rejects goes to the strict parser, which raises or normalises.
            # The IPv4 lookups are inlined because this is the hot path.
            try:
                if ":" not in address:
                    packed = _pton(_AF_INET, address)
                    indexed = self._v4_indexed
                    if indexed is None:
                        return _bisect(self._v4, packed) & 1 == 1
                    numbers, index = indexed
                    value = _from_bytes(packed, "big")
                    key = value >> 16
                    return _bisect(numbers, value, index[key], index[key + 1]) & 1 == 1
                packed = _pton(_AF_INET6, address)
            except (OSError, ValueError):
                return parse_address(address) in self
            return self._contains_packed(packed)
        if isinstance(address, IPv4Address | IPv6Address):
            return self._contains_packed(address.packed)
        if isinstance(address, str):
            return str(address) in self
        return False

    def _contains_packed(self, packed: bytes) -> bool:
        if len(packed) == 16:
            if packed[:12] != _MAPPED_PREFIX:
                return _bisect(self._v6, packed) & 1 == 1
            packed = packed[12:]
        indexed = self._v4_indexed
        if indexed is None:
            return _bisect(self._v4, packed) & 1 == 1
        numbers, index = indexed
        value = _from_bytes(packed, "big")
        key = value >> 16
        return _bisect(numbers, value, index[key], index[key + 1]) & 1 == 1

    def __repr__(self) -> str:
        return f"<Allowlist {self._count} networks, {self.interval_count} intervals>"


def _boundaries(intervals: list[tuple[int, int]]) -> list[int]:
    """Merge closed intervals and flatten them into half-open boundaries."""
    intervals.sort()
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    flat: list[int] = []
    for start, end in merged:
        flat.append(start)
        flat.append(end + 1)
    return flat


def _pack(value: int, width: int) -> bytes:
    """Encode a boundary as `width` big-endian bytes, like `inet_pton`.

    The end of the address space (2**(8 * width)) needs one more bit. It
    becomes `width` 0xff bytes plus a zero byte, which sorts above every
    `width`-byte address because it is longer and starts with all of them.
    """
    if value >> (8 * width):
        return b"\xff" * width + b"\0"
    return value.to_bytes(width, "big")


def _slash16_index(numbers: list[int]) -> array[int]:
    """Map each /16 prefix k to the boundaries that can contain its addresses.

    `index[k]` counts the boundaries below `k << 16`, so an address in /16
    k lies between boundaries `index[k]` and `index[k + 1]`.
    """
    index = array("Q", (bisect_left(numbers, key << 16) for key in range(65536)))
    index.append(len(numbers))
    return index
