"""Time parsing and validating a 200,000-entry feed against baselines.

Run:  .venv/bin/python bench/feeds_parse.py [--entries 200000] [--repeat 5]

Each case runs `--repeat` times in this process and reports the median
wall time (time.perf_counter). Ratios compare with the baselines measured
in the same run, so they hold across machines better than the seconds:

- json.loads alone: the floor for any JSON feed.
- naive loop: json.loads plus ipaddress.ip_network(entry) per entry, the
  usual few-line implementation, without the checks hookbouncer adds
  (leading zeros, prefix form, minimum prefix, unmapping, deduplication).

The last case builds the TrustSnapshot from the parsed lists, which every
accepted update also pays before it is swapped in.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet
from hookbouncer.feeds.parse import parse_ranges, parse_thumbprints
from hookbouncer.feeds.store import StoredFeed
from hookbouncer.feeds.validate import parse_networks
from hookbouncer.trust import TrustSnapshot


def range_entries(count: int) -> list[str]:
    """Return distinct ranges: three quarters IPv4 /32 and /24, a quarter IPv6."""
    entries: list[str] = []
    for index in range(count):
        if index % 4 == 3:
            entries.append(f"2001:db8:{index >> 16:x}:{index & 0xFFFF:x}::/64")
        elif index % 4 == 2:
            entries.append(
                str(ipaddress.IPv4Address(0x0B000000 + (index << 8))) + "/24"
            )
        else:
            entries.append(str(ipaddress.IPv4Address(0x0A000000 + index)))
    return entries


def thumbprint_entries(count: int) -> list[str]:
    return [
        hashlib.sha1(index.to_bytes(4, "big"), usedforsecurity=False)
        .hexdigest()
        .upper()
        for index in range(count)
    ]


def measure(function: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ranges = range_entries(args.entries)
    pins = thumbprint_entries(args.entries)
    ranges_body = json.dumps(ranges).encode()
    pins_body = json.dumps(pins).encode()
    stored = StoredFeed(
        feed="ranges",
        generation=1,
        source_url="https://bench.invalid/",
        fetched_at=0.0,
        changed_at=0.0,
        etag=None,
        last_modified=None,
        body_sha256="",
        entries=tuple(ranges),
    ).to_json()

    def naive_ranges() -> list[Any]:
        return [ipaddress.ip_network(entry) for entry in json.loads(ranges_body)]

    def naive_pins() -> list[str]:
        return [entry.lower() for entry in json.loads(pins_body)]

    def disk_load() -> tuple[Any, ...]:
        snapshot = StoredFeed.from_json(stored)
        return parse_networks(snapshot.entries, 16, 32)

    networks = parse_ranges(ranges_body).networks
    thumbprints = parse_thumbprints(pins_body).thumbprints

    def build_snapshot() -> TrustSnapshot:
        return TrustSnapshot(
            allowlist=Allowlist(networks),
            pins=PinSet(thumbprints),
            ranges_loaded=True,
            pins_loaded=True,
        )

    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("ranges: json.loads alone", lambda: json.loads(ranges_body), ""),
        ("ranges: naive ip_network loop", naive_ranges, ""),
        ("ranges: parse_ranges", lambda: parse_ranges(ranges_body), "ranges"),
        ("ranges: load snapshot file", disk_load, "ranges"),
        ("pins: json.loads alone", lambda: json.loads(pins_body), ""),
        ("pins: naive lower() loop", naive_pins, ""),
        ("pins: parse_thumbprints", lambda: parse_thumbprints(pins_body), "pins"),
        ("snapshot: Allowlist + PinSet", build_snapshot, ""),
    ]
    results: dict[str, float] = {}
    print(
        f"{args.entries} entries, median of {args.repeat}; Python"
        f" {platform.python_version()} on {platform.machine()}"
    )
    print(f"ranges body {len(ranges_body)} bytes, pins body {len(pins_body)} bytes")
    print(f"{'case':34} {'seconds':>9} {'vs json':>9} {'vs naive':>9}")
    for name, function, group in cases:
        seconds = measure(function, args.repeat)
        results[name] = seconds
        prefix = name.split(":")[0]
        json_time = results.get(f"{prefix}: json.loads alone")
        naive_key = (
            "ranges: naive ip_network loop"
            if prefix == "ranges"
            else "pins: naive lower() loop"
        )
        naive_time = results.get(naive_key)
        vs_json = f"{seconds / json_time:8.1f}x" if json_time and group else ""
        vs_naive = f"{seconds / naive_time:8.2f}x" if naive_time and group else ""
        print(f"{name:34} {seconds:9.3f} {vs_json:>9} {vs_naive:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
