"""Allowlist membership, merging and strict string lookups."""

import random
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

import pytest

from hookbouncer.addresses import AddressError
from hookbouncer.allowlist import Allowlist

NETWORKS = [
    ip_network("192.0.2.0/24"),
    ip_network("198.51.100.128/25"),
    ip_network("203.0.113.7/32"),
    ip_network("2001:db8:1::/48"),
    ip_network("2001:db8:2::1/128"),
]


@pytest.fixture
def allowlist() -> Allowlist:
    return Allowlist(NETWORKS)


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        ("192.0.2.0", True),
        ("192.0.2.255", True),
        ("192.0.1.255", False),
        ("192.0.3.0", False),
        ("198.51.100.127", False),
        ("198.51.100.128", True),
        ("198.51.100.255", True),
        ("203.0.113.7", True),
        ("203.0.113.6", False),
        ("203.0.113.8", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::ffff:192.0.2.10", True),
        ("::FFFF:192.0.2.10", True),
        ("::ffff:c000:20a", True),
        ("::ffff:203.0.113.6", False),
        ("::192.0.2.10", False),
        ("2001:db8:1::", True),
        ("2001:db8:1:ffff:ffff:ffff:ffff:ffff", True),
        ("2001:db8:0:ffff:ffff:ffff:ffff:ffff", False),
        ("2001:db8:2::1", True),
        ("2001:db8:2::2", False),
        ("2001:DB8:1::5", True),
        ("2001:db8:1::5%eth0", True),
        ("fe80::1%eth0", False),
        ("::", False),
        ("c000:201::", False),
    ],
)
def test_allowlist_membership(allowlist: Allowlist, address: str, inside: bool) -> None:
    assert (address in allowlist) is inside
    assert (ip_address(address.partition("%")[0]) in allowlist) is inside


@pytest.mark.parametrize(
    "text",
    [
        "",
        "192.0.2.01",
        "192.0.2",
        "192.0.2.1 ",
        "::ffff:192.0.2.01",
        "x",
        "1.2.3.4\x00",
    ],
)
def test_allowlist_rejects_invalid_text(allowlist: Allowlist, text: str) -> None:
    with pytest.raises(AddressError):
        text in allowlist  # noqa: B015


def test_empty_allowlist_contains_nothing() -> None:
    empty = Allowlist([])
    assert "192.0.2.1" not in empty
    assert "2001:db8::1" not in empty
    assert len(empty) == 0
    assert not empty


def test_allowlist_merges_overlaps() -> None:
    networks = [
        ip_network("10.0.0.0/24"),
        ip_network("10.0.1.0/24"),
        ip_network("10.0.0.128/25"),
        ip_network("10.0.3.0/24"),
    ]
    allowlist = Allowlist(networks)
    assert len(allowlist) == 4
    assert allowlist.interval_count == 2
    assert "10.0.1.255" in allowlist
    assert "10.0.2.0" not in allowlist
    assert "10.0.3.0" in allowlist


def test_allowlist_whole_ipv4_space() -> None:
    allowlist = Allowlist([ip_network("0.0.0.0/0")])
    assert "0.0.0.0" in allowlist
    assert "255.255.255.255" in allowlist
    assert "::ffff:1.2.3.4" in allowlist
    assert "2001:db8::1" not in allowlist


def test_allowlist_whole_ipv6_space() -> None:
    allowlist = Allowlist([ip_network("::/0")])
    assert "2001:db8::1" in allowlist
    assert "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" in allowlist
    assert "192.0.2.1" not in allowlist


def test_allowlist_mapped_network_matches_ipv4() -> None:
    allowlist = Allowlist([IPv6Network("::ffff:192.0.2.0/120")])
    assert "192.0.2.77" in allowlist
    assert "::ffff:192.0.2.77" in allowlist
    assert "192.0.3.1" not in allowlist


def test_allowlist_host_bits_rejected_by_network() -> None:
    # Host bits are rejected where networks are built, so they never reach here.
    with pytest.raises(ValueError):
        IPv4Network("192.0.2.1/24")


def test_allowlist_other_types_not_contained(allowlist: Allowlist) -> None:
    assert 3221225985 not in allowlist
    assert None not in allowlist


@pytest.mark.parametrize("version", [4, 6])
def test_large_allowlist_matches_pytricia(version: int) -> None:
    # Large lists take the indexed path, which small tables never reach.
    pytricia = pytest.importorskip("pytricia")
    rng = random.Random(version)
    bits = 32 if version == 4 else 128
    trie = pytricia.PyTricia(bits)
    networks = []
    for _ in range(5000):
        prefix = rng.randint(16, bits)
        network = ip_network((rng.getrandbits(bits), prefix), strict=False)
        networks.append(network)
        trie[str(network)] = True
    allowlist = Allowlist(networks)
    assert allowlist.indexed is (version == 4)
    probes = [ip_address(rng.getrandbits(bits)) for _ in range(3000)]
    for network in networks[:1000]:
        probes.append(network.network_address)
        probes.append(network.broadcast_address)
        if int(network.network_address) > 0:
            probes.append(network.network_address - 1)
        if int(network.broadcast_address) < 2**bits - 1:
            probes.append(network.broadcast_address + 1)
    for probe in probes:
        assert (str(probe) in allowlist) == (str(probe) in trie), probe
        assert (probe in allowlist) == (str(probe) in trie), probe


def test_large_allowlist_edges_of_space() -> None:
    networks = [ip_network("0.0.0.0/32"), ip_network("255.255.255.255/32")]
    networks += [ip_network((i << 13, 20)) for i in range(1, 4000)]
    allowlist = Allowlist(networks)
    assert allowlist.indexed
    assert "0.0.0.0" in allowlist
    assert "0.0.0.1" not in allowlist
    assert "255.255.255.255" in allowlist
    assert "::ffff:255.255.255.255" in allowlist
    assert "255.255.255.254" not in allowlist
    assert "0.0.32.0" in allowlist
    assert ip_address("0.0.47.255") in allowlist
    assert "0.0.48.0" not in allowlist
