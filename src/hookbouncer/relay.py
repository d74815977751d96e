"""Deliver recorded webhooks to the application, signed for the last hop.

The relay reads due webhooks from the inbox and POSTs each one's body,
byte for byte as received, to `relay.url`. Every delivery is signed with
the Standard Webhooks scheme (`webhook-id`, `webhook-timestamp`,
`webhook-signature`, HMAC-SHA256 with `relay.signing_secret`), so the
application can verify it with any Standard Webhooks library.

A 2xx response is a delivery. Anything else is a failed attempt: a
connection error, a timeout, a non-2xx status and also a redirect, because
following one would send the body to a URL other than `relay.url`. Failed
webhooks are retried with exponential backoff and jitter, and become dead
after `relay.max_attempts` attempts. The relay never decides acceptance,
and never logs a body, a token or a secret.
"""

from __future__ import annotations

import base64
import binascii
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from standardwebhooks import Webhook

from hookbouncer.config import Config, Secret
from hookbouncer.errors import ConfigError, InboxUnavailable
from hookbouncer.inbox import Inbox, StoredWebhook
from hookbouncer.metrics import RelayMetrics, relay_metrics

log = logging.getLogger(__name__)

Callback = Callable[[StoredWebhook], None]

USER_AGENT = "hookbouncer-relay"
MAX_ERROR_CHARS = 500


def backoff_delay(attempt: int, initial: float, maximum: float, jitter: float) -> float:
    """Return the wait before the attempt after failed attempt `attempt`.

    The base delay doubles from `initial` and is capped at `maximum`. Half
    of it is fixed and half scaled by `jitter` (from 0 to 1), so retries of
    many webhooks that failed together spread out.
    """
    exponent = min(attempt - 1, 62)
    base = min(maximum, initial * 2.0**exponent)
    return base / 2 + base / 2 * jitter


def signing_key(secret: Secret) -> Webhook:
    """Build the Standard Webhooks signer from a `whsec_…` secret.

    Raises `ConfigError` naming where the secret came from, never its value.
    """
    text = secret.reveal().decode("utf-8", errors="replace").strip()
    fix = (
        "use a Standard Webhooks secret: whsec_ followed by base64, for"
        ' example from `python -c "import base64, os;'
        " print('whsec_' + base64.b64encode(os.urandom(32)).decode())\"`"
    )
    if not text.startswith("whsec_"):
        raise ConfigError(
            f"relay.signing_secret from {secret.origin} is invalid: {fix}"
        )
    try:
        key = base64.b64decode(text[len("whsec_") :], validate=True)
    except binascii.Error:
        raise ConfigError(
            f"relay.signing_secret from {secret.origin} is not valid base64: {fix}"
        ) from None
    if not key:
        raise ConfigError(f"relay.signing_secret from {secret.origin} is empty: {fix}")
    return Webhook(key)


def header_text(value: str) -> str:
    """Percent-encode `value` so any text is a safe header value."""
    return quote(value, safe="-._~:@!$&'()*+,;=/")


def delivery_headers(
    webhook: StoredWebhook, signer: Webhook | None, now: float
) -> dict[str, str]:
    """Build the headers sent with `webhook`, signed with `signer`.

    Text taken from the request URL or the token is percent-encoded UTF-8.
    The token context is base64url without padding, because it is often
    JSON. `webhook-id` stays the same for every attempt, so the application
    can use it to drop a delivery it already processed.
    """
    content_type = "application/json"
    for name, value in webhook.headers:
        # The sender's value was decoded as Latin-1; only printable ASCII can
        # be sent on, so anything else falls back to the JSON default.
        if name == "content-type" and value.isascii() and value.isprintable():
            content_type = value
    headers = {
        "content-type": content_type,
        "user-agent": USER_AGENT,
        "x-hookbouncer-event": header_text(webhook.event),
        "x-hookbouncer-scan-id": header_text(webhook.scan_id),
        "x-hookbouncer-route": header_text(webhook.route_class),
        "x-hookbouncer-checks": ",".join(webhook.checks),
        "x-hookbouncer-inbox-id": str(webhook.id),
        "x-hookbouncer-attempt": str(webhook.attempts + 1),
    }
    if webhook.token_context:
        encoded = base64.urlsafe_b64encode(webhook.token_context.encode("utf-8"))
        headers["x-hookbouncer-token-context"] = encoded.decode("ascii").rstrip("=")
    if signer is not None:
        message_id = f"hb_{webhook.id}_{webhook.body_sha256[:16]}"
        timestamp = datetime.fromtimestamp(int(now), tz=UTC)
        body = webhook.body if webhook.body is not None else b""
        headers["webhook-id"] = message_id
        headers["webhook-timestamp"] = str(int(now))
        headers["webhook-signature"] = signer.sign(message_id, timestamp, body)
    return headers


