"""Throwaway certificates for the emulator, the demo and the tests.

Copyleaks signs its webhook requests with a self-signed client certificate
and publishes only its thumbprint, so the emulator does the same: every
certificate made here is self-signed, with no CA. The server certificate
names `localhost`, 127.0.0.1 and ::1, so a client can trust it by loading
the certificate file itself as its CA bundle.

Keys are ECDSA P-256: quick to generate and to handshake with. Nothing here
is meant for production use.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key written as PEM files."""

    certificate: Path
    private_key: Path
    sha1: str
    sha256: str

    @property
    def der(self) -> bytes:
        return certificate_der(self.certificate)


def sha1_thumbprint(der: bytes) -> str:
    """Return the SHA-1 of a DER certificate as 40 uppercase hex digits.

    This is the .NET form that Copyleaks publishes in its feed.
    """
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


def sha256_thumbprint(der: bytes) -> str:
    return hashlib.sha256(der).hexdigest().upper()


def certificate_der(path: Path) -> bytes:
    """Read the first PEM certificate in `path` and return it as DER."""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.public_bytes(serialization.Encoding.DER)


def make_self_signed(
    directory: Path,
    name: str,
    *,
    server: bool = False,
    valid_days: int = 30,
    not_before: datetime.datetime | None = None,
) -> CertificateFiles:
    """Generate a self-signed certificate and key as `name.pem`, `name.key`.

    A server certificate carries `localhost`, 127.0.0.1 and ::1 as subject
    alternative names and the serverAuth usage; a client certificate the
    clientAuth usage. `not_before` lets tests make an expired certificate.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = not_before or datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        minutes=5
    )
    usage = (
        ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
    certificate = builder.sign(key, hashes.SHA256())
    directory.mkdir(parents=True, exist_ok=True)
    certificate_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    return CertificateFiles(
        certificate=certificate_path,
        private_key=key_path,
        sha1=sha1_thumbprint(der),
        sha256=sha256_thumbprint(der),
    )
