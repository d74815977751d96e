"""The relay against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from hookbouncer.config import Config, RelayConfig, Secret
from hookbouncer.errors import ConfigError
from hookbouncer.inbox import Inbox, StoredWebhook, open_inbox_url
from hookbouncer.metrics import RelayMetrics
from hookbouncer.relay import Relay, backoff_delay, signing_key
from tests.inbox.conftest import make_webhook

SECRET = "whsec_" + base64.b64encode(b"relay-test-key-of-32-bytes-long!").decode()
NOW = 1_700_000_100.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Application:
    """A stand-in for the application: stores requests, returns set statuses."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event | None = None


@pytest.fixture
def application() -> Iterator[Application]:
    app = Application()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            app.received.append(Received(self.path, headers, body))
            app.arrived.set()
            if app.release is not None:
                app.release.wait()
            status = app.statuses.pop(0) if app.statuses else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", f"{app.url}/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    app.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield app
    if app.release is not None:
        app.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Inbox]:
    inbox = open_inbox_url(f"sqlite:///{tmp_path / 'inbox.db'}")
    yield inbox
    inbox.close()


def _config(url: str | None, **relay: object) -> Config:
    values: dict[str, object] = {
        "url": url,
        "signing_secret": Secret(SECRET.encode(), "test"),
        "max_attempts": 3,
        "timeout": 5.0,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    values.update(relay)
    return Config(relay=RelayConfig(**values))  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _relay(
    inbox: Inbox, config: Config, **options: object
) -> tuple[Relay, RelayMetrics]:
    metrics = RelayMetrics(CollectorRegistry())
    relay = Relay(
        inbox,
        config,
        metrics=metrics,
        jitter=lambda: 0.0,
        **options,  # type: ignore[arg-type]
    )
    return relay, metrics


def _attempts(metrics: RelayMetrics, outcome: str) -> float:
    return metrics.attempts.labels(outcome)._value.get()


def _stored(inbox: Inbox, webhook_id: int) -> StoredWebhook:
    stored = inbox.get(webhook_id)
    assert stored is not None
    return stored


# -- delivery -----------------------------------------------------------------


def test_delivery_sends_exact_body(application: Application, inbox: Inbox) -> None:
    body = b'{"status": 0,  "developerPayload": "x"}\n\xff\x00'
    webhook_id = inbox.record_accepted(make_webhook(1, body=body)).id
    relay, metrics = _relay(
        inbox, _config(application.url + "/hooks"), clock=Clock(NOW)
    )
    try:
        assert relay.deliver_due_once() == 1
    finally:
        relay.stop()
    assert len(application.received) == 1
    received = application.received[0]
    assert received.path == "/hooks"
    assert received.body == body
    stored = _stored(inbox, webhook_id)
    assert stored.state == "delivered"
    assert stored.attempts == 1
    assert _attempts(metrics, "delivered") == 1
    assert metrics.delivery_latency._sum.get() == pytest.approx(NOW - 1_700_000_001.0)


def test_relay_logs_no_body_or_secret(
    application: Application, inbox: Inbox, caplog: pytest.LogCaptureFixture
) -> None:
    application.statuses = [500, 200]
    body = b'{"developerPayload": "sealed-token-text"}'
    inbox.record_accepted(make_webhook(1, body=body))
    clock = Clock(NOW)
    relay, _ = _relay(inbox, _config(application.url), clock=clock)
    with caplog.at_level(logging.DEBUG, logger="hookbouncer"):
        relay.deliver_due_once()
        clock.now += 1.0
        relay.deliver_due_once()
        relay.stop()
    assert "relay attempt failed" in caplog.text
    assert "relay delivered" in caplog.text
    assert "sealed-token-text" not in caplog.text
    assert SECRET not in caplog.text
    assert SECRET[len("whsec_") :] not in caplog.text


def test_delivery_headers_describe_webhook(
    application: Application, inbox: Inbox
) -> None:
    webhook = make_webhook(1, scan_id="scan 1/é", token_context='{"c": "ü"}')
    webhook_id = inbox.record_accepted(webhook).id
    relay, _ = _relay(inbox, _config(application.url))
    relay.deliver_due_once(NOW)
    relay.stop()
    headers = application.received[0].headers
    assert headers["x-hookbouncer-event"] == "completed"
    assert headers["x-hookbouncer-scan-id"] == "scan%201/%C3%A9"
    assert headers["x-hookbouncer-route"] == "status"
    assert headers["x-hookbouncer-checks"] == (
        "source_ip,client_certificate,developer_payload"
    )
    assert headers["x-hookbouncer-inbox-id"] == str(webhook_id)
    assert headers["x-hookbouncer-attempt"] == "1"
    assert headers["content-type"] == "application/json"
    context = headers["x-hookbouncer-token-context"]
    decoded = base64.urlsafe_b64decode(context + "=" * (-len(context) % 4))
    assert json.loads(decoded) == {"c": "ü"}


def test_non_ascii_content_type_does_not_block_batch(
    application: Application, inbox: Inbox
) -> None:
    poisoned = make_webhook(
        1, headers=(("content-type", "application/json; charset=\xe9"),)
    )
    first = inbox.record_accepted(poisoned).id
    others = [inbox.record_accepted(make_webhook(n)).id for n in (2, 3)]
    relay, _ = _relay(inbox, _config(application.url), clock=Clock(NOW))
    try:
        assert relay.deliver_due_once() == 3
    finally:
        relay.stop()
    assert _stored(inbox, first).state == "delivered"
    assert application.received[0].headers["content-type"] == "application/json"
    for webhook_id in others:
        assert _stored(inbox, webhook_id).state == "delivered"


def test_unexpected_error_counts_as_attempt(inbox: Inbox) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1)).id

    def broken(webhook: StoredWebhook) -> None:
        raise AssertionError("not reached")

    relay, metrics = _relay(inbox, _config(None), callback=broken, clock=Clock(NOW))
    relay._attempt = lambda webhook: 1 / 0  # type: ignore[method-assign]
    try:
        relay.deliver_due_once()
    finally:
        relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "pending"
    assert stored.attempts == 1
    assert stored.last_error == "relay raised ZeroDivisionError"
    assert _attempts(metrics, "relay_error") == 1


