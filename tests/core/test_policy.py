"""The verifier end to end: checks per route, reasons, statuses."""

from __future__ import annotations

import dataclasses
import json
from ipaddress import ip_address, ip_network
from pathlib import Path
from urllib.parse import quote

import pytest

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet, thumbprints
from hookbouncer.config import (
    Config,
    DeveloperPayloadConfig,
    HeaderSecretConfig,
    RouteConfig,
    Secret,
    ServerConfig,
)
from hookbouncer.errors import ConfigError, MalformedBody
from hookbouncer.policy import (
    ConnectionFacts,
    Decision,
    Failure,
    Reason,
    Verifier,
    check_startup,
)
from hookbouncer.routes import match_route
from hookbouncer.tokens import KeyRing
from hookbouncer.trust import TrustSnapshot

from .conftest import NOW, der_to_pem, make_certificate

SENDER = "203.0.113.10"
PROXY = "10.0.0.2"
STATUS_ROUTE = match_route("/copyleaks", "POST", "/copyleaks/completed/scan-1")
EXPORT_ROUTE = match_route("/copyleaks", "POST", "/copyleaks/export/exp-1/completed")
DAY = 86400.0


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate(NOW - DAY)


def make_config(**changes: object) -> Config:
    server = ServerConfig(
        certificate=Path("server.pem"),
        private_key=Path("server.key"),
        trusted_proxies=("10.0.0.0/8",),
    )
    config = Config(
        server=server,
        header_secret=HeaderSecretConfig(secrets=(Secret(b"hdr-secret", "test"),)),
        developer_payload=DeveloperPayloadConfig(mode="sealed", max_age=30 * DAY),
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def snapshot_for(der: bytes, **changes: object) -> TrustSnapshot:
    snapshot = TrustSnapshot(
        allowlist=Allowlist(
            [ip_network("203.0.113.0/24"), ip_network("2001:db8::/32")]
        ),
        pins=PinSet([thumbprints(der).sha1]),
        ranges_loaded=True,
        pins_loaded=True,
        fail_closed=False,
    )
    return dataclasses.replace(snapshot, **changes)  # type: ignore[arg-type]


def body_with(payload: str | None, **extra: object) -> bytes:
    document: dict[str, object] = {"status": 0, **extra}
    if payload is not None:
        document["developerPayload"] = payload
    return json.dumps(document).encode()


def verifier_for(
    config: Config, snapshot: TrustSnapshot, ring: KeyRing | None
) -> Verifier:
    return Verifier(config, lambda: snapshot, ring, clock=lambda: NOW)


def reasons(decision: Decision) -> set[Reason]:
    return {failure.reason for failure in decision.failures}


def test_genuine_webhook_accepted(certificate_der: bytes, ring: KeyRing) -> None:
    verifier = verifier_for(make_config(), snapshot_for(certificate_der), ring)
    token = ring.seal("scan-1", "order=7", now=NOW)
    facts = ConnectionFacts(SENDER, [], certificate_der)
    decision = verifier.verify(STATUS_ROUTE, facts, body_with(token))
    assert decision.accepted
    assert decision.status == 200
    assert decision.failures == ()
    assert decision.context == "order=7"
    assert decision.client_address == ip_address(SENDER)
    assert decision.thumbprint == thumbprints(certificate_der).sha1
    assert decision.event == "completed"
    assert decision.scan_id == "scan-1"
    assert not decision.needs_feed_refresh


@pytest.mark.parametrize(
    ("peer", "headers", "proxy_source", "address", "reason"),
    [
        ("198.51.100.1", [], None, "198.51.100.1", Reason.NOT_IN_ALLOWLIST),
        # A spoofed X-Forwarded-For from an untrusted peer is ignored.
        (
            "198.51.100.1",
            [("x-forwarded-for", SENDER)],
            None,
            "198.51.100.1",
            Reason.NOT_IN_ALLOWLIST,
        ),
        ("::ffff:203.0.113.10", [], None, SENDER, None),
        ("2001:db8::5", [], None, "2001:db8::5", None),
        ("fe80::1%eth0", [], None, "fe80::1", Reason.NOT_IN_ALLOWLIST),
        (PROXY, [("x-forwarded-for", SENDER)], None, SENDER, None),
        (
            PROXY,
            [("x-forwarded-for", f"{SENDER}, 198.51.100.1")],
            None,
            "198.51.100.1",
            Reason.NOT_IN_ALLOWLIST,
        ),
        (PROXY, [("forwarded", f'for="{SENDER}:443"')], None, SENDER, None),
        (PROXY, [], None, PROXY, Reason.NOT_IN_ALLOWLIST),
        (PROXY, [("x-forwarded-for", "unknown")], None, None, Reason.UNKNOWN_HOP),
        (PROXY, [("x-forwarded-for", "1.2.3.04")], None, None, Reason.ADDRESS_INVALID),
        (PROXY, [("forwarded", "for")], None, None, Reason.FORWARDED_INVALID),
        ("garbage", [], None, None, Reason.ADDRESS_INVALID),
        # A trusted proxy's PROXY protocol source replaces the socket peer.
        (PROXY, [], SENDER, SENDER, None),
        (PROXY, [], "198.51.100.1", "198.51.100.1", Reason.NOT_IN_ALLOWLIST),
        # Anyone can write a PROXY header, so an untrusted peer's is ignored.
        ("198.51.100.1", [], SENDER, "198.51.100.1", Reason.NOT_IN_ALLOWLIST),
        ("::ffff:198.51.100.1", [], SENDER, "198.51.100.1", Reason.NOT_IN_ALLOWLIST),
    ],
)
def test_source_ip(
    certificate_der: bytes,
    ring: KeyRing,
    peer: str,
    headers: list[tuple[str, str]],
    proxy_source: str | None,
    address: str | None,
    reason: Reason | None,
) -> None:
    config = make_config(routes={"status": RouteConfig(("source_ip",))})
    verifier = verifier_for(config, snapshot_for(certificate_der), ring)
    facts = ConnectionFacts(peer, headers, None, proxy_source)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    expected_address = ip_address(address) if address else None
    assert verdict.client_address == expected_address
    expected = () if reason is None else (Failure("source_ip", reason),)
    assert verdict.failures == expected


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ranges_loaded": False}, Reason.RANGES_NOT_LOADED),
        ({"fail_closed": True}, Reason.FEEDS_FAIL_CLOSED),
        ({"allowlist": Allowlist([])}, Reason.NOT_IN_ALLOWLIST),
    ],
)
def test_source_ip_list_state(
    certificate_der: bytes, ring: KeyRing, changes: dict[str, object], reason: Reason
) -> None:
    config = make_config(routes={"status": RouteConfig(("source_ip",))})
    snapshot = snapshot_for(certificate_der, **changes)
    verifier = verifier_for(config, snapshot, ring)
    verdict = verifier.check_connection(STATUS_ROUTE, ConnectionFacts(SENDER, [], None))
    assert verdict.failures == (Failure("source_ip", reason),)


