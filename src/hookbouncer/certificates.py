"""Client certificates: thumbprints, the pin set and forwarded certificates.

A certificate is trusted when the SHA-1 or SHA-256 thumbprint of its DER
encoding is pinned. Its issuer and dates do not decide trust, because
Copyleaks' certificates may be self-signed. The certificate comes from the
TLS handshake or, behind a trusted TLS terminator, from a header the
terminator writes. This module only parses and matches; whether to believe
a header is the policy's decision.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_to_bytes

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from hookbouncer.errors import RequestError
from hookbouncer.feeds.validate import normalize_thumbprint
from hookbouncer.quoted import split_outside_quotes, unquote

ForwardedStyle = Literal["nginx", "haproxy", "envoy"]

# Header names used when server.forwarded_certificate_header is empty.
DEFAULT_HEADERS: dict[str, str] = {
    "nginx": "x-ssl-client-cert",
    "haproxy": "x-ssl-client-der",
    "envoy": "x-forwarded-client-cert",
}

# A client certificate header longer than this is not one certificate.
MAX_HEADER_CHARS = 64 * 1024

# Distinct DER certificates whose parse results are kept. A keep-alive
# connection presents the same certificate on every request, so parsing it
# and hashing it once saves about 25 µs per request. The entries are pure
# functions of the DER bytes, so a hit is as good as recomputing: the pin
# set in force is still compared on every request.
CACHED_CERTIFICATES = 256


class CertificateError(RequestError):
    """A client certificate or certificate header cannot be read (403)."""

    status = 403


@dataclass(frozen=True)
class Thumbprints:
    """SHA-1 and SHA-256 of a DER certificate, as lowercase hex."""

    sha1: str
    sha256: str


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def thumbprints(der: bytes) -> Thumbprints:
    """Compute both thumbprints of a DER-encoded certificate."""
    return Thumbprints(
        sha1=hashlib.sha1(der, usedforsecurity=False).hexdigest(),
        sha256=hashlib.sha256(der).hexdigest(),
    )


class PinSet:
    """Immutable set of pinned thumbprints (SHA-1 or SHA-256 hex)."""

    __slots__ = ("_pins",)

    def __init__(self, thumbprints: Iterable[str]) -> None:
        self._pins = frozenset(normalize_thumbprint(entry) for entry in thumbprints)

    def matches(self, der: bytes) -> str | None:
        """Return the pinned thumbprint matching `der`, or None."""
        prints = thumbprints(der)
        if prints.sha256 in self._pins:
            return prints.sha256
        if prints.sha1 in self._pins:
            return prints.sha1
        return None

    def __contains__(self, thumbprint: object) -> bool:
        return thumbprint in self._pins

    def __len__(self) -> int:
        return len(self._pins)

    def __bool__(self) -> bool:
        return bool(self._pins)

    def __repr__(self) -> str:
        return f"<PinSet {len(self._pins)} thumbprints>"


def load_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate; raise `CertificateError` if it is not one."""
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise CertificateError("invalid_certificate", "not a DER certificate") from None


def validity(certificate: x509.Certificate, now: float) -> str | None:
    """Return "expired", "not_yet_valid" or None for a valid date range."""
    moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
    if moment > certificate.not_valid_after_utc:
        return "expired"
    if moment < certificate.not_valid_before_utc:
        return "not_yet_valid"
    return None


@functools.lru_cache(maxsize=CACHED_CERTIFICATES)
def validity_window(der: bytes) -> tuple[float, float]:
    """Return the Unix times of `notBefore` and `notAfter` of a DER certificate.

    Raise `CertificateError` if `der` is not a certificate; a failure is
    not cached, so a bad certificate is parsed again on each request.
    """
    certificate = load_certificate(der)
    return (
        certificate.not_valid_before_utc.timestamp(),
        certificate.not_valid_after_utc.timestamp(),
    )


def validity_at(der: bytes, now: float) -> str | None:
    """Return "expired", "not_yet_valid" or None, as `validity` does, from DER."""
    not_before, not_after = validity_window(der)
    if now > not_after:
        return "expired"
    if now < not_before:
        return "not_yet_valid"
    return None


def forwarded_certificate(
    style: ForwardedStyle,
    header: str,
    headers: Sequence[tuple[str, str]],
) -> bytes | None:
    """Return the DER certificate a TLS terminator forwarded, or None.

    `header` is the lowercase header name, or "" for the style's default.
    None means the header is absent or empty, so no certificate was shown.
    A repeated header (except Envoy's list-valued one) or any decoding
    failure raises `CertificateError`.
    """
    name = header or DEFAULT_HEADERS[style]
    values = [value for key, value in headers if key == name]
    if not values:
        return None
    if style == "envoy":
        value = ",".join(values)
    elif len(values) > 1:
        raise CertificateError("invalid_certificate_header", "header repeated")
    else:
        value = values[0]
    if len(value) > MAX_HEADER_CHARS or not value.isascii():
        raise CertificateError("invalid_certificate_header", "header too long")
    value = value.strip()
    if style == "nginx":
        return _from_escaped_pem(value) if value not in {"", "-"} else None
    if style == "haproxy":
        return _from_base64_der(value) if value else None
    return _from_xfcc(value)


def _from_escaped_pem(value: str) -> bytes:
    pem = unquote_to_bytes(value)
    try:
        certificate = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise CertificateError(
            "invalid_certificate_header", "not a URL-encoded PEM certificate"
        ) from None
    return certificate.public_bytes(Encoding.DER)


def _from_base64_der(value: str) -> bytes:
    try:
        der = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("invalid_certificate_header", "not base64 DER") from None
    load_certificate(der)
    return der


def _from_xfcc(value: str) -> bytes | None:
    """Read `Cert=` from the rightmost element of `x-forwarded-client-cert`.

    Each proxy appends its own element, so the rightmost one was written
    by the terminator next to us. Elements further left may come from the
    client and are never read.
    """
    if not value:
        return None
    elements = _split_quoted(value, ",")
    pairs = _split_quoted(elements[-1], ";")
    certs: list[str] = []
    for pair in pairs:
        key, equals, raw = pair.strip().partition("=")
        if not equals:
            raise CertificateError("invalid_certificate_header", "XFCC pair without =")
        if key.strip().lower() == "cert":
            certs.append(_unquote(raw.strip()))
    if len(certs) > 1:
        raise CertificateError("invalid_certificate_header", "XFCC Cert repeated")
    if not certs or not certs[0]:
        return None
    return _from_escaped_pem(certs[0])


def _unquote(value: str) -> str:
    try:
        return unquote(value)
    except ValueError as error:
        raise CertificateError("invalid_certificate_header", str(error)) from None


def _split_quoted(text: str, separator: str) -> list[str]:
    try:
        return split_outside_quotes(text, separator)
    except ValueError as error:
        raise CertificateError("invalid_certificate_header", str(error)) from None
