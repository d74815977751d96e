"""The demo: emulated Copyleaks, the gateway and an application, end to end.

Everything runs on loopback with throwaway keys and certificates in a
temporary folder. The emulator serves the two security feeds over HTTPS,
and `hookbouncer sync` and `hookbouncer serve` run as real subprocesses
against it. A small application receives the relayed webhooks and checks
their Standard Webhooks signatures. The demo then sends genuine webhooks and each
kind of forgery, prints what happened and why, and returns whether every
outcome was the expected one.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx
import standardwebhooks

from hookbouncer.emulator.certs import CertificateFiles, make_self_signed
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.emulator.sender import Sender, build_payload
from hookbouncer.inbox import open_inbox_url
from hookbouncer.tokens import KeyRing

SCAN_ID = "demo-scan-1"
EXPORT_ID = "demo-export-1"
MAX_BODY_BYTES = 64 * 1024
STARTUP_SECONDS = 30.0
DELIVERY_SECONDS = 20.0


# The meaning of each other status. A 403 shows the reasons from its
# rejection record instead.
STATUS_MEANINGS = {
    "200": "verified, and in the inbox before the answer",
    "400": "malformed body",
    "404": "no such route",
    "405": "only POST is allowed",
    "413": f"body over max_body_bytes ({MAX_BODY_BYTES})",
}


@dataclass
class Outcome:
    """One scenario's result, as the table prints it."""

    name: str
    expected: str
    actual: str
    reasons: str = ""

    @property
    def passed(self) -> bool:
        return self.expected == self.actual


@dataclass
class ReceivingApp:
    """A minimal application that verifies and counts relayed webhooks."""

    secret: str
    received: list[tuple[str, str]] = field(default_factory=list)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self) -> http.server.ThreadingHTTPServer:
        app = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                try:
                    standardwebhooks.Webhook(app.secret).verify(
                        body, dict(self.headers.items())
                    )
                except standardwebhooks.WebhookVerificationError:
                    with app.lock:
                        app.bad_signatures += 1
                    self.send_response(400)
                    self.end_headers()
                    return
                event = self.headers.get("x-hookbouncer-event", "")
                scan_id = self.headers.get("x-hookbouncer-scan-id", "")
                with app.lock:
                    app.received.append((event, scan_id))
                self.send_response(204)
                self.end_headers()

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hookbouncer_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "hookbouncer", *arguments]


@dataclass
class DemoFiles:
    folder: Path
    server: CertificateFiles
    sender: CertificateFiles
    forger: CertificateFiles
    keyring: KeyRing
    export_token: str
    relay_secret: str
    config: Path


def write_files(
    folder: Path, api: SecurityAPI, app_url: str, relay_secret: str
) -> DemoFiles:
    """Create certificates, the key ring, secret files and the config."""
    server = make_self_signed(folder, "gateway", server=True)
    sender = make_self_signed(folder, "copyleaks-sender")
    forger = make_self_signed(folder, "forger")
    keyring = KeyRing.generate(time.time())
    keyring.save(folder / "payload-keys.json")
    export_token = secrets.token_urlsafe(32)
    (folder / "header-secrets").write_text(export_token + "\n")
    (folder / "relay-secret").write_text(relay_secret + "\n")
    (folder / "feeds-ca.pem").write_bytes(api.ca_pem)
    config = folder / "hookbouncer.toml"
    config.write_text(
        f"""\
state_dir = "{folder / "state"}"

[server]
listen = ["127.0.0.1:{free_port()}"]
certificate = "{server.certificate}"
private_key = "{server.private_key}"
client_certificate = "require"
max_body_bytes = {MAX_BODY_BYTES}

[admin]
listen = "127.0.0.1:{free_port()}"

[feeds]
api_base = "{api.url}"
ca_bundle = "feeds-ca.pem"
retries = 0

[developer_payload]
mode = "sealed"
keys_file = "payload-keys.json"

[header_secret]
secrets_file = "header-secrets"

[relay]
url = "{app_url}"
signing_secret_file = "relay-secret"
backoff_initial = "100ms"
"""
    )
    return DemoFiles(
        folder, server, sender, forger, keyring, export_token, relay_secret, config
    )


def read_listen(config: Path, section: str) -> str:
    for line in config.read_text().split(f"[{section}]", 1)[1].splitlines():
        if line.startswith("listen"):
            return line.split('"')[1]
    raise ValueError(f"no listen address in [{section}]")


