"""Cost of verifying one webhook request, against `json.loads` of its body.

Usage: .venv/bin/python bench/verify_request.py [--rounds 5]

For three body sizes (an `indexed` webhook, a `completed` webhook with 50
results, one with 5,000 results) this times, in the same process:

- `json.loads(body)`: the baseline any receiver pays;
- `parse_body(body)`: the strict parse (duplicate keys, depth, UTF-8);
- `check_connection`: source_ip (via a trusted proxy's X-Forwarded-For)
  and client_certificate (SHA-1 and SHA-256 of a real DER, plus dates);
- `verify`: every check, including opening a sealed developerPayload.

The allowlist contains 200 prefixes. Only `time.perf_counter` is used.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet, thumbprints
from hookbouncer.config import Config, DeveloperPayloadConfig, ServerConfig
from hookbouncer.payload import parse_body
from hookbouncer.policy import ConnectionFacts, Verifier
from hookbouncer.routes import match_route
from hookbouncer.tokens import KeyRing
from hookbouncer.trust import TrustSnapshot

NOW = time.time()
SENDER = "203.0.113.10"


def certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    moment = datetime.datetime.fromtimestamp(NOW, datetime.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(moment - datetime.timedelta(days=1))
        .not_valid_after(moment + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return built.public_bytes(Encoding.DER)


def webhook_body(results: int, token: str) -> bytes:
    if results == 0:
        return json.dumps({"status": 3, "developerPayload": token}).encode()
    match = {
        "id": "2a1b402420",
        "title": "A page that matched",
        "introduction": "Lorem ipsum dolor sit amet, consectetur adipiscing elit",
        "url": "https://example.com/some/page",
        "matchedWords": 120,
        "score": {
            "identicalWords": 100,
            "minorChangedWords": 15,
            "relatedMeaningWords": 5,
            "aggregatedScore": 12.5,
        },
    }
    document = {
        "status": 0,
        "developerPayload": token,
        "scannedDocument": {
            "scanId": "scan-1",
            "totalWords": 5000,
            "totalExcluded": 0,
            "credits": 4,
            "expectedCredits": 4,
            "creationTime": "2026-12-04T16:00:00Z",
            "metadata": {"filename": "essay.docx"},
        },
        "results": {
            "internet": [dict(match, id=str(i)) for i in range(results)],
            "database": [],
            "batch": [],
            "repositories": [],
        },
        "notifications": {"alerts": []},
    }
    return json.dumps(document).encode()


def microseconds(action: Callable[[], object], rounds: int) -> float:
    """Best-of-rounds time of one call, in microseconds."""
    best = float("inf")
    for _ in range(rounds):
        repeat = 1
        while True:
            start = time.perf_counter()
            for _ in range(repeat):
                action()
            elapsed = time.perf_counter() - start
            if elapsed > 0.2:
                break
            repeat *= 2
        best = min(best, elapsed / repeat)
    return best * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; best is kept")
    args = parser.parse_args(argv)

    rng = random.Random(1)
    networks = [
        ipaddress.IPv4Network((rng.getrandbits(32), 24), strict=False)
        for _ in range(199)
    ]
    networks.append(ipaddress.IPv4Network("203.0.113.0/24"))
    der = certificate()
    snapshot = TrustSnapshot(
        Allowlist(networks), PinSet([thumbprints(der).sha1]), True, True
    )
    ring = KeyRing.generate(NOW)
    config = Config(
        server=ServerConfig(
            certificate=Path("server.pem"),
            private_key=Path("server.key"),
            trusted_proxies=("10.0.0.0/8",),
        ),
        developer_payload=DeveloperPayloadConfig(mode="sealed"),
    )
    verifier = Verifier(config, lambda: snapshot, ring)
    route = match_route("/copyleaks", "POST", "/copyleaks/completed/scan-1")
    headers = [("host", "hooks.example.com"), ("x-forwarded-for", SENDER)]
    facts = ConnectionFacts("10.0.0.2", headers, der)
    token = ring.seal("scan-1", "order=42", now=NOW)

    print(f"python {platform.python_version()} on {platform.machine()}")
    print(
        f"{'body':>16} {'bytes':>9} {'json.loads':>11} {'parse_body':>11}"
        f" {'connection':>11} {'verify':>9} {'verify/json':>12}"
    )
    for label, results in (
        ("indexed", 0),
        ("completed 50", 50),
        ("completed 5k", 5000),
    ):
        body = webhook_body(results, token)
        decision = verifier.verify(route, facts, body)
        if not decision.accepted:
            print(f"setup error: {decision.failures}", file=sys.stderr)
            return 1
        baseline = microseconds(lambda body=body: json.loads(body), args.rounds)
        strict = microseconds(lambda body=body: parse_body(body), args.rounds)
        connection = microseconds(
            lambda: verifier.check_connection(route, facts), args.rounds
        )
        full = microseconds(
            lambda body=body: verifier.verify(route, facts, body), args.rounds
        )
        print(
            f"{label:>16} {len(body):>9,} {baseline:>9.1f}us {strict:>9.1f}us"
            f" {connection:>9.1f}us {full:>7.1f}us {full / baseline:>11.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
