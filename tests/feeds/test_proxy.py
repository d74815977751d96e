"""Fetching through an HTTPS_PROXY tunnel keeps certificate checks."""

from __future__ import annotations

import select
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import trustme

from hookbouncer.config import Config
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.manager import FeedManager


class _Tunnel(socketserver.StreamRequestHandler):
    """A minimal CONNECT proxy: one tunnel per connection."""

    server: _Proxy

    def handle(self) -> None:
        request = self.rfile.readline().decode("latin-1").split()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        if len(request) < 2 or request[0] != "CONNECT":
            self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            return
        host, _, port = request[1].rpartition(":")
        self.server.targets.append(request[1])
        with socket.create_connection((host.strip("[]"), int(port))) as upstream:
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            self._pipe(self.connection, upstream)

    @staticmethod
    def _pipe(client: socket.socket, upstream: socket.socket) -> None:
        sockets = [client, upstream]
        while True:
            readable, _, _ = select.select(sockets, [], [], 5.0)
            if not readable:
                return
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is client else client).sendall(data)


class _Proxy(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.targets: list[str] = []


@pytest.fixture
def proxy() -> Iterator[_Proxy]:
    server = _Proxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_fetch_through_https_proxy(
    api: SecurityAPI,
    proxy: _Proxy,
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    manager = FeedManager(make_config())

    outcome = manager.refresh()

    assert outcome.ok
    assert proxy.targets == [f"127.0.0.1:{api.port}"] * 2
    manager.close()


def test_proxy_cannot_bypass_certificate_check(
    api: SecurityAPI,
    proxy: _Proxy,
    make_config: Callable[..., Config],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    manager = FeedManager(make_config(ca_bundle=other_ca))

    outcome = manager.refresh()

    assert outcome["ranges"].reason == "tls"
    manager.close()