CERT_ONLY = {"status": RouteConfig(("client_certificate",))}


def test_certificate_missing(certificate_der: bytes, ring: KeyRing) -> None:
    verifier = verifier_for(
        make_config(routes=CERT_ONLY), snapshot_for(certificate_der), ring
    )
    verdict = verifier.check_connection(STATUS_ROUTE, ConnectionFacts(SENDER, [], None))
    assert verdict.failures == (
        Failure("client_certificate", Reason.CERTIFICATE_MISSING),
    )


def test_certificate_not_pinned_requests_refresh(
    certificate_der: bytes, other_certificate_der: bytes, ring: KeyRing
) -> None:
    verifier = verifier_for(
        make_config(routes=CERT_ONLY), snapshot_for(certificate_der), ring
    )
    facts = ConnectionFacts(SENDER, [], other_certificate_der)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.needs_feed_refresh
    decision = verifier.verify(STATUS_ROUTE, facts, body_with(None))
    assert reasons(decision) == {Reason.CERTIFICATE_NOT_PINNED}
    assert decision.status == 403
    assert decision.needs_feed_refresh


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"pins_loaded": False}, Reason.PINS_NOT_LOADED),
        ({"fail_closed": True}, Reason.FEEDS_FAIL_CLOSED),
        ({"pins": PinSet([])}, Reason.CERTIFICATE_NOT_PINNED),
    ],
)
def test_certificate_list_state(
    certificate_der: bytes, ring: KeyRing, changes: dict[str, object], reason: Reason
) -> None:
    snapshot = snapshot_for(certificate_der, **changes)
    verifier = verifier_for(make_config(routes=CERT_ONLY), snapshot, ring)
    facts = ConnectionFacts(SENDER, [], certificate_der)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.failures == (Failure("client_certificate", reason),)


