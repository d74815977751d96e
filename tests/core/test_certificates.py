"""Thumbprints, pin sets, validity and forwarded certificate headers."""

import base64
import hashlib
from urllib.parse import quote

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hookbouncer.certificates import (
    CertificateError,
    PinSet,
    forwarded_certificate,
    load_certificate,
    thumbprints,
    validity,
    validity_at,
    validity_window,
)

from .conftest import NOW, der_to_pem, make_certificate


def test_thumbprints_match_hashlib(certificate_der: bytes) -> None:
    prints = thumbprints(certificate_der)
    assert prints.sha1 == hashlib.sha1(certificate_der).hexdigest()  # noqa: S324
    assert prints.sha256 == hashlib.sha256(certificate_der).hexdigest()


def test_pinset_matches_sha1_any_format(certificate_der: bytes) -> None:
    sha1 = thumbprints(certificate_der).sha1.upper()
    colons = ":".join(sha1[i : i + 2] for i in range(0, 40, 2))
    pins = PinSet([colons])
    assert pins.matches(certificate_der) == sha1.lower()


def test_pinset_matches_sha256(certificate_der: bytes) -> None:
    sha256 = thumbprints(certificate_der).sha256
    assert PinSet([sha256]).matches(certificate_der) == sha256


def test_pinset_rejects_other_certificate(
    certificate_der: bytes, other_certificate_der: bytes
) -> None:
    pins = PinSet([thumbprints(certificate_der).sha1])
    assert pins.matches(other_certificate_der) is None


def test_pinset_empty_matches_nothing(certificate_der: bytes) -> None:
    assert PinSet([]).matches(certificate_der) is None
    assert not PinSet([])


@pytest.mark.parametrize("entry", ["", "abc", "g" * 40, "a" * 41, "a" * 63])
def test_pinset_rejects_invalid_entry(entry: str) -> None:
    with pytest.raises(ValueError):
        PinSet([entry])


def test_pinset_matches_trustme_certificate() -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("client.copyleaks.test")
    pem = leaf.cert_chain_pems[0].bytes()
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    assert PinSet([hashlib.sha256(der).hexdigest()]).matches(der) is not None


@pytest.mark.parametrize(
    "data", [b"", b"\x30\x03\x02\x01\x01", b"not a certificate", b"\x30" * 100]
)
def test_load_certificate_invalid(data: bytes) -> None:
    with pytest.raises(CertificateError):
        load_certificate(data)


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        (NOW - 10, NOW + 10, None),
        (NOW - 20, NOW - 10, "expired"),
        (NOW + 10, NOW + 20, "not_yet_valid"),
    ],
)
def test_validity(not_before: float, not_after: float, expected: str | None) -> None:
    der = make_certificate(not_before=not_before, not_after=not_after)
    assert validity(load_certificate(der), NOW) == expected


@pytest.mark.parametrize(
    ("not_before", "not_after", "expected"),
    [
        (NOW - 10, NOW + 10, None),
        (NOW - 20, NOW - 10, "expired"),
        (NOW + 10, NOW + 20, "not_yet_valid"),
    ],
)
def test_validity_at_matches_validity(
    not_before: float, not_after: float, expected: str | None
) -> None:
    der = make_certificate(not_before=not_before, not_after=not_after)
    assert validity_at(der, NOW) == expected
    # The second call is answered from the cache, with the same result.
    assert validity_at(der, NOW) == expected


def test_validity_at_bounds_inclusive() -> None:
    der = make_certificate(not_before=NOW - 10, not_after=NOW + 10)
    not_before, not_after = validity_window(der)
    assert validity_at(der, not_before) is None
    assert validity_at(der, not_after) is None
    assert validity_at(der, not_after + 1) == "expired"
    assert validity_at(der, not_before - 1) == "not_yet_valid"


@pytest.mark.parametrize("data", [b"", b"not a certificate"])
def test_validity_at_invalid_raises_each_time(data: bytes) -> None:
    for _ in range(2):
        with pytest.raises(CertificateError):
            validity_at(data, NOW)


# -- forwarded headers --


