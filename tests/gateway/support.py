"""Helpers for gateway tests: certificates, configs, a gateway process.

Everything listens on loopback, on ports the kernel picked, and every
process started here is stopped by the fixture that started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from hookbouncer.emulator.certs import CertificateFiles, make_self_signed
from hookbouncer.emulator.sender import Sender
from hookbouncer.tokens import KeyRing

HOOKBOUNCER = str(Path(sys.executable).with_name("hookbouncer"))
PAYLOAD_SECRET = "plain-payload-secret-for-tests"
EXPORT_SECRET = "export-header-secret-for-tests"


@dataclass(frozen=True)
class PKI:
    directory: Path
    server: CertificateFiles
    client: CertificateFiles
    unpinned: CertificateFiles
    keyring: KeyRing
    keys_file: Path

    def sender(
        self,
        url: str,
        *,
        certificate: CertificateFiles | None = None,
        source: str | None = None,
        prefix: str = "/copyleaks",
    ) -> Sender:
        return Sender(
            url,
            server_certificate=self.server.certificate,
            client_certificate=certificate.certificate if certificate else None,
            client_key=certificate.private_key if certificate else None,
            source=source,
            prefix=prefix,
        )

    def seal(self, scan_id: str) -> str:
        return self.keyring.seal(scan_id, now=time.time())


def make_pki(directory: Path) -> PKI:
    keyring = KeyRing.generate(time.time())
    keys_file = directory / "payload-keys.json"
    directory.mkdir(parents=True, exist_ok=True)
    keyring.save(keys_file)
    (directory / "export-secrets.txt").write_text(EXPORT_SECRET + "\n")
    (directory / "payload-secrets.txt").write_text(PAYLOAD_SECRET + "\n")
    return PKI(
        directory=directory,
        server=make_self_signed(directory, "server", server=True),
        client=make_self_signed(directory, "client"),
        unpinned=make_self_signed(directory, "unpinned"),
        keyring=keyring,
        keys_file=keys_file,
    )


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def render_toml(document: Mapping[str, Any], prefix: str = "") -> str:
    """Render nested dicts of plain values as TOML tables."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            tables.append((f"{prefix}{key}", value))
        else:
            lines.append(f"{key} = {toml_value(value)}")
    text = "\n".join(lines) + "\n"
    for name, table in tables:
        text += f"\n[{name}]\n" + render_toml(table, f"{name}.")
    return text


def base_config(pki: PKI, state_dir: Path, **server: Any) -> dict[str, Any]:
    """A TLS gateway config: loopback ranges, the client pinned, sealed tokens."""
    config: dict[str, Any] = {
        "state_dir": state_dir,
        "server": {
            "listen": ["127.0.0.1:0"],
            "certificate": pki.server.certificate,
            "private_key": pki.server.private_key,
            "client_certificate": "request",
            "header_timeout": "2s",
            "body_timeout": "2s",
            "idle_timeout": "5s",
            "max_body_bytes": 65536,
            **server,
        },
        "admin": {"listen": "127.0.0.1:0"},
        "feeds": {
            # Nothing listens on port 1: refreshes fail and the extras stand.
            "api_base": "https://127.0.0.1:1",
            "retries": 0,
            "extra_ranges": ["127.0.0.1/32", "::1/128"],
            "extra_thumbprints": [pki.client.sha1],
        },
        "developer_payload": {"mode": "sealed", "keys_file": pki.keys_file},
        "header_secret": {"secrets_file": pki.directory / "export-secrets.txt"},
    }
    return config


def write_config(path: Path, document: Mapping[str, Any]) -> Path:
    path.write_text(render_toml(document))
    return path


class GatewayProcess:
    """`hookbouncer serve` in a subprocess, with its log in a file."""

    def __init__(
        self,
        config_path: Path,
        admin_port: int,
        log_path: Path,
        arguments: tuple[str, ...] = (),
    ) -> None:
        self.arguments = arguments
        self.config_path = config_path
        self.admin_port = admin_port
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    HOOKBOUNCER,
                    "serve",
                    "--config",
                    str(self.config_path),
                    *self.arguments,
                ],
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        self.wait_until_healthy()
        return self

    def wait_until_healthy(self) -> None:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.admin_port}/healthz"
        while self.process.poll() is None:
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError(f"gateway exited at startup:\n{self.log()}")

    def admin(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class Receiver:
    """A tiny HTTP application that stores every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, _, body in self.requests]


def tls_socket(
    pki: PKI, port: int, certificate: CertificateFiles | None = None
) -> ssl.SSLSocket:
    """Open a raw TLS connection to the gateway, for byte-level tests."""
    context = ssl.create_default_context(cafile=str(pki.server.certificate))
    if certificate is not None:
        context.load_cert_chain(
            str(certificate.certificate), str(certificate.private_key)
        )
    raw = socket.create_connection(("127.0.0.1", port))
    # A guard against a hung test, not a measurement: no assertion uses it.
    raw.settimeout(60)
    return context.wrap_socket(raw, server_hostname="localhost")


def read_until_closed(sock: socket.socket) -> bytes:
    """Read everything until the peer closes; a reset also ends the read."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def wait_for(condition: Any, *, attempts: int = 400) -> Any:
    """Poll `condition` until it returns a true value; return that value."""
    for _ in range(attempts):
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return condition()


def iterate_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith("{"):
            yield json.loads(line)