def test_certificate_garbage_der(ring: KeyRing, certificate_der: bytes) -> None:
    verifier = verifier_for(
        make_config(routes=CERT_ONLY), snapshot_for(certificate_der), ring
    )
    verdict = verifier.check_connection(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], b"\x30\x00")
    )
    assert verdict.failures == (
        Failure("client_certificate", Reason.CERTIFICATE_INVALID),
    )


@pytest.mark.parametrize(
    ("setting", "dates", "failures", "warnings"),
    [
        ("accept", (NOW - 20 * DAY, NOW - DAY), (), ()),
        ("warn", (NOW - 20 * DAY, NOW - DAY), (), (Reason.CERTIFICATE_EXPIRED,)),
        ("reject", (NOW - 20 * DAY, NOW - DAY), (Reason.CERTIFICATE_EXPIRED,), ()),
        ("warn", (NOW + DAY, NOW + 20 * DAY), (), (Reason.CERTIFICATE_NOT_YET_VALID,)),
        (
            "reject",
            (NOW + DAY, NOW + 20 * DAY),
            (Reason.CERTIFICATE_NOT_YET_VALID,),
            (),
        ),
        ("reject", (NOW - DAY, NOW + DAY), (), ()),
    ],
)
def test_expired_certificate_setting(
    ring: KeyRing,
    setting: str,
    dates: tuple[float, float],
    failures: tuple[Reason, ...],
    warnings: tuple[Reason, ...],
) -> None:
    der = make_certificate(not_before=dates[0], not_after=dates[1])
    config = make_config(routes=CERT_ONLY)
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, expired_certificate=setting)
    )
    verifier = verifier_for(config, snapshot_for(der), ring)
    verdict = verifier.check_connection(STATUS_ROUTE, ConnectionFacts(SENDER, [], der))
    assert tuple(f.reason for f in verdict.failures) == failures
    assert tuple(f.reason for f in verdict.warnings) == warnings


def forwarding_config(style: str = "nginx") -> Config:
    config = make_config(routes=CERT_ONLY)
    server = dataclasses.replace(
        config.server, mode="plain", forwarded_certificate=style
    )
    return dataclasses.replace(config, server=server)


def test_forwarded_certificate_from_trusted_proxy(
    certificate_der: bytes, ring: KeyRing
) -> None:
    verifier = verifier_for(forwarding_config(), snapshot_for(certificate_der), ring)
    header = quote(der_to_pem(certificate_der).decode(), safe="")
    facts = ConnectionFacts(PROXY, [("x-ssl-client-cert", header)], None)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.failures == ()
    assert verdict.thumbprint == thumbprints(certificate_der).sha1