def nginx_value(der: bytes) -> str:
    return quote(der_to_pem(der).decode("ascii"), safe="")


def haproxy_value(der: bytes) -> str:
    return base64.b64encode(der).decode("ascii")


def xfcc_element(der: bytes, by: str = "spiffe://proxy") -> str:
    return f'By={by};Hash=abc;Cert="{nginx_value(der)}";Subject="CN=a,O=b";DNS=x'


def test_forwarded_nginx(certificate_der: bytes) -> None:
    headers = [("x-ssl-client-cert", nginx_value(certificate_der))]
    assert forwarded_certificate("nginx", "", headers) == certificate_der


def test_forwarded_nginx_custom_header(certificate_der: bytes) -> None:
    headers = [("ssl-client", nginx_value(certificate_der))]
    assert forwarded_certificate("nginx", "ssl-client", headers) == certificate_der
    assert forwarded_certificate("nginx", "", headers) is None


def test_forwarded_haproxy(certificate_der: bytes) -> None:
    headers = [("x-ssl-client-der", haproxy_value(certificate_der))]
    assert forwarded_certificate("haproxy", "", headers) == certificate_der


def test_forwarded_envoy_rightmost_element(
    certificate_der: bytes, other_certificate_der: bytes
) -> None:
    value = f"{xfcc_element(other_certificate_der)},{xfcc_element(certificate_der)}"
    headers = [("x-forwarded-client-cert", value)]
    assert forwarded_certificate("envoy", "", headers) == certificate_der


def test_forwarded_envoy_repeated_lines_join(
    certificate_der: bytes, other_certificate_der: bytes
) -> None:
    headers = [
        ("x-forwarded-client-cert", xfcc_element(other_certificate_der)),
        ("x-forwarded-client-cert", xfcc_element(certificate_der)),
    ]
    assert forwarded_certificate("envoy", "", headers) == certificate_der


def test_forwarded_envoy_element_without_cert(certificate_der: bytes) -> None:
    value = f"{xfcc_element(certificate_der)},By=spiffe://inner;Hash=abc"
    headers = [("x-forwarded-client-cert", value)]
    assert forwarded_certificate("envoy", "", headers) is None


@pytest.mark.parametrize(
    ("style", "value"),
    [("nginx", ""), ("nginx", "-"), ("haproxy", ""), ("envoy", "")],
)
def test_forwarded_empty_means_none(style: str, value: str) -> None:
    header = {"nginx": "x-ssl-client-cert", "haproxy": "x-ssl-client-der"}.get(
        style, "x-forwarded-client-cert"
    )
    assert forwarded_certificate(style, "", [(header, value)]) is None  # type: ignore[arg-type]


def test_forwarded_absent_is_none() -> None:
    assert forwarded_certificate("nginx", "", [("host", "x")]) is None


@pytest.mark.parametrize(
    ("style", "header", "value"),
    [
        ("nginx", "x-ssl-client-cert", "not%20pem"),
        ("nginx", "x-ssl-client-cert", "%2D%2D%2D%2D%2DBEGIN"),
        ("haproxy", "x-ssl-client-der", "!!!"),
        ("haproxy", "x-ssl-client-der", "YWJj"),
        ("envoy", "x-forwarded-client-cert", 'Cert="unterminated'),
        ("envoy", "x-forwarded-client-cert", "Cert"),
        ("envoy", "x-forwarded-client-cert", 'Cert="abc";Cert="abc"'),
        ("envoy", "x-forwarded-client-cert", 'Cert="not%20pem"'),
        ("nginx", "x-ssl-client-cert", "é"),
        ("nginx", "x-ssl-client-cert", "a" * 70000),
    ],
)
def test_forwarded_invalid(style: str, header: str, value: str) -> None:
    with pytest.raises(CertificateError):
        forwarded_certificate(style, "", [(header, value)])  # type: ignore[arg-type]


def test_forwarded_repeated_header_rejected(certificate_der: bytes) -> None:
    value = nginx_value(certificate_der)
    headers = [("x-ssl-client-cert", value), ("x-ssl-client-cert", value)]
    with pytest.raises(CertificateError):
        forwarded_certificate("nginx", "", headers)