@contextlib.contextmanager
def running_gateway(files: DemoFiles, log: TextIO) -> Iterator[str]:
    """Start `hookbouncer serve`, wait until ready, yield its base URL."""
    process = subprocess.Popen(
        hookbouncer_command("serve", "--config", str(files.config)),
        stdout=log,
        stderr=log,
    )
    admin = read_listen(files.config, "admin")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"hookbouncer serve exited with {process.returncode};"
                    f" see {log.name}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{admin}/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"hookbouncer serve was not ready; see {log.name}")
            time.sleep(0.1)
        yield "https://" + read_listen(files.config, "server")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Scenarios:
    """Each genuine and forged webhook the demo sends, with its expectation."""

    def __init__(self, files: DemoFiles, base_url: str) -> None:
        self.files = files
        self.base_url = base_url
        self.inbox = open_inbox_url(f"sqlite:///{files.folder / 'state' / 'inbox.db'}")
        self.seen_rejection = 0

    def sender(
        self, *, source: str = "127.0.0.1", certificate: CertificateFiles | None
    ) -> Sender:
        return Sender(
            self.base_url,
            server_certificate=self.files.server.certificate,
            client_certificate=certificate.certificate if certificate else None,
            client_key=certificate.private_key if certificate else None,
            source=source,
        )

    def token(self, scan_id: str = SCAN_ID) -> str:
        return self.files.keyring.seal(scan_id, "order=42", now=time.time())

    def run(self) -> list[Outcome]:
        genuine = self.files.sender
        token = self.token()
        bearer = [("authorization", f"Bearer {self.files.export_token}")]
        cases: list[tuple[str, str, Callable[[], httpx.Response]]] = []

        def add(name: str, expected: str, send: Callable[[], httpx.Response]) -> None:
            cases.append((name, expected, send))

        def post(
            event: str,
            *,
            scan_id: str = SCAN_ID,
            source: str = "127.0.0.1",
            certificate: CertificateFiles | None = genuine,
            payload: str | None = token,
            headers: list[tuple[str, str]] | None = None,
            body: bytes | None = None,
            path: str | None = None,
        ) -> Callable[[], httpx.Response]:
            def send() -> httpx.Response:
                with self.sender(source=source, certificate=certificate) as client:
                    return client.send(
                        event,
                        scan_id,
                        developer_payload=payload,
                        headers=headers or [],
                        body=body,
                        path=path,
                    )

            return send

        # Copyleaks resends the same bytes, and the emulator stamps each new
        # payload with the time, so the repeat reuses the first body.
        completed = json.dumps(build_payload("completed", SCAN_ID, token)).encode()
        add("genuine completed", "200", post("completed", body=completed))
        add("genuine error", "200", post("error"))
        add(
            "genuine creditsChecked, lowercase path",
            "200",
            post("creditsChecked", path=f"/copyleaks/creditschecked/{SCAN_ID}"),
        )
        add("genuine indexed", "200", post("indexed"))
        add("genuine new-result", "200", post("new-result"))
        add(
            "genuine export-completed",
            "200",
            post("export-completed", scan_id=EXPORT_ID, headers=bearer),
        )
        add("repeated delivery of completed", "200", post("completed", body=completed))
        add("wrong source address", "403", post("completed", source="127.0.0.2"))
        add(
            "no client certificate",
            "handshake rejected",
            post("completed", certificate=None),
        )
        add(
            "unpinned client certificate",
            "403",
            post("completed", certificate=self.files.forger),
        )
        add("wrong developerPayload", "403", post("completed", payload="let-me-in"))
        add(
            "token for another scan",
            "403",
            post("completed", payload=self.token("another-scan")),
        )
        add(
            "spoofed X-Forwarded-For",
            "403",
            post(
                "completed",
                source="127.0.0.2",
                headers=[("x-forwarded-for", "127.0.0.1")],
            ),
        )
        add(
            "export without bearer token",
            "403",
            post("export-completed", scan_id=EXPORT_ID),
        )
        duplicate = (
            b'{"status": 0, "developerPayload": "' + token.encode() + b'",'
            b' "developerPayload": "forged"}'
        )
        add("duplicate JSON keys", "400", post("completed", body=duplicate))
        oversized = b'{"padding": "' + b"x" * (MAX_BODY_BYTES + 1024) + b'"}'
        add("oversized body", "413", post("completed", body=oversized))
        add("wrong method", "405", self.wrong_method)
        add("unknown path", "404", post("completed", path="/copyleaks/nowhere"))

        return [self.attempt(name, expected, send) for name, expected, send in cases]

    def wrong_method(self) -> httpx.Response:
        with self.sender(certificate=self.files.sender) as client:
            return client.send("completed", SCAN_ID, method="GET", body=b"")

    def attempt(
        self, name: str, expected: str, send: Callable[[], httpx.Response]
    ) -> Outcome:
        try:
            response = send()
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError):
            return Outcome(name, expected, "handshake rejected", "TLS alert")
        actual = str(response.status_code)
        if actual == "403":
            reasons = self.new_rejection_reasons()
        else:
            reasons = STATUS_MEANINGS.get(actual, "")
        return Outcome(name, expected, actual, reasons)

    def new_rejection_reasons(self) -> str:
        """Return the reasons of the rejection recorded since the last call."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            latest = self.inbox.list_rejections(limit=1)
            if latest and latest[0].id > self.seen_rejection:
                self.seen_rejection = latest[0].id
                return ", ".join(latest[0].reasons)
            time.sleep(0.05)
        return "(no rejection record)"


def wait_for_deliveries(app: ReceivingApp, expected: int) -> None:
    deadline = time.monotonic() + DELIVERY_SECONDS
    while time.monotonic() < deadline:
        with app.lock:
            if len(app.received) >= expected:
                break
        time.sleep(0.1)
    time.sleep(0.5)  # give a wrong extra delivery the chance to show up


def print_table(outcomes: list[Outcome], out: TextIO) -> None:
    width = max(len(outcome.name) for outcome in outcomes)
    out.write(f"{'scenario':<{width}}  {'expected':<18}  {'actual':<18}  reasons\n")
    for outcome in outcomes:
        mark = "" if outcome.passed else "   <-- WRONG"
        out.write(
            f"{outcome.name:<{width}}  {outcome.expected:<18}  {outcome.actual:<18}"
            f"  {outcome.reasons}{mark}\n"
        )


def run_demo(folder: Path, out: TextIO = sys.stdout) -> bool:
    """Run the whole demo in `folder`; return True if every outcome was right."""
    relay_secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    app = ReceivingApp(secret=relay_secret)
    application = app.serve()
    app_url = f"http://127.0.0.1:{application.server_address[1]}/copyleaks"
    with SecurityAPI() as api:
        files = write_files(folder, api, app_url, relay_secret)
        api.set_ranges(["127.0.0.1/32", "::1/128"])
        api.set_thumbprints([files.sender.sha1])
        out.write(f"emulated Copyleaks security API at {api.url}\n")
        out.write(f"pinned sender certificate SHA-1 {files.sender.sha1}\n")

        log_path = folder / "gateway.log"
        sync = subprocess.run(
            hookbouncer_command("sync", "--config", str(files.config)),
            capture_output=True,
            text=True,
            check=False,
        )
        out.write(f"hookbouncer sync exited {sync.returncode}\n")
        if sync.returncode != 0:
            out.write(sync.stdout + sync.stderr)
            return False

        with log_path.open("w") as log, running_gateway(files, log) as base_url:
            out.write(f"gateway ready at {base_url}\n\n")
            scenarios = Scenarios(files, base_url)
            outcomes = scenarios.run()
            genuine = [o for o in outcomes if o.name.startswith("genuine")]
            wait_for_deliveries(app, len(genuine))
            recorded = scenarios.inbox.stats().accepted
            scenarios.inbox.close()
        application.shutdown()

    print_table(outcomes, out)
    received = sorted(app.received)
    expected_received = sorted(
        [
            ("completed", SCAN_ID),
            ("error", SCAN_ID),
            ("creditsChecked", SCAN_ID),
            ("indexed", SCAN_ID),
            ("newResult", SCAN_ID),
            ("exportCompleted", EXPORT_ID),
        ]
    )
    delivered_right = received == expected_received and app.bad_signatures == 0
    out.write(
        f"\napplication received {len(received)} signed webhooks"
        f" (expected {len(expected_received)}, each once):"
        f" {'right' if delivered_right else 'WRONG'}\n"
    )
    if not delivered_right:
        out.write(f"  received: {json.dumps(received)}\n")
        out.write(f"  bad signatures: {app.bad_signatures}\n")
        out.write(f"  gateway log: {log_path}\n")
    recorded_right = recorded == len(expected_received)
    out.write(
        f"inbox holds {recorded} accepted webhooks, the repeat not recorded"
        f" twice: {'right' if recorded_right else 'WRONG'}\n"
    )
    every_outcome_right = all(outcome.passed for outcome in outcomes)
    ok = every_outcome_right and delivered_right and recorded_right
    out.write("demo passed\n" if ok else "demo FAILED\n")
    return ok
