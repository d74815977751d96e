"""The server side of TLS: one pyOpenSSL context, client certificates asked for.

Python's `ssl` module offers no verify callback, so a server built on it
must either reject self-signed client certificates or not ask for one.
Copyleaks signs with a self-signed certificate, so the gateway uses
pyOpenSSL under Twisted and installs a verify callback that accepts any
chain. The callback decides nothing about trust: the pin set is checked on
every request (`peer_certificate_der`), because a resumed session skips the
callback and a keep-alive connection can outlive the removal of a pin.

With `client_certificate = "require"` OpenSSL fails the handshake when the
client sends no certificate at all. With `"request"` the handshake goes on,
and the request is rejected later with a recorded reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer  # type: ignore[import-untyped]

from hookbouncer.errors import ConfigError

ClientCertificateMode = Literal["off", "request", "require"]

# Forward secrecy and AEAD only for TLS 1.2; TLS 1.3 keeps OpenSSL's suites.
TLS12_CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL:!SHA1"

# Sessions resumed from a ticket or the cache must carry the same context
# id, or OpenSSL aborts resumption of a session with a client certificate.
SESSION_ID_CONTEXT = b"hookbouncer"


def _accept_any_chain(
    connection: SSL.Connection,
    certificate: crypto.X509,
    error_number: int,
    depth: int,
    ok: int,
) -> bool:
    # Self-signed leaves (error 18) and unknown issuers are expected: the
    # pin set, checked per request, is the only judge of the certificate.
    return True


TLSPrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def load_private_key(path: Path) -> TLSPrivateKey:
    """Read an unencrypted PEM private key with `cryptography`.

    Loading it here, not with OpenSSL's file loader, means an encrypted key
    raises instead of OpenSSL prompting on the terminal, which would hang a
    service. Raises `OSError`, `ValueError` or `TypeError` (also for a key
    type that cannot sign a TLS handshake).
    """
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise TypeError(f"a {type(key).__name__} cannot sign a TLS handshake")
    return key


def validate_server_files(certificate: Path, private_key: Path, source: str) -> None:
    """Raise `ConfigError` naming the key unless the PEM files load and match.

    Run before anything starts, so a bad file stops `serve` with the usual
    configuration message instead of an OpenSSL traceback.
    """
    # Each file is loaded into a context of its own first, so a key that
    # does not match is distinguished from a key that cannot be read.
    loads = (
        ("server.certificate", certificate, "a PEM certificate chain"),
        ("server.private_key", private_key, "an unencrypted PEM private key"),
    )
    for key, path, expected in loads:
        if not path.is_file():
            raise ConfigError(
                f"{source}: {key} = {str(path)!r} is invalid: the file does not"
                " exist; check the path (relative paths start at the config"
                " file's folder)"
            )
        alone = SSL.Context(SSL.TLS_SERVER_METHOD)
        try:
            if key == "server.certificate":
                alone.use_certificate_chain_file(str(path))
            else:
                alone.use_privatekey(load_private_key(path))
        except (OSError, SSL.Error, ValueError, TypeError):
            raise ConfigError(
                f"{source}: {key} = {str(path)!r} is invalid: the file cannot be"
                f" read as {expected}"
            ) from None
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    try:
        context.use_certificate_chain_file(str(certificate))
        context.use_privatekey(load_private_key(private_key))
        context.check_privatekey()
    except SSL.Error:
        raise ConfigError(
            f"{source}: server.private_key = {str(private_key)!r} is invalid: it"
            f" does not match the certificate in {str(certificate)!r}"
        ) from None


def build_context(
    certificate: Path,
    private_key: Path,
    client_certificate: ClientCertificateMode,
) -> SSL.Context:
    """Build the server context: TLS 1.2 minimum, client certificate asked.

    Raises `SSL.Error`, `OSError`, `ValueError` or `TypeError` when the
    files cannot be loaded or the key does not match the certificate.
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    context.set_options(
        SSL.OP_NO_COMPRESSION
        | SSL.OP_CIPHER_SERVER_PREFERENCE
        | SSL.OP_NO_RENEGOTIATION
        | SSL.OP_SINGLE_ECDH_USE
    )
    # Idle keep-alive connections give their 16 KiB+ record buffers back.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    context.set_cipher_list(TLS12_CIPHERS)
    context.use_certificate_chain_file(str(certificate))
    context.use_privatekey(load_private_key(private_key))
    context.check_privatekey()
    context.set_session_id(SESSION_ID_CONTEXT)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    if client_certificate == "off":
        context.set_verify(SSL.VERIFY_NONE)
    elif client_certificate == "request":
        context.set_verify(SSL.VERIFY_PEER, _accept_any_chain)
    else:
        context.set_verify(
            SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_chain
        )
    return context


@implementer(IOpenSSLServerConnectionCreator)
class ServerConnectionCreator:
    """Hand Twisted's TLS layer a connection from one shared context."""

    def __init__(self, context: SSL.Context) -> None:
        self.context = context

    def serverConnectionForTLS(
        self, tlsProtocol: TLSMemoryBIOProtocol
    ) -> SSL.Connection:
        return SSL.Connection(self.context, None)


def peer_certificate_der(transport: object) -> bytes | None:
    """Return the client's leaf certificate as DER, or None without one.

    `transport` is the TLS transport under the HTTP protocol; a plain TCP
    transport has no `getPeerCertificate` and yields None.
    """
    get_certificate = getattr(transport, "getPeerCertificate", None)
    if get_certificate is None:
        return None
    certificate = get_certificate()
    if certificate is None:
        return None
    return crypto.dump_certificate(crypto.FILETYPE_ASN1, certificate)
