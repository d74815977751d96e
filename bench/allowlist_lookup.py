"""Allowlist lookups per second against pytricia and a naive ipaddress loop.

Usage: .venv/bin/python bench/allowlist_lookup.py [--sizes 100,10000,200000]

For each size, random IPv4 prefixes (/16 to /32, fixed seed) go into a
hookbouncer `Allowlist`, a `pytricia.PyTricia(32)` and a plain list of
`IPv4Network`. The same address strings (about half inside) are looked
up in each, in the same process, and the best of several rounds is
reported. Only `time.perf_counter` is used for timing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import ipaddress
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence

import pytricia

from hookbouncer.allowlist import Allowlist

SEED = 20261204


def random_networks(count: int, rng: random.Random) -> list[ipaddress.IPv4Network]:
    networks = []
    for _ in range(count):
        prefix = rng.randint(16, 32)
        address = rng.getrandbits(32)
        networks.append(ipaddress.IPv4Network((address, prefix), strict=False))
    return networks


def probe_addresses(
    networks: Sequence[ipaddress.IPv4Network], count: int, rng: random.Random
) -> list[str]:
    """Half the probes fall inside a listed network, half are random."""
    probes = []
    for index in range(count):
        if index % 2 == 0:
            network = networks[rng.randrange(len(networks))]
            offset = rng.randrange(network.num_addresses)
            probes.append(str(network.network_address + offset))
        else:
            probes.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    return probes


def lookups_per_second(
    lookup: Callable[[str], bool], probes: Sequence[str], rounds: int
) -> tuple[float, int]:
    best = float("inf")
    hits = 0
    for _ in range(rounds):
        start = time.perf_counter()
        hits = 0
        for probe in probes:
            if lookup(probe):
                hits += 1
        best = min(best, time.perf_counter() - start)
    return len(probes) / best, hits


def naive_lookup(networks: Sequence[ipaddress.IPv4Network]) -> Callable[[str], bool]:
    def lookup(text: str) -> bool:
        address = ipaddress.ip_address(text)
        return any(address in network for network in networks)

    return lookup


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        default="100,10000,200000",
        help="comma-separated prefix counts (default: 100,10000,200000)",
    )
    parser.add_argument("--probes", type=int, default=100_000, help="lookups per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; best is kept")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]

    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"pytricia {importlib.metadata.version('pytricia')}, seed {SEED}")
    header = (
        f"{'prefixes':>9} {'hookbouncer/s':>14} {'pytricia/s':>12}"
        f" {'naive/s':>10} {'vs pytricia':>12} {'vs naive':>10}"
    )
    print(header)
    for size in sizes:
        rng = random.Random(SEED + size)
        networks = random_networks(size, rng)
        probes = probe_addresses(networks, args.probes, rng)

        allowlist = Allowlist(networks)
        trie = pytricia.PyTricia(32)
        for network in networks:
            trie[str(network)] = True

        ours, our_hits = lookups_per_second(allowlist.__contains__, probes, args.rounds)
        theirs, their_hits = lookups_per_second(trie.__contains__, probes, args.rounds)
        if our_hits != their_hits:
            print(f"mismatch at {size}: {our_hits} != {their_hits}", file=sys.stderr)
            return 1
        # The naive loop is O(n) per lookup; a few hundred probes suffice.
        naive_probes = probes[: max(20, min(len(probes), 2_000_000 // size))]
        naive, _ = lookups_per_second(naive_lookup(networks), naive_probes, 1)
        print(
            f"{size:>9} {ours:>14,.0f} {theirs:>12,.0f} {naive:>10,.0f}"
            f" {ours / theirs:>11.2f}x {ours / naive:>9.0f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