class Relay:
    """A worker thread delivering due webhooks from the inbox.

    Give either `config.relay.url` (with `relay.signing_secret`) or a
    `callback`, which receives each `StoredWebhook` and fails the attempt
    by raising. `clock` and `jitter` are injectable for tests.
    """

    def __init__(
        self,
        inbox: Inbox,
        config: Config,
        *,
        callback: Callback | None = None,
        client: httpx.Client | None = None,
        metrics: RelayMetrics | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        batch_size: int = 32,
        poll_interval: float = 1.0,
    ) -> None:
        settings = config.relay
        if callback is None and settings.url is None:
            raise ConfigError(
                f"{config.source}: relay.url is not set: set the application's"
                " URL, or pass a callback when using hookbouncer as a library"
            )

        self._inbox = inbox
        self._settings = settings
        self._callback = callback
        self._metrics = metrics if metrics is not None else relay_metrics()
        self._clock = clock
        self._jitter = jitter
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        # A claim hides webhooks from other relays while this one works
        # through the batch, one request at a time.
        self._lease = batch_size * settings.timeout + 60.0

        self._signer: Webhook | None = None
        if settings.signing_secret is not None:
            self._signer = signing_key(settings.signing_secret)
        elif callback is None:
            raise ConfigError(
                f"{config.source}: relay.signing_secret_file is not set: deliveries"
                " are signed, so set signing_secret_file or signing_secret_env"
            )
        self._owns_client = client is None and callback is None
        self._client = client
        if self._client is None and callback is None:
            self._client = self._build_client()

        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _build_client(self) -> httpx.Client:
        ca_bundle = self._settings.ca_bundle
        if ca_bundle is None:
            context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=str(ca_bundle))
        # trust_env=False: proxy variables in the environment must not
        # divert verified webhooks away from relay.url.
        return httpx.Client(
            timeout=self._settings.timeout,
            follow_redirects=False,
            verify=context,
            trust_env=False,
            headers={"user-agent": USER_AGENT},
        )

    # -- worker -------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._run, name="hookbouncer-relay", daemon=True
        )
        self._thread.start()
        target = "a callback"
        if self._callback is None and self._settings.url is not None:
            target = _url_for_log(self._settings.url)
        log.info("relay started, delivering to %s", target)

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the delivery in progress; wait up to `timeout` seconds.

        A stopped relay cannot be started again: it closed its HTTP client.
        """
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._owns_client and self._client is not None:
            self._client.close()
        log.info("relay stopped")

    def wake(self) -> None:
        """Look for due webhooks now, for example right after a commit."""
        self._wake.set()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            # Clear before the pass, so a wake() during it is not lost.
            self._wake.clear()
            try:
                count = self.deliver_due_once()
            except InboxUnavailable as error:
                failures += 1
                # Log the first failure and then one in every 60 passes, so
                # an inbox that stays down does not flood the log.
                if failures % 60 == 1:
                    log.warning(
                        "relay cannot read the inbox (%d passes failed),"
                        " will retry: %s",
                        failures,
                        error,
                    )
                count = 0
            except Exception:
                log.exception("relay pass failed, will retry")
                count = 0
            else:
                if failures:
                    log.info("relay reads the inbox again after %d failures", failures)
                failures = 0
            if count < self._batch_size:
                self._wake.wait(self._poll_interval)

    # -- delivery -----------------------------------------------------------

    def deliver_due_once(self, now: float | None = None) -> int:
        """Attempt every webhook due at `now`, up to one batch; return the count."""
        now = self._clock() if now is None else now
        due = self._inbox.claim_due(now, self._batch_size, lease=self._lease)
        for webhook in due:
            if self._stopping.is_set():
                # TODO: release the rest of the claim; until its lease ends,
                # another relay or a restart leaves these webhooks waiting.
                break
            self.deliver(webhook)
        return len(due)

    def deliver(self, webhook: StoredWebhook) -> bool:
        """Attempt one delivery and record its result; True when delivered."""
        attempt = webhook.attempts + 1
        started = time.perf_counter()
        try:
            outcome, status, error = self._attempt(webhook)
        except Exception as unexpected:
            # A bug in building the request must cost this webhook an
            # attempt, not leave it claimed and block the rest of the batch.
            log.exception("relay attempt for id=%d raised", webhook.id)
            outcome, status = "relay_error", "-"
            error = _short(f"relay raised {type(unexpected).__name__}")
        elapsed = time.perf_counter() - started
        now = self._clock()
        self._metrics.attempts.labels(outcome).inc()
        self._metrics.attempt_duration.observe(elapsed)
        fields = (webhook.id, webhook.event, webhook.scan_id, status, attempt)
        try:
            if error is None:
                self._inbox.mark_delivered(webhook.id, now)
                self._metrics.delivery_latency.observe(
                    max(0.0, now - webhook.received_at)
                )
                log.info(
                    "relay delivered id=%d event=%s scan_id=%s status=%s"
                    " attempt=%d latency_ms=%.1f",
                    *fields,
                    elapsed * 1000,
                )
                return True
            if attempt >= self._settings.max_attempts:
                self._inbox.mark_attempt_failed(webhook.id, error, None)
                self._metrics.dead.inc()
                log.error(
                    "relay gave up id=%d event=%s scan_id=%s status=%s"
                    " attempt=%d latency_ms=%.1f error=%s",
                    *fields,
                    elapsed * 1000,
                    error,
                )
                return False
            delay = backoff_delay(
                attempt,
                self._settings.backoff_initial,
                self._settings.backoff_max,
                self._jitter(),
            )
            self._inbox.mark_attempt_failed(webhook.id, error, now + delay)
            log.warning(
                "relay attempt failed id=%d event=%s scan_id=%s status=%s"
                " attempt=%d latency_ms=%.1f error=%s retry_in_s=%.1f",
                *fields,
                elapsed * 1000,
                error,
                delay,
            )
            return False
        except InboxUnavailable as inbox_error:
            # The claim's lease runs out, so the webhook is attempted again.
            log.error(
                "relay cannot record the result of id=%d attempt=%d: %s",
                webhook.id,
                attempt,
                inbox_error,
            )
            return error is None

    def _attempt(self, webhook: StoredWebhook) -> tuple[str, str, str | None]:
        """Send once; return the outcome label, the status and the error."""
        if self._callback is not None:
            try:
                self._callback(webhook)
            except Exception as error:
                return "callback_error", "-", _short(f"callback raised {error!r}")
            return "delivered", "-", None
        assert self._client is not None and self._settings.url is not None
        body = webhook.body if webhook.body is not None else b""
        headers = delivery_headers(webhook, self._signer, self._clock())
        try:
            response = self._client.post(
                self._settings.url, content=body, headers=headers
            )
        except httpx.TimeoutException as error:
            return "timeout", "-", _short(f"timed out: {type(error).__name__}")
        except httpx.HTTPError as error:
            return "connection_error", "-", _short(f"{type(error).__name__}: {error}")
        status = str(response.status_code)
        if response.is_success:
            return "delivered", status, None
        if 300 <= response.status_code < 400:
            return "redirect", status, f"HTTP {status} redirect, not followed"
        return "http_error", status, f"HTTP {status}"


def _url_for_log(url: str) -> str:
    """Return `url` without user info or query, which may carry credentials."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
