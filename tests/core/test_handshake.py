"""A certificate from a real TLS handshake verifies end to end.

The handshake runs in memory (`ssl.MemoryBIO`), so no socket is opened;
the server side reads the client's leaf DER exactly as an adapter would.
"""

import hashlib
import ssl
from pathlib import Path

import trustme

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet
from hookbouncer.config import Config, RouteConfig, ServerConfig
from hookbouncer.policy import ConnectionFacts, Verifier
from hookbouncer.routes import match_route
from hookbouncer.trust import TrustSnapshot


def handshake_leaf_der(ca: trustme.CA, client_cert: trustme.LeafCert) -> bytes:
    server_cert = ca.issue_cert("gateway.test")
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    client_cert.configure_cert(client_context)

    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    from_server, from_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context.wrap_bio(to_server, from_server, server_side=True)
    client = client_context.wrap_bio(
        to_client, from_client, server_hostname="gateway.test"
    )
    done = {"server": False, "client": False}
    for _ in range(20):
        for name, side in (("client", client), ("server", server)):
            if not done[name]:
                try:
                    side.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        to_server.write(from_client.read())
        to_client.write(from_server.read())
        if all(done.values()):
            break
    assert all(done.values())
    der = server.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_handshake_certificate_verifies() -> None:
    ca = trustme.CA()
    client_cert = ca.issue_cert("webhooks.copyleaks.test")
    der = handshake_leaf_der(ca, client_cert)
    snapshot = TrustSnapshot(
        Allowlist([]), PinSet([hashlib.sha256(der).hexdigest()]), True, True
    )
    config = Config(
        server=ServerConfig(certificate=Path("s.pem"), private_key=Path("s.key")),
        routes={"status": RouteConfig(("client_certificate",))},
    )
    verifier = Verifier(config, lambda: snapshot, None)
    route = match_route("/copyleaks", "POST", "/copyleaks/completed/scan-1")
    decision = verifier.verify(
        route, ConnectionFacts("203.0.113.10", [], der), b'{"status": 0}'
    )
    assert decision.accepted
    assert decision.thumbprint == hashlib.sha256(der).hexdigest()


def test_handshake_other_certificate_rejected() -> None:
    ca = trustme.CA()
    pinned = handshake_leaf_der(ca, ca.issue_cert("webhooks.copyleaks.test"))
    presented = handshake_leaf_der(ca, ca.issue_cert("webhooks.copyleaks.test"))
    snapshot = TrustSnapshot(
        Allowlist([]), PinSet([hashlib.sha256(pinned).hexdigest()]), True, True
    )
    config = Config(
        server=ServerConfig(certificate=Path("s.pem"), private_key=Path("s.key")),
        routes={"status": RouteConfig(("client_certificate",))},
    )
    verifier = Verifier(config, lambda: snapshot, None)
    route = match_route("/copyleaks", "POST", "/copyleaks/completed/scan-1")
    decision = verifier.verify(
        route, ConnectionFacts("203.0.113.10", [], presented), b'{"status": 0}'
    )
    assert not decision.accepted
    assert decision.needs_feed_refresh
