"""Property and fuzz tests: parsers raise only their typed errors.

Example counts are bounded so the suite stays fast. For a longer fuzz
run set HOOKBOUNCER_FUZZ_EXAMPLES, for example to 20000.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookbouncer.addresses import (
    AddressError,
    client_address,
    parse_address,
    parse_forwarded,
    parse_x_forwarded_for,
)
from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import CertificateError, PinSet, forwarded_certificate
from hookbouncer.config import Config, DeveloperPayloadConfig, Secret, ServerConfig
from hookbouncer.errors import MalformedBody
from hookbouncer.payload import developer_payload, parse_body
from hookbouncer.policy import ConnectionFacts, Verifier
from hookbouncer.proxy_protocol import (
    V1_PREFIX,
    V2_SIGNATURE,
    ProxyProtocolError,
    parse_proxy_header,
)
from hookbouncer.routes import MethodNotAllowed, NotFound, match_route
from hookbouncer.secretmatch import HeaderSecretError, SecretMatcher, header_credential
from hookbouncer.tokens import KeyRing, TokenError
from hookbouncer.trust import TrustSnapshot

from .conftest import NOW

FUZZ = settings(
    max_examples=int(os.environ.get("HOOKBOUNCER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
HEADER_TEXT = st.text(
    alphabet=st.characters(codec="latin-1"), max_size=80
) | st.sampled_from(
    [
        "for=192.0.2.1",
        'for="[2001:db8::1]:80"',
        "for=unknown",
        "for=_x",
        "192.0.2.1, 10.0.0.1",
        "[::1]:1",
        '"',
        "for=\\",
        ";,;,",
    ]
)


# -- addresses --


def address_texts() -> st.SearchStrategy[str]:
    """Address-like text, valid or almost valid."""
    v4 = st.ip_addresses(v=4).map(str)
    v6 = st.ip_addresses(v=6).map(str)
    mapped = st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}")
    upper = v6.map(str.upper)
    zoned = st.tuples(v6, st.text("abcdeth0123", min_size=1, max_size=5)).map(
        lambda pair: f"{pair[0]}%{pair[1]}"
    )
    padded = st.tuples(st.ip_addresses(v=4), st.integers(0, 3)).map(
        lambda pair: ".".join(
            ("0" + part) if i == pair[1] else part
            for i, part in enumerate(str(pair[0]).split("."))
        )
    )
    junk = st.text(alphabet="0123456789abcdefABCDEF:.%[]x ", max_size=45)
    return st.one_of(v4, v6, mapped, upper, zoned, padded, junk, st.text(max_size=40))


@FUZZ
@given(address_texts())
def test_parse_address_only_typed_errors(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError:
        return
    if isinstance(address, ipaddress.IPv6Address):
        assert address.ipv4_mapped is None
        assert address.scope_id is None


NETWORKS = st.lists(
    st.one_of(
        st.tuples(st.ip_addresses(v=4), st.integers(0, 32)).map(
            lambda pair: IPv4Network((int(pair[0]), pair[1]), strict=False)
        ),
        st.tuples(st.ip_addresses(v=6), st.integers(0, 128)).map(
            lambda pair: IPv6Network((int(pair[0]), pair[1]), strict=False)
        ),
    ),
    max_size=20,
)


@FUZZ
@given(NETWORKS, address_texts())
def test_allowlist_fast_path_equals_strict(
    networks: list[IPv4Network | IPv6Network], text: str
) -> None:
    allowlist = Allowlist(networks)
    try:
        strict = parse_address(text)
    except AddressError:
        try:
            text in allowlist  # noqa: B015
        except AddressError:
            return
        raise AssertionError(f"fast path accepted {text!r}") from None
    assert (text in allowlist) == (strict in allowlist)


MAPPED = IPv6Network("::ffff:0:0/96")


def unmap_network(network: IPv4Network | IPv6Network) -> IPv4Network | IPv6Network:
    if isinstance(network, IPv6Network) and network.subnet_of(MAPPED):
        start = int(network.network_address) & 0xFFFFFFFF
        return IPv4Network((start, network.prefixlen - 96))
    return network


@FUZZ
@given(NETWORKS, st.ip_addresses())
def test_allowlist_equals_naive_loop(
    networks: list[IPv4Network | IPv6Network],
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    normalised = parse_address(str(address))
    naive = any(
        normalised.version == network.version and normalised in network
        for network in map(unmap_network, networks)
    )
    assert (address in Allowlist(networks)) == naive


# Disjoint /32s in 240.0.0.0/8, enough to switch IPv4 lookups to the
# indexed layout, which small generated lists never reach.
INDEX_PADDING = [IPv4Network((0xF0000000 + 2 * i, 32)) for i in range(2100)]


@settings(max_examples=60, deadline=None)
@given(NETWORKS, st.lists(address_texts(), max_size=20))
def test_indexed_allowlist_equals_naive_loop(
    networks: list[IPv4Network | IPv6Network], texts: list[str]
) -> None:
    # A generated short prefix can merge the padding away; the lookups
    # must agree either way.
    allowlist = Allowlist([*networks, *INDEX_PADDING])
    unmapped = [unmap_network(network) for network in networks]
    for text in [*texts, "240.0.0.0", "240.0.0.1", "240.0.16.103", "255.255.255.255"]:
        try:
            address = parse_address(text)
        except AddressError:
            continue
        expected = any(
            address.version == network.version and address in network
            for network in [*unmapped, *INDEX_PADDING]
        )
        assert (text in allowlist) == expected, text
        assert (address in allowlist) == expected, text


TRUSTED = Allowlist([IPv4Network("10.0.0.0/8")])


@FUZZ
@given(
    st.one_of(st.just("10.0.0.1"), address_texts()),
    st.lists(
        st.tuples(
            st.sampled_from(["x-forwarded-for", "forwarded", "host"]), HEADER_TEXT
        ),
        max_size=4,
    ),
)
def test_client_address_only_typed_errors(
    peer: str, headers: list[tuple[str, str]]
) -> None:
    with contextlib.suppress(AddressError):
        client_address(peer, headers, TRUSTED.__contains__)


@FUZZ
@given(st.lists(HEADER_TEXT, max_size=3))
def test_forwarding_parsers_only_typed_errors(lines: list[str]) -> None:
    for parser in (parse_forwarded, parse_x_forwarded_for):
        with contextlib.suppress(AddressError):
            parser(lines)


# -- PROXY protocol --

PROXY_DATA = st.one_of(
    st.binary(max_size=120),
    st.binary(max_size=100).map(lambda tail: V1_PREFIX + tail),
    st.binary(max_size=100).map(lambda tail: V2_SIGNATURE + tail),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=80)).map(
        lambda t: (
            V2_SIGNATURE + bytes([t[0], t[1]]) + len(t[2]).to_bytes(2, "big") + t[2]
        )
    ),
    st.text(alphabet="PROXYTCP46UNKOW 0123456789.:abcdef\r\n", max_size=110).map(
        str.encode
    ),
)


@FUZZ
@given(PROXY_DATA)
def test_proxy_header_only_typed_errors(data: bytes) -> None:
    try:
        header = parse_proxy_header(data)
    except ProxyProtocolError:
        return
    if header is not None:
        assert 0 < header.length <= len(data)
        # More bytes after a complete header never change it.
        assert parse_proxy_header(data + b"\r\nxyz") == header


@FUZZ
@given(PROXY_DATA)
def test_proxy_header_prefixes_consistent(data: bytes) -> None:
    try:
        final = parse_proxy_header(data)
    except ProxyProtocolError:
        return
    for end in range(len(data)):
        try:
            partial = parse_proxy_header(data[:end])
        except ProxyProtocolError:
            raise AssertionError(f"prefix of {data!r} rejected") from None
        assert partial is None or partial == final


# -- bodies --

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=5))
def test_parse_body_round_trip(document: dict[str, object]) -> None:
    body = json.dumps(document, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        parsed = parse_body(body)
    except MalformedBody as error:
        # Lone surrogates in generated text are not UTF-8.
        assert error.reason == "invalid_utf8"
        return
    assert parsed == json.loads(body)


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='{}[]":,0123456789.eE+-tfnulasrNIaIy \\', max_size=120).map(
            str.encode
        ),
    )
)
def test_parse_body_only_typed_errors(body: bytes) -> None:
    try:
        document = parse_body(body)
        developer_payload(document)
    except MalformedBody:
        pass


# -- tokens --

RING = KeyRing.generate(NOW)
SCAN_IDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.",
    min_size=1,
    max_size=100,
).filter(lambda s: s not in {".", ".."})


@settings(max_examples=100, deadline=None)
@given(
    SCAN_IDS,
    st.text(max_size=60).filter(
        lambda s: s.encode("utf-8", "ignore") == s.encode("utf-8", "surrogatepass")
    ),
)
def test_token_round_trip(scan_id: str, context: str) -> None:
    token = RING.seal(scan_id, context, now=NOW)
    assert len(token) <= 512
    opened = RING.open(token, scan_id, now=NOW, max_age=60)
    assert opened.context == context


@FUZZ
@given(
    st.one_of(
        st.text(max_size=600),
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
            max_size=200,
        ).map(lambda s: "hb1." + s),
    ),
    SCAN_IDS,
)
def test_token_open_only_typed_errors(token: str, scan_id: str) -> None:
    with contextlib.suppress(TokenError):
        RING.open(token, scan_id, now=NOW, max_age=60)


@FUZZ
@given(st.binary(min_size=1, max_size=120), st.integers(0, 119))
def test_token_any_bit_flip_rejected(noise: bytes, position: int) -> None:
    token = RING.seal("scan-1", "ctx", now=NOW)
    body = bytearray(token[4:].encode())
    index = position % len(body)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[noise[0] % len(alphabet)]
    if replacement == body[index]:
        return
    body[index] = replacement
    try:
        RING.open("hb1." + body.decode(), "scan-1", now=NOW, max_age=60)
    except TokenError:
        return
    raise AssertionError("a changed token opened")


# -- routes, headers, certificates --


@FUZZ
@given(
    st.one_of(
        st.text(max_size=120),
        st.text(alphabet="/copyleaksCOMPLETDnw-rudx%2Ff.?#", max_size=60).map(
            lambda s: "/copyleaks/" + s
        ),
    ),
    st.sampled_from(["POST", "GET", "post", ""]),
)
def test_match_route_only_typed_errors(path: str, method: str) -> None:
    try:
        route = match_route("/copyleaks", method, path)
    except (NotFound, MethodNotAllowed):
        return
    assert route.subject_id


MATCHER = SecretMatcher([Secret(b"s3cret", "t"), Secret("\u00e9".encode(), "t")])


@FUZZ
@given(
    st.lists(
        st.tuples(st.sampled_from(["authorization", "x"]), st.text(max_size=40)),
        max_size=3,
    ),
    st.sampled_from(["Bearer", ""]),
)
def test_header_secret_only_typed_errors(
    headers: list[tuple[str, str]], scheme: str
) -> None:
    try:
        credential = header_credential(headers, "Authorization", scheme)
    except HeaderSecretError:
        return
    MATCHER.matches(credential)


@FUZZ
@given(st.text(max_size=80))
def test_secret_matcher_never_raises(text: str) -> None:
    assert MATCHER.matches(text) in {True, False}


@FUZZ
@given(
    st.sampled_from(["nginx", "haproxy", "envoy"]),
    st.lists(HEADER_TEXT | st.text(max_size=80), min_size=1, max_size=2),
)
def test_forwarded_certificate_only_typed_errors(style: str, values: list[str]) -> None:
    header = {"nginx": "x-ssl-client-cert", "haproxy": "x-ssl-client-der"}.get(
        style, "x-forwarded-client-cert"
    )
    pairs = [(header, value) for value in values]
    with contextlib.suppress(CertificateError):
        forwarded_certificate(style, "", pairs)  # type: ignore[arg-type]


# -- the whole verifier --

VERIFIER = Verifier(
    dataclasses.replace(
        Config(),
        server=ServerConfig(
            certificate=Path("s.pem"),
            private_key=Path("s.key"),
            trusted_proxies=("10.0.0.0/8",),
            forwarded_certificate="envoy",
        ),
        developer_payload=DeveloperPayloadConfig(mode="sealed"),
    ),
    lambda: TrustSnapshot(
        Allowlist([IPv4Network("203.0.113.0/24")]), PinSet([]), True, True
    ),
    RING,
    clock=lambda: NOW,
)
STATUS_ROUTE = match_route("/copyleaks", "POST", "/copyleaks/completed/scan-1")


@FUZZ
@given(
    st.one_of(st.just("10.0.0.1"), st.just("203.0.113.5"), address_texts()),
    st.lists(
        st.tuples(
            st.sampled_from(
                ["x-forwarded-for", "forwarded", "x-forwarded-client-cert", "a"]
            ),
            HEADER_TEXT,
        ),
        max_size=4,
    ),
    st.one_of(st.none(), st.binary(max_size=64)),
    st.one_of(
        st.binary(max_size=100),
        st.text(max_size=40).map(
            lambda s: json.dumps({"developerPayload": s}).encode()
        ),
    ),
)
def test_verifier_only_typed_errors(
    peer: str,
    headers: list[tuple[str, str]],
    certificate: bytes | None,
    body: bytes,
) -> None:
    facts = ConnectionFacts(peer, headers, certificate)
    try:
        decision = VERIFIER.verify(STATUS_ROUTE, facts, body)
    except MalformedBody:
        return
    assert decision.status == 403


# -- duplicate keys: the counting method against a pairs hook --

TRICKY_TEXT = st.text(alphabet='ab:[]{}"\\/,\u00e9\n', max_size=6)


def encode_pairs(value: object) -> str:
    """Serialise nested pair lists as JSON objects, keeping repeated keys."""
    if isinstance(value, tuple):
        members = ", ".join(
            f"{json.dumps(key, ensure_ascii=escape)}: {encode_pairs(item)}"
            for key, item, escape in value
        )
        return "{" + members + "}"
    if isinstance(value, list):
        return "[" + ", ".join(encode_pairs(item) for item in value) + "]"
    return json.dumps(value)


PAIR_TREES = st.recursive(
    st.none() | st.integers() | TRICKY_TEXT,
    lambda children: (
        st.lists(children, max_size=3)
        | st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "a:", "\u00e9", '"', "\\"]),
                children,
                st.booleans(),
            ),
            max_size=4,
        ).map(tuple)
    ),
    max_leaves=15,
)


def has_duplicate(text: str) -> bool:
    found = False

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        nonlocal found
        found |= len({key for key, _ in pairs}) != len(pairs)
        return dict(pairs)

    json.loads(text, object_pairs_hook=hook)
    return found


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "a:", "\u00e9"]), PAIR_TREES, st.booleans()
        ),
        max_size=4,
    ).map(tuple)
)
def test_duplicate_detection_matches_pairs_hook(tree: tuple[object, ...]) -> None:
    text = encode_pairs(tree)
    expected = has_duplicate(text)
    try:
        parse_body(text.encode("utf-8"), max_depth=1000)
    except MalformedBody as error:
        assert error.reason == "duplicate_key"
        assert expected
        return
    assert not expected