@pytest.mark.parametrize("context", [None, ""])
def test_delivery_omits_absent_token_context(
    application: Application, inbox: Inbox, context: str | None
) -> None:
    inbox.record_accepted(make_webhook(1, token_context=context))
    relay, _ = _relay(inbox, _config(application.url))
    relay.deliver_due_once(NOW)
    relay.stop()
    assert "x-hookbouncer-token-context" not in application.received[0].headers


def test_signature_verifies_with_standardwebhooks(
    application: Application, inbox: Inbox
) -> None:
    body = b'{"status": 0, "scannedDocument": {"scanId": "scan-1"}}'
    inbox.record_accepted(make_webhook(1, body=body))
    relay, _ = _relay(inbox, _config(application.url))
    relay.deliver_due_once()
    relay.stop()
    received = application.received[0]
    verifier = Webhook(SECRET)
    assert verifier.verify(received.body, received.headers) == json.loads(body)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(received.body.replace(b"0", b"1"), received.headers)
    other_secret = (
        "whsec_" + base64.b64encode(b"another-key-32-bytes-long-......").decode()
    )
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(received.body, received.headers)


def test_signature_covers_non_utf8_body(application: Application, inbox: Inbox) -> None:
    body = b"%PDF-1.7\n\xe2\xe3\xcf\xd3\n"
    inbox.record_accepted(make_webhook(1, body=body))
    relay, _ = _relay(inbox, _config(application.url))
    relay.deliver_due_once()
    relay.stop()
    received = application.received[0]
    Webhook(SECRET).verify(received.body, received.headers, json_parse=False)


def test_webhook_id_same_on_every_attempt(
    application: Application, inbox: Inbox
) -> None:
    application.statuses = [500]
    inbox.record_accepted(make_webhook(1))
    clock = Clock(NOW)
    relay, _ = _relay(inbox, _config(application.url), clock=clock)
    relay.deliver_due_once()
    clock.now += 1.0
    relay.deliver_due_once()
    relay.stop()
    first, second = application.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert second.headers["x-hookbouncer-attempt"] == "2"


# -- failures and retries -------------------------------------------------------


def test_retry_then_success(application: Application, inbox: Inbox) -> None:
    application.statuses = [500, 200]
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    clock = Clock(NOW)
    relay, metrics = _relay(inbox, _config(application.url), clock=clock)
    assert relay.deliver_due_once() == 1
    failed = _stored(inbox, webhook_id)
    assert failed.state == "pending"
    assert failed.attempts == 1
    assert failed.last_error == "HTTP 500"
    # backoff_initial 0.01 s with jitter 0: the retry is due 0.005 s later.
    assert failed.next_attempt_at == pytest.approx(NOW + 0.005)
    assert relay.deliver_due_once(NOW) == 0
    clock.now = NOW + 0.01
    assert relay.deliver_due_once() == 1
    relay.stop()
    delivered = _stored(inbox, webhook_id)
    assert delivered.state == "delivered"
    assert delivered.attempts == 2
    assert delivered.last_error is None
    assert _attempts(metrics, "http_error") == 1
    assert _attempts(metrics, "delivered") == 1


def test_dead_after_max_attempts(application: Application, inbox: Inbox) -> None:
    application.statuses = [503, 503, 503, 200]
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    clock = Clock(NOW)
    relay, metrics = _relay(
        inbox, _config(application.url, max_attempts=3), clock=clock
    )
    for _ in range(5):
        relay.deliver_due_once()
        clock.now += 10.0
    relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "dead"
    assert stored.attempts == 3
    assert stored.last_error == "HTTP 503"
    assert len(application.received) == 3
    assert metrics.dead._value.get() == 1