def test_forwarded_certificate_from_other_peer_ignored(
    certificate_der: bytes, ring: KeyRing
) -> None:
    verifier = verifier_for(forwarding_config(), snapshot_for(certificate_der), ring)
    header = quote(der_to_pem(certificate_der).decode(), safe="")
    facts = ConnectionFacts("198.51.100.1", [("x-ssl-client-cert", header)], None)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.failures == (
        Failure("client_certificate", Reason.CERTIFICATE_MISSING),
    )


def test_forwarded_certificate_garbage_header(
    certificate_der: bytes, ring: KeyRing
) -> None:
    verifier = verifier_for(forwarding_config(), snapshot_for(certificate_der), ring)
    facts = ConnectionFacts(PROXY, [("x-ssl-client-cert", "%%%")], None)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.failures == (
        Failure("client_certificate", Reason.CERTIFICATE_HEADER_INVALID),
    )


def test_forwarded_certificate_trusted_proxy_handshake_not_used(
    certificate_der: bytes, ring: KeyRing
) -> None:
    # Behind a terminator the handshake certificate is the terminator's own.
    verifier = verifier_for(forwarding_config(), snapshot_for(certificate_der), ring)
    facts = ConnectionFacts(PROXY, [], certificate_der)
    verdict = verifier.check_connection(STATUS_ROUTE, facts)
    assert verdict.failures == (
        Failure("client_certificate", Reason.CERTIFICATE_MISSING),
    )


# -- developerPayload --

PAYLOAD_ONLY = {"status": RouteConfig(("developer_payload",))}


def plain_config() -> Config:
    secrets = (Secret(b"old-secret", "t:1"), Secret("n\u00e9w".encode(), "t:2"))
    return make_config(
        routes=PAYLOAD_ONLY,
        developer_payload=DeveloperPayloadConfig(mode="plain", secrets=secrets),
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("old-secret", None),
        ("n\u00e9w", None),
        ("n\u00e9w ", Reason.PAYLOAD_MISMATCH),
        ("\u00e9\u00e8\u00ea\U0001f600", Reason.PAYLOAD_MISMATCH),
        ("\ud800", Reason.PAYLOAD_MISMATCH),
        ("", Reason.PAYLOAD_MISMATCH),
        (None, Reason.PAYLOAD_MISSING),
    ],
)
def test_plain_payload(
    certificate_der: bytes, payload: str | None, reason: Reason | None
) -> None:
    verifier = verifier_for(plain_config(), snapshot_for(certificate_der), None)
    decision = verifier.verify(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], None), body_with(payload)
    )
    expected = set() if reason is None else {reason}
    assert reasons(decision) == expected
    assert decision.status == (200 if reason is None else 403)


@pytest.mark.parametrize(
    "body",
    [
        b'{"developerPayload": "old-secret", "developerPayload": "x"}',
        b'{"developerPayload": "x", "developerPayload": "old-secret"}',
        b'{"developerPayload": 1}',
        b'{"developerPayload": ["old-secret"]}',
        b"[]",
        b"not json",
        b'{"developerPayload": "old-secret", "a": {"b": 1, "b": 2}}',
    ],
)
def test_malformed_body_is_400(certificate_der: bytes, body: bytes) -> None:
    verifier = verifier_for(plain_config(), snapshot_for(certificate_der), None)
    with pytest.raises(MalformedBody) as caught:
        verifier.verify(STATUS_ROUTE, ConnectionFacts(SENDER, [], None), body)
    assert caught.value.status == 400


def test_non_string_payload_400_without_check(
    certificate_der: bytes, ring: KeyRing
) -> None:
    config = make_config(routes={"status": RouteConfig(("source_ip",))})
    verifier = verifier_for(config, snapshot_for(certificate_der), ring)
    with pytest.raises(MalformedBody):
        verifier.verify(
            STATUS_ROUTE,
            ConnectionFacts(SENDER, [], None),
            b'{"developerPayload": {"x": 1}}',
        )


