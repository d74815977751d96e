"""Connection-level behaviour, with the gateway in this process.

The reactor runs in a thread for the whole session. Each test builds a
`Gateway` from a written config, a real SQLite inbox and a trust snapshot
it can change while connections stay open, so pin removal, timeouts and
plain mode behind a proxy can be driven byte by byte.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from prometheus_client import REGISTRY
from twisted.internet import reactor as installed_reactor
from twisted.internet.threads import blockingCallFromThread

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet
from hookbouncer.config import load_config
from hookbouncer.feeds.validate import normalize_thumbprint
from hookbouncer.gateway.admin import Readiness
from hookbouncer.gateway.app import REACTOR_BODY_BYTES
from hookbouncer.gateway.server import Gateway
from hookbouncer.inbox import Inbox, open_inbox
from hookbouncer.policy import Verifier
from hookbouncer.tokens import KeyRing
from hookbouncer.trust import TrustSnapshot
from tests.gateway.support import (
    PKI,
    base_config,
    make_pki,
    read_until_closed,
    tls_socket,
    wait_for,
    write_config,
)

reactor: Any = installed_reactor


@pytest.fixture(scope="session")
def running_reactor() -> Iterator[Any]:
    thread = threading.Thread(
        target=reactor.run, kwargs={"installSignalHandlers": False}, daemon=True
    )
    thread.start()
    yield reactor
    reactor.callFromThread(reactor.stop)
    thread.join()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


class MutableTrust:
    """A trust source whose pins and ranges a test can change at run time."""

    def __init__(self, ranges: list[str], pins: list[str]) -> None:
        self.set(ranges, pins)

    def set(self, ranges: list[str], pins: list[str], *, loaded: bool = True) -> None:
        self.snapshot = TrustSnapshot(
            allowlist=Allowlist(ip_network(entry) for entry in ranges),
            pins=PinSet(normalize_thumbprint(pin) for pin in pins),
            ranges_loaded=loaded,
            pins_loaded=loaded,
        )

    def __call__(self) -> TrustSnapshot:
        return self.snapshot


@dataclass
class Running:
    gateway: Gateway
    trust: MutableTrust
    inbox: Inbox
    refreshes: list[int]

    @property
    def port(self) -> int:
        return int(self.gateway.addresses[0].rsplit(":", 1)[1])


@pytest.fixture
def start_gateway(
    running_reactor: Any, pki: PKI, tmp_path: Path
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(document: dict[str, Any] | None = None, **server: Any) -> Running:
        document = document or base_config(pki, tmp_path / "state", **server)
        config = load_config(write_config(tmp_path / "config.toml", document))
        trust = MutableTrust(["127.0.0.1/32", "::1/128"], [pki.client.sha1])
        inbox = open_inbox(config)
        refreshes: list[int] = []
        gateway = Gateway(
            config,
            verifier=Verifier(config, trust, KeyRing.load(pki.keys_file)),
            inbox=inbox,
            readiness=lambda: Readiness(ready=True),
            request_early_refresh=lambda: refreshes.append(1),
            reactor=running_reactor,
        )
        blockingCallFromThread(running_reactor, gateway.start)
        running = Running(gateway, trust, inbox, refreshes)
        started.append(running)
        return running

    yield start
    for running in started:
        blockingCallFromThread(running_reactor, running.gateway.stop, 1.0)
        running.inbox.close()


def tls_connections() -> float:
    value = REGISTRY.get_sample_value(
        "hookbouncer_connections_total", {"listener": "tls"}
    )
    return value or 0.0


def webhook_request(pki: PKI, scan_id: str, extra: bytes = b"") -> bytes:
    body = b'{"status": 3, "developerPayload": "%s"}' % pki.seal(scan_id).encode()
    return (
        b"POST /copyleaks/indexed/%s HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
        % (scan_id.encode(), len(body), extra, body)
    )


def read_response(sock: socket.socket) -> bytes:
    """Read one response with a Content-Length body from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_pin_removed_rejects_same_connection(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    accepted_before = tls_connections()
    url = f"https://127.0.0.1:{running.port}"
    with pki.sender(url, certificate=pki.client) as sender:
        first = sender.send("indexed", "keep-1", developer_payload=pki.seal("keep-1"))
        running.trust.set(["127.0.0.1/32"], [pki.unpinned.sha1])
        second = sender.send("indexed", "keep-2", developer_payload=pki.seal("keep-2"))
    assert first.status_code == 200
    assert second.status_code == 403
    # One TLS connection carried both requests.
    assert tls_connections() - accepted_before == 1


def test_pin_removed_rejects_on_raw_keep_alive(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(webhook_request(pki, "raw-1"))
        first = read_response(sock)
        running.trust.set(["127.0.0.1/32"], [])
        sock.sendall(webhook_request(pki, "raw-2"))
        second = read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 403 ")


def test_slow_header_client_cut_off(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway(header_timeout="0.3s")
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(b"POST /copyleaks/indexed/slow HTTP/1.1\r\nHost: local")
        answer = read_until_closed(sock)
    assert answer == b""


def test_silent_tcp_client_cut_off(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    # No TLS handshake at all: the header deadline covers the handshake too.
    running = start_gateway(header_timeout="0.3s")
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.settimeout(60)
        assert read_until_closed(sock) == b""


def test_slow_body_answered_408(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway(body_timeout="0.3s")
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(
            b"POST /copyleaks/indexed/slow-body HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_idle_keep_alive_closed(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway(idle_timeout="0.3s")
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(webhook_request(pki, "idle-1"))
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        assert read_until_closed(sock) == b""


def test_pipelined_requests_answered_in_order(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(webhook_request(pki, "pipe-1") + webhook_request(pki, "pipe-2"))
        first = read_response(sock)
        second = read_response(sock)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 200 ")
    assert {w.scan_id for w in running.inbox.list()} >= {"pipe-1", "pipe-2"}


def test_oversized_header_block_rejected(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(
            b"POST /copyleaks/indexed/x HTTP/1.1\r\nHost: localhost\r\n"
            + b"X-Pad: "
            + b"a" * 40_000
            + b"\r\n\r\n"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("padding", [17_000, 30_000])
def test_header_block_arriving_whole_rejected(
    start_gateway: Callable[..., Running], pki: PKI, padding: int
) -> None:
    """A block under one TLS record reaches h11 complete; it is measured too."""
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(
            b"POST /copyleaks/indexed/x HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(
                b"X-Pad-%d: %s\r\n" % (n, b"a" * 100) for n in range(padding // 110)
            )
            + b"Content-Length: 2\r\n\r\n{}"
        )
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_head_answered_without_body(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(b"HEAD /copyleaks/indexed/x HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ")
    assert body == b""


def test_admin_head_answered_without_body(
    start_gateway: Callable[..., Running],
) -> None:
    running = start_gateway()
    address = running.gateway.admin_address
    assert address is not None
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(
            b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        answer = read_until_closed(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert body == b""


def test_garbage_request_answered_400(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(b"\x00\x01 not http at all\r\n\r\n")
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ")


def handshake_failures() -> float:
    value = REGISTRY.get_sample_value("hookbouncer_tls_handshake_failures_total")
    return value or 0.0


def test_require_mode_fails_handshake_without_cert(
    start_gateway: Callable[..., Running],
    pki: PKI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No earlier failure in this process may hold back this test's line.
    monkeypatch.setattr("hookbouncer.gateway.http.HANDSHAKE_LOG_INTERVAL", 0.0)
    running = start_gateway(client_certificate="require")
    before = handshake_failures()
    failures = (ssl.SSLError, ConnectionResetError, BrokenPipeError)
    with caplog.at_level("WARNING", logger="hookbouncer.gateway"):
        with pytest.raises(failures), tls_socket(pki, running.port, None) as sock:
            # TLS 1.3 reports the missing certificate on the first read.
            sock.sendall(webhook_request(pki, "no-cert"))
            if not sock.recv(1):
                raise ConnectionResetError("closed without an answer")
        # The failure is counted and logged, so a sender that stops
        # presenting its certificate is visible to operators.
        assert wait_for(lambda: handshake_failures() > before)
        assert wait_for(lambda: "TLS handshake failed from 127.0.0.1" in caplog.text)


def test_stalled_handshake_counted(
    start_gateway: Callable[..., Running],
    pki: PKI,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("hookbouncer.gateway.http.HANDSHAKE_LOG_INTERVAL", 0.0)
    running = start_gateway(header_timeout="200ms")
    before = handshake_failures()
    with caplog.at_level("WARNING", logger="hookbouncer.gateway"):
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello
            sock.settimeout(30)
            # The gateway aborts the connection, so the read sees a reset.
            with pytest.raises(ConnectionResetError):
                sock.recv(1)
        assert wait_for(lambda: handshake_failures() > before)
        assert wait_for(lambda: "not finished within header_timeout" in caplog.text)


def test_require_mode_accepts_pinned_cert(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway(client_certificate="require")
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send(
            "indexed", "req-ok", developer_payload=pki.seal("req-ok")
        )
    assert response.status_code == 200


def test_missing_pin_asks_early_refresh(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    running.trust.set(["127.0.0.1/32"], [pki.unpinned.sha1])
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send(
            "indexed", "refresh", developer_payload=pki.seal("refresh")
        )
    assert response.status_code == 403
    assert running.refreshes == [1]


@pytest.mark.parametrize(
    ("ranges", "pin_client", "token_scan"),
    [
        # Neither connection check passed: the body is not even read.
        (["192.0.2.0/24"], False, "refresh"),
        # The address is listed but the token is wrong: not a rotation.
        (["127.0.0.1/32"], False, "another-scan"),
    ],
)
def test_forgery_does_not_ask_refresh(
    start_gateway: Callable[..., Running],
    pki: PKI,
    ranges: list[str],
    pin_client: bool,
    token_scan: str,
) -> None:
    running = start_gateway()
    pin = pki.client.sha1 if pin_client else pki.unpinned.sha1
    running.trust.set(ranges, [pin])
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send(
            "indexed", "refresh", developer_payload=pki.seal(token_scan)
        )
    assert response.status_code == 403
    assert running.refreshes == []


def test_route_without_body_check_does_not_ask_refresh(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    """Any certificate from a listed address would otherwise ask for one."""
    document = base_config(pki, tmp_path / "state")
    document["routes"] = {
        route: {"checks": ["source_ip", "client_certificate"]}
        for route in ("status", "new_result", "export")
    }
    running = start_gateway(document)
    running.trust.set(["127.0.0.1/32"], [pki.unpinned.sha1])
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send("indexed", "no-body-check")
    assert response.status_code == 403
    assert running.refreshes == []


def test_lists_not_loaded_answered_503(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    running.trust.set([], [], loaded=False)
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send(
            "indexed", "unloaded", developer_payload=pki.seal("unloaded")
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert running.inbox.list() == []


# -- plain mode behind a TLS terminator --


def plain_config(pki: PKI, state: Path, **server: Any) -> dict[str, Any]:
    document = base_config(pki, state)
    document["server"] = {
        "mode": "plain",
        "listen": ["127.0.0.1:0"],
        "trusted_proxies": ["127.0.0.1/32"],
        "forwarded_certificate": "nginx",
        "header_timeout": "2s",
        "body_timeout": "2s",
        "idle_timeout": "5s",
        "max_body_bytes": 65536,
        **server,
    }
    document["feeds"]["extra_ranges"] = ["198.51.100.0/24"]
    return document


def nginx_headers(pki: PKI, client: str) -> list[tuple[str, str]]:
    pem = pki.client.certificate.read_text()
    return [("X-SSL-Client-Cert", quote(pem)), ("X-Forwarded-For", client)]


def test_plain_mode_trusts_forwarded_cert(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    running = start_gateway(plain_config(pki, tmp_path / "state"))
    running.trust.set(["198.51.100.0/24"], [pki.client.sha1])
    with pki.sender(f"http://127.0.0.1:{running.port}") as sender:
        response = sender.send(
            "indexed",
            "via-nginx",
            developer_payload=pki.seal("via-nginx"),
            headers=nginx_headers(pki, "198.51.100.7"),
        )
    assert response.status_code == 200
    stored = [w for w in running.inbox.list() if w.scan_id == "via-nginx"]
    assert stored[0].client_address == "198.51.100.7"


def test_plain_mode_ignores_headers_from_untrusted_peer(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    running = start_gateway(plain_config(pki, tmp_path / "state"))
    running.trust.set(["198.51.100.0/24", "127.0.0.2/32"], [pki.client.sha1])
    sender = pki.sender(f"http://127.0.0.1:{running.port}", source="127.0.0.2")
    with sender:
        response = sender.send(
            "indexed",
            "spoofed",
            developer_payload=pki.seal("spoofed"),
            headers=nginx_headers(pki, "198.51.100.7"),
        )
    assert response.status_code == 403
    assert "spoofed" not in {w.scan_id for w in running.inbox.list()}


def send_with_proxy_header(
    port: int, pki: PKI, scan_id: str, extra: bytes, source: str = "127.0.0.1"
) -> bytes:
    with socket.create_connection(
        ("127.0.0.1", port), source_address=(source, 0)
    ) as sock:
        sock.settimeout(60)
        sock.sendall(
            b"PROXY TCP4 198.51.100.9 127.0.0.1 50000 443\r\n"
            + webhook_request(pki, scan_id, extra)
        )
        return read_response(sock)


def test_plain_mode_reads_proxy_protocol(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    document = plain_config(pki, tmp_path / "state", proxy_protocol=True)
    document["routes"] = {"status": {"checks": ["source_ip", "developer_payload"]}}
    running = start_gateway(document)
    running.trust.set(["198.51.100.0/24"], [pki.client.sha1])
    answer = send_with_proxy_header(running.port, pki, "via-proxy", b"")
    assert answer.startswith(b"HTTP/1.1 200 ")
    stored = [w for w in running.inbox.list() if w.scan_id == "via-proxy"]
    assert stored[0].client_address == "198.51.100.9"


def test_proxy_header_from_untrusted_peer_ignored(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    document = plain_config(pki, tmp_path / "state", proxy_protocol=True)
    document["routes"] = {"status": {"checks": ["source_ip", "developer_payload"]}}
    running = start_gateway(document)
    running.trust.set(["198.51.100.0/24"], [pki.client.sha1])
    answer = send_with_proxy_header(running.port, pki, "proxy-spoof", b"", "127.0.0.2")
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert "proxy-spoof" not in {w.scan_id for w in running.inbox.list()}


def test_proxy_protocol_client_cert_header_ignored(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    # Behind a TCP balancer the HTTP headers come from the client itself,
    # so a certificate header there must not count.
    running = start_gateway(plain_config(pki, tmp_path / "state", proxy_protocol=True))
    running.trust.set(["198.51.100.0/24"], [pki.client.sha1])
    pem = quote(pki.client.certificate.read_text()).encode()
    extra = b"X-SSL-Client-Cert: " + pem + b"\r\n"
    answer = send_with_proxy_header(running.port, pki, "proxy-cert", extra)
    assert answer.startswith(b"HTTP/1.1 403 ")


def test_invalid_proxy_header_closes(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    running = start_gateway(plain_config(pki, tmp_path / "state", proxy_protocol=True))
    with socket.create_connection(("127.0.0.1", running.port)) as sock:
        sock.settimeout(60)
        sock.sendall(webhook_request(pki, "no-proxy-header"))
        assert read_until_closed(sock) == b""


def test_plain_mode_on_unix_socket(
    start_gateway: Callable[..., Running], pki: PKI, tmp_path: Path
) -> None:
    path = tmp_path / "gateway.sock"
    document = plain_config(pki, tmp_path / "state", listen=[f"unix:{path}"])
    running = start_gateway(document)
    running.trust.set(["198.51.100.0/24"], [pki.client.sha1])
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport) as client:
        response = client.post(
            "http://gateway/copyleaks/indexed/via-unix",
            json={"status": 3, "developerPayload": pki.seal("via-unix")},
            headers=dict(nginx_headers(pki, "198.51.100.8")),
        )
    assert running.gateway.addresses == [f"unix:{path}"]
    assert response.status_code == 200


def test_long_pipeline_answered_in_full(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    # More than 64 KiB sent ahead makes the gateway pause reading and resume.
    running = start_gateway()
    padding = b"X-Pad: " + b"p" * 2000 + b"\r\n"
    requests = [webhook_request(pki, f"burst-{n}", padding) for n in range(60)]
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(b"".join(requests))
        answers = [read_response(sock) for _ in requests]
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers)
    stored = {w.scan_id for w in running.inbox.list(limit=100)}
    assert {f"burst-{n}" for n in range(60)} <= stored


def test_bug_in_body_checks_answered_403(
    start_gateway: Callable[..., Running],
    pki: PKI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = start_gateway()

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in the checks")

    monkeypatch.setattr(running.gateway.application.verifier, "check_body", broken)
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send("indexed", "bug", developer_payload=pki.seal("bug"))
    assert response.status_code == 403
    assert "deciding on a request failed unexpectedly" in caplog.text


def test_bug_in_routing_answered_403(
    start_gateway: Callable[..., Running],
    pki: PKI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = start_gateway()

    def broken(*args: object) -> None:
        raise RuntimeError("a bug in routing")

    monkeypatch.setattr(running.gateway.application, "begin", broken)
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(webhook_request(pki, "routing-bug"))
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 403 ")
    assert "handling a request failed unexpectedly" in caplog.text


def test_partial_pipelined_header_cut_off(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    # The second request's header block never completes. The header
    # deadline must close the connection: waiting for the hour-long idle
    # one would trip the socket's guard timeout and fail the test.
    running = start_gateway(header_timeout="0.3s", idle_timeout="1h")
    with tls_socket(pki, running.port, pki.client) as sock:
        sock.sendall(webhook_request(pki, "partial-1") + b"POST /copyleaks/ind")
        first = read_response(sock)
        rest = read_until_closed(sock)
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest == b""


def test_small_body_skips_pool_large_uses_it(
    start_gateway: Callable[..., Running],
    pki: PKI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bodies up to REACTOR_BODY_BYTES are checked on the reactor thread and
    # committed by the inbox writer; larger ones go through the pool.
    running = start_gateway(max_body_bytes=4 * REACTOR_BODY_BYTES)
    pool = running.gateway.pool
    pooled: list[str] = []
    run = pool.run

    def counting_run(function: Callable[..., Any], *args: Any) -> Any:
        pooled.append(function.__name__)
        return run(function, *args)

    monkeypatch.setattr(pool, "run", counting_run)
    padding = "x" * (2 * REACTOR_BODY_BYTES)
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        small = sender.send("indexed", "small", developer_payload=pki.seal("small"))
        assert pooled == []
        body = json.dumps(
            {"status": 3, "developerPayload": pki.seal("large"), "pad": padding}
        ).encode()
        large = sender.send("indexed", "large", body=body)
    assert small.status_code == 200
    assert large.status_code == 200
    assert pooled == ["decide_and_record"]
    stored = {webhook.scan_id: webhook for webhook in running.inbox.list()}
    assert set(stored) == {"small", "large"}
    assert stored["large"].body_size == len(body)


def test_closed_inbox_answered_503(
    start_gateway: Callable[..., Running], pki: PKI
) -> None:
    running = start_gateway()
    running.inbox.close()
    with pki.sender(
        f"https://127.0.0.1:{running.port}", certificate=pki.client
    ) as sender:
        response = sender.send(
            "indexed", "closed", developer_payload=pki.seal("closed")
        )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
