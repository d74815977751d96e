"""An immutable set of IP prefixes with fast membership tests.

The networks are merged, per family, into sorted disjoint intervals stored
as one flat list of boundaries `[start0, end0 + 1, start1, end1 + 1, ...]`.
An address is inside exactly when `bisect_right` puts it at an odd index,
so a lookup is one C-level binary search, O(log n) in the number of merged
intervals. The set is built once per feed version and never changes, so
the feeds code can swap a whole `Allowlist` in one assignment.

An empty allowlist contains nothing. Whether a route checks the source
address at all is the policy's decision, never this module's.
"""

from __future__ import annotations

import socket
from bisect import bisect_right
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from hookbouncer.addresses import parse_address

_MAPPED_PREFIX = 0xFFFF  # the upper 96 bits of ::ffff:0:0/96
_MAPPED_NETWORK = IPv6Network("::ffff:0:0/96")


class Allowlist:
    """Immutable set of IPv4 and IPv6 networks; test with `address in allowlist`."""

    __slots__ = ("_count", "_v4", "_v6")

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
        self._v4 = _boundaries(v4)
        self._v6 = _boundaries(v6)

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
            return self._contains_text(address)
        if isinstance(address, IPv4Address):
            return bisect_right(self._v4, int(address)) & 1 == 1
        if isinstance(address, IPv6Address):
            value = int(address)
            if value >> 32 == _MAPPED_PREFIX:
                return bisect_right(self._v4, value & 0xFFFFFFFF) & 1 == 1
            return bisect_right(self._v6, value) & 1 == 1
        if isinstance(address, str):
            return self._contains_text(str(address))
        return False

    def _contains_text(self, text: str) -> bool:
        # The fast path uses inet_pton, which accepts a subset of what the
        # strict parser accepts (no zone ids, no leading zeros); everything
        # it rejects goes to the strict parser, which raises or normalises.
        try:
            if ":" in text:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
                if value >> 32 == _MAPPED_PREFIX:
                    return bisect_right(self._v4, value & 0xFFFFFFFF) & 1 == 1
                return bisect_right(self._v6, value) & 1 == 1
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
            return bisect_right(self._v4, value) & 1 == 1
        except (OSError, ValueError):
            return parse_address(text) in self

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