def test_malformed_body_after_failed_connection_is_403(
    certificate_der: bytes, ring: KeyRing
) -> None:
    verifier = verifier_for(make_config(), snapshot_for(certificate_der), ring)
    facts = ConnectionFacts("198.51.100.1", [], None)
    decision = verifier.verify(STATUS_ROUTE, facts, b"{{{")
    assert decision.status == 403
    assert Reason.BODY_MALFORMED in reasons(decision)


@pytest.mark.parametrize(
    ("seal_scan", "sealed_at", "other_ring", "reason"),
    [
        ("scan-1", NOW, False, None),
        ("scan-2", NOW, False, Reason.TOKEN_WRONG_SCAN),
        ("scan-1", NOW - 31 * DAY, False, Reason.TOKEN_EXPIRED),
        ("scan-1", NOW + DAY, False, Reason.TOKEN_FUTURE),
        ("scan-1", NOW, True, Reason.TOKEN_UNKNOWN_KEY),
    ],
)
def test_sealed_payload(
    certificate_der: bytes,
    ring: KeyRing,
    seal_scan: str,
    sealed_at: float,
    other_ring: bool,
    reason: Reason | None,
) -> None:
    sealer = KeyRing.generate(NOW) if other_ring else ring
    token = sealer.seal(seal_scan, "ctx", now=sealed_at)
    config = make_config(routes=PAYLOAD_ONLY)
    verifier = verifier_for(config, snapshot_for(certificate_der), ring)
    decision = verifier.verify(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], None), body_with(token)
    )
    expected = set() if reason is None else {reason}
    assert reasons(decision) == expected
    assert decision.context == (None if reason else "ctx")


def test_sealed_payload_malformed(certificate_der: bytes, ring: KeyRing) -> None:
    verifier = verifier_for(
        make_config(routes=PAYLOAD_ONLY), snapshot_for(certificate_der), ring
    )
    decision = verifier.verify(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], None), body_with("old-secret")
    )
    assert reasons(decision) == {Reason.TOKEN_MALFORMED}


def test_sealed_payload_after_rotation(certificate_der: bytes, ring: KeyRing) -> None:
    old_token = ring.seal("scan-1", "old", now=NOW)
    rotated = ring.rotated(NOW)
    verifier = verifier_for(
        make_config(routes=PAYLOAD_ONLY), snapshot_for(certificate_der), rotated
    )
    decision = verifier.verify(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], None), body_with(old_token)
    )
    assert decision.accepted
    assert decision.context == "old"


# -- header secret and export routes --


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("authorization", "Bearer hdr-secret")], None),
        ([("authorization", "bearer hdr-secret")], None),
        ([("authorization", "Bearer wrong")], Reason.HEADER_MISMATCH),
        ([("authorization", "Bearer h\u00e9")], Reason.HEADER_MISMATCH),
        ([], Reason.HEADER_MISSING),
        ([("authorization", "Basic hdr-secret")], Reason.HEADER_SCHEME),
        (
            [("authorization", "Bearer hdr-secret"), ("authorization", "Bearer x")],
            Reason.HEADER_REPEATED,
        ),
    ],
)
def test_header_secret_on_export(
    certificate_der: bytes,
    ring: KeyRing,
    headers: list[tuple[str, str]],
    reason: Reason | None,
) -> None:
    config = make_config(routes={"export": RouteConfig(("header_secret",))})
    verifier = verifier_for(config, snapshot_for(certificate_der), ring)
    decision = verifier.verify(
        EXPORT_ROUTE, ConnectionFacts(SENDER, headers, None), b'{"completed": true}'
    )
    expected = set() if reason is None else {reason}
    assert reasons(decision) == expected


def test_every_failure_listed(certificate_der: bytes, ring: KeyRing) -> None:
    verifier = verifier_for(make_config(), snapshot_for(certificate_der), ring)
    facts = ConnectionFacts("198.51.100.1", [], None)
    decision = verifier.verify(STATUS_ROUTE, facts, body_with(None))
    assert decision.failures == (
        Failure("source_ip", Reason.NOT_IN_ALLOWLIST),
        Failure("client_certificate", Reason.CERTIFICATE_MISSING),
        Failure("developer_payload", Reason.PAYLOAD_MISSING),
    )
    assert not decision.needs_feed_refresh


