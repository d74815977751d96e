"""An immutable set of IP prefixes with fast membership tests.

The networks are merged, per family, into sorted disjoint intervals stored
as one flat list of boundaries `[start0, end0 + 1, start1, end1 + 1, ...]`,
each a big-endian byte string like `inet_pton` returns. An address is
inside exactly when `bisect_right` puts it at an odd index, so a lookup is
one C-level binary search with no conversion to int. Lists with many
intervals also get an index by the first two address bytes, so the search
only covers the boundaries that share them. The set is built once per
feed version and never changes, so the feeds code can swap a whole
`Allowlist` in one assignment.

An empty allowlist contains nothing. Whether a route checks the source
address at all is the policy's decision, never this module's.
"""

from __future__ import annotations

import socket
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hookbouncer.addresses import parse_address

_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # the first 96 bits of ::ffff:0:0/96
_MAPPED_NETWORK = IPv6Network("::ffff:0:0/96")
_bisect = bisect_right
_pton = socket.inet_pton
_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
# Below this many boundaries a plain binary search is as fast as the index.
_INDEX_THRESHOLD = 4096


class Allowlist:
    """Immutable set of IPv4 and IPv6 networks; test with `address in allowlist`."""

    __slots__ = ("_count", "_v4", "_v4_index", "_v6", "_v6_index")

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
        self._v4 = _boundaries(v4, 4)
        self._v6 = _boundaries(v6, 16)
        self._v4_index = _prefix_index(self._v4)
        self._v6_index = _prefix_index(self._v6)

    def __len__(self) -> int:
        """Return the number of networks given, before merging."""
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    @property
    def interval_count(self) -> int:
        """Number of disjoint intervals left after merging."""
        return (len(self._v4) + len(self._v6)) // 2

    def __contains__(self, address: object) -> bool:
        """Test an address object or string; an invalid string raises.

        A string that is not a strict IP address raises `AddressError`,
        never returns False silently, so callers can record the reason.
        """
        if type(address) is str:
            # Fast path: inet_pton accepts a subset of what the strict
            # parser accepts (no zone ids, no leading zeros), and its
            # packed bytes sort like the numbers they encode. Whatever it
            # rejects goes to the strict parser, which raises or normalises.
            try:
                if ":" not in address:
                    packed = _pton(_AF_INET, address)
                    index = self._v4_index
                    if index is None:
                        return _bisect(self._v4, packed) & 1 == 1
                    key = packed[0] << 8 | packed[1]
                    return (
                        _bisect(self._v4, packed, index[key], index[key + 1]) & 1 == 1
                    )
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
        if len(packed) == 4:
            boundaries, index = self._v4, self._v4_index
        elif packed[:12] == _MAPPED_PREFIX:
            packed = packed[12:]
            boundaries, index = self._v4, self._v4_index
        else:
            boundaries, index = self._v6, self._v6_index
        if index is None:
            return _bisect(boundaries, packed) & 1 == 1
        key = packed[0] << 8 | packed[1]
        return _bisect(boundaries, packed, index[key], index[key + 1]) & 1 == 1

    def __repr__(self) -> str:
        return f"<Allowlist {self._count} networks, {self.interval_count} intervals>"


def _boundaries(intervals: list[tuple[int, int]], width: int) -> list[bytes]:
    """Merge closed intervals and flatten them into half-open boundaries.

    Boundaries are big-endian byte strings of `width` bytes, so they
    compare like the numbers and like `inet_pton` output. The end of the
    address space, which needs one more bit, becomes `width` 0xff bytes
    plus one zero byte: longer than every address, so above all of them.
    """
    intervals.sort()
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    top = (1 << (8 * width)) - 1
    flat: list[bytes] = []
    for start, end in merged:
        flat.append(start.to_bytes(width, "big"))
        flat.append(
            (end + 1).to_bytes(width, "big") if end < top else b"\xff" * width + b"\0"
        )
    return flat


def _prefix_index(boundaries: list[bytes]) -> list[int] | None:
    """Map each two-byte prefix k to the slice of boundaries that can hold it.

    `index[k]` counts the boundaries below prefix k (a two-byte string
    sorts before every longer one it starts), so an address starting with
    k lies between boundaries `index[k]` and `index[k + 1]`.
    """
    if len(boundaries) < _INDEX_THRESHOLD:
        return None
    index = [bisect_left(boundaries, key.to_bytes(2, "big")) for key in range(65536)]
    index.append(len(boundaries))
    return index
