"""A throwaway CA and server certificate for the emulator's HTTPS servers.

The CA signs one server certificate for `localhost`, 127.0.0.1 and ::1.
Clients trust the emulator by loading `ca_pem` as their CA bundle (the
`feeds.ca_bundle` setting), so certificate verification stays on. Keys
are ECDSA P-256 and live only in memory and in short-lived temporary
files while the SSL context loads them. Nothing here is for production.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_FOR = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ServerCredentials:
    """PEM bytes of a CA certificate and a server certificate it signed."""

    ca_pem: bytes
    certificate_pem: bytes
    private_key_pem: bytes

    def write_ca(self, path: Path) -> Path:
        """Write the CA certificate to `path` for use as a CA bundle."""
        path.write_bytes(self.ca_pem)
        return path

    def server_context(self) -> ssl.SSLContext:
        """Build a TLS server context presenting the server certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        with tempfile.TemporaryDirectory() as directory:
            chain = Path(directory) / "server.pem"
            key = Path(directory) / "server.key"
            chain.write_bytes(self.certificate_pem)
            key.write_bytes(self.private_key_pem)
            context.load_cert_chain(chain, key)
        return context


def make_server_credentials(
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "::1"),
) -> ServerCredentials:
    """Generate a CA and a server certificate for `hosts`."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "emulator server")])
        )
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ServerCredentials(
        ca_pem=ca.public_bytes(serialization.Encoding.PEM),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