def test_redeliver_dead_webhook(application: Application, inbox: Inbox) -> None:
    application.statuses = [500]
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, _ = _relay(inbox, _config(application.url, max_attempts=1))
    relay.deliver_due_once()
    assert _stored(inbox, webhook_id).state == "dead"
    assert inbox.redeliver(webhook_id) is True
    assert relay.deliver_due_once() == 1
    relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "delivered"
    assert stored.attempts == 1
    assert len(application.received) == 2
    assert application.received[1].body == application.received[0].body


def test_redirect_is_failure(application: Application, inbox: Inbox) -> None:
    application.statuses = [302]
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, metrics = _relay(inbox, _config(application.url))
    relay.deliver_due_once()
    relay.stop()
    assert len(application.received) == 1
    stored = _stored(inbox, webhook_id)
    assert stored.state == "pending"
    assert stored.last_error == "HTTP 302 redirect, not followed"
    assert _attempts(metrics, "redirect") == 1


def test_connection_refused_is_failure(inbox: Inbox) -> None:
    # A port bound and released again, so nothing listens on it.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, metrics = _relay(inbox, _config(f"http://127.0.0.1:{port}/"))
    relay.deliver_due_once()
    relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "pending"
    assert stored.last_error is not None
    assert stored.last_error.startswith("ConnectError")
    assert _attempts(metrics, "connection_error") == 1


def test_timeout_is_failure(application: Application, inbox: Inbox) -> None:
    application.release = threading.Event()
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, metrics = _relay(inbox, _config(application.url, timeout=0.2))
    relay.deliver_due_once()
    application.release.set()
    relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "pending"
    assert stored.last_error == "timed out: ReadTimeout"
    assert _attempts(metrics, "timeout") == 1


# -- callback mode ------------------------------------------------------------


def test_callback_receives_webhook(inbox: Inbox) -> None:
    seen: list[StoredWebhook] = []
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, metrics = _relay(inbox, Config(), callback=seen.append)
    relay.deliver_due_once()
    relay.stop()
    assert [webhook.id for webhook in seen] == [webhook_id]
    assert seen[0].body == make_webhook(1).body
    assert _stored(inbox, webhook_id).state == "delivered"
    assert _attempts(metrics, "delivered") == 1


def test_callback_raising_is_failure(inbox: Inbox) -> None:
    def fail(webhook: StoredWebhook) -> None:
        raise RuntimeError("application is down")

    webhook_id = inbox.record_accepted(make_webhook(1)).id
    relay, metrics = _relay(inbox, Config(), callback=fail)
    relay.deliver_due_once()
    relay.stop()
    stored = _stored(inbox, webhook_id)
    assert stored.state == "pending"
    assert stored.last_error == "callback raised RuntimeError('application is down')"
    assert _attempts(metrics, "callback_error") == 1


# -- worker thread ------------------------------------------------------------


def test_worker_delivers_after_wake(application: Application, inbox: Inbox) -> None:
    relay, _ = _relay(inbox, _config(application.url), poll_interval=3600.0)
    relay.start()
    try:
        inbox.record_accepted(make_webhook(1))
        relay.wake()
        # The bound only keeps a broken relay from hanging the test run.
        assert application.arrived.wait(60)
    finally:
        relay.stop()
    assert len(application.received) == 1


def test_worker_survives_closed_inbox(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox = open_inbox_url(f"sqlite:///{tmp_path / 'closed.db'}")
    inbox.close()
    relay, _ = _relay(inbox, Config(), callback=lambda webhook: None)
    with caplog.at_level(logging.WARNING, logger="hookbouncer.relay"):
        relay.start()
        for _ in range(60_000):
            if "relay cannot read the inbox" in caplog.text:
                break
            time.sleep(0.001)
        relay.stop()
    assert "relay cannot read the inbox (1 passes failed)" in caplog.text


# -- configuration -------------------------------------------------------------


def test_relay_without_url_or_callback(inbox: Inbox) -> None:
    with pytest.raises(ConfigError, match=r"relay\.url is not set"):
        Relay(inbox, Config())


@pytest.mark.parametrize("text", ["sk_live_0123456789", "whsec_!!not base64!!"])
def test_signing_key_rejects_invalid(text: str) -> None:
    with pytest.raises(ConfigError, match=r"signing_secret from secret-file") as info:
        signing_key(Secret(text.encode(), "secret-file"))
    assert text not in str(info.value)


def test_signing_key_rejects_empty() -> None:
    with pytest.raises(ConfigError, match=r"from secret-file is empty"):
        signing_key(Secret(b"whsec_", "secret-file"))


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 0.0, 5.0),
        (1, 1.0, 10.0),
        (2, 0.0, 10.0),
        (3, 0.5, 30.0),
        (10, 0.0, 1800.0),
        (1000, 1.0, 3600.0),
    ],
)
def test_backoff_delay_doubles_to_max(
    attempt: int, jitter: float, expected: float
) -> None:
    assert backoff_delay(attempt, 10.0, 3600.0, jitter) == expected
