"""Certificates, key rings and configs shared by the core tests."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

NOW = 1_800_000_000.0  # 2027-01-15, a fixed clock for every test

MakeCertificate = Callable[..., bytes]


def make_certificate(
    common_name: str = "webhooks.copyleaks.test",
    *,
    not_before: float = NOW - 86400,
    not_after: float = NOW + 86400 * 365,
) -> bytes:
    """Return a fresh self-signed certificate's DER with the given dates."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.fromtimestamp(not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(not_after, datetime.UTC))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(Encoding.DER)


def der_to_pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)


def sha1_hex(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest()


@pytest.fixture(scope="session")
def certificate_der() -> bytes:
    return make_certificate()


@pytest.fixture(scope="session")
def other_certificate_der() -> bytes:
    return make_certificate("intruder.test")


@pytest.fixture(scope="session")
def expired_certificate_der() -> bytes:
    return make_certificate(not_before=NOW - 86400 * 400, not_after=NOW - 86400)