def test_needs_feed_refresh_only_for_list_misses(
    other_certificate_der: bytes, certificate_der: bytes, ring: KeyRing
) -> None:
    token = ring.seal("scan-1", now=NOW)
    verifier = verifier_for(make_config(), snapshot_for(certificate_der), ring)
    facts = ConnectionFacts("198.51.100.1", [], other_certificate_der)
    decision = verifier.verify(STATUS_ROUTE, facts, body_with(token))
    assert reasons(decision) == {Reason.NOT_IN_ALLOWLIST, Reason.CERTIFICATE_NOT_PINNED}
    assert decision.needs_feed_refresh


def test_omitted_check_is_skipped(certificate_der: bytes, ring: KeyRing) -> None:
    config = make_config(routes={"status": RouteConfig(("developer_payload",))})
    verifier = verifier_for(config, TrustSnapshot.empty(), ring)
    token = ring.seal("scan-1", now=NOW)
    facts = ConnectionFacts("198.51.100.1", [], None)
    assert verifier.verify(STATUS_ROUTE, facts, body_with(token)).accepted


def test_empty_snapshot_denies(certificate_der: bytes, ring: KeyRing) -> None:
    verifier = verifier_for(make_config(), TrustSnapshot.empty(), ring)
    token = ring.seal("scan-1", now=NOW)
    decision = verifier.verify(
        STATUS_ROUTE, ConnectionFacts(SENDER, [], certificate_der), body_with(token)
    )
    assert reasons(decision) == {Reason.RANGES_NOT_LOADED, Reason.PINS_NOT_LOADED}


def test_trust_read_per_request(certificate_der: bytes, ring: KeyRing) -> None:
    snapshots = [TrustSnapshot.empty()]
    config = make_config(routes={"status": RouteConfig(("source_ip",))})
    verifier = Verifier(config, lambda: snapshots[-1], ring, clock=lambda: NOW)
    facts = ConnectionFacts(SENDER, [], None)
    assert not verifier.check_connection(STATUS_ROUTE, facts).passed
    snapshots.append(snapshot_for(certificate_der))
    assert verifier.check_connection(STATUS_ROUTE, facts).passed


# -- startup --


def test_startup_sealed_without_keyring() -> None:
    with pytest.raises(ConfigError, match="key ring"):
        check_startup(make_config(), None)
    with pytest.raises(ConfigError):
        Verifier(make_config(), TrustSnapshot.empty, None)


def test_startup_plain_listener_needs_forwarded_certificate(ring: KeyRing) -> None:
    with pytest.raises(ConfigError, match="forwarded_certificate"):
        check_startup(make_config(), ring, tls=False)
    check_startup(make_config(), ring, tls=True)


def test_startup_plain_mode_without_payload_check(ring: KeyRing) -> None:
    config = make_config(routes={"status": RouteConfig(("source_ip",))})
    check_startup(config, None)


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "0.0.0.0/0", "::/0", "*", "10.0.0.x"])
def test_startup_rejects_bad_trusted_proxy(ring: KeyRing, entry: str) -> None:
    config = make_config()
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, trusted_proxies=(entry,))
    )
    with pytest.raises(ConfigError, match="trusted_proxies"):
        Verifier(config, TrustSnapshot.empty, ring)


def test_startup_rejects_proxies_covering_all(ring: KeyRing) -> None:
    config = make_config()
    halves = ("0.0.0.0/1", "128.0.0.0/1")
    config = dataclasses.replace(
        config, server=dataclasses.replace(config.server, trusted_proxies=halves)
    )
    with pytest.raises(ConfigError, match="together cover every IPv4 address"):
        Verifier(config, TrustSnapshot.empty, ring)
