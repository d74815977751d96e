"""Records kept by the inbox and the `Inbox` protocol every backend follows.

The inbox stores what the gateway accepted and what it rejected. It never
decides acceptance, and it never stores a secret: headers are filtered
through `SAFE_HEADERS` here, whatever the caller passes.
"""

from __future__ import annotations

import builtins
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

DeliveryState = Literal["pending", "delivered", "dead"]
DELIVERY_STATES: tuple[DeliveryState, ...] = ("pending", "delivered", "dead")

# Header names kept with an accepted webhook, lowercase. Copyleaks lets the
# submitter add arbitrary headers (statusHeaders, newResultHeaders), which
# often carry credentials, so only names known to be harmless are kept.
SAFE_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "content-encoding",
        "content-length",
        "content-type",
        "date",
        "forwarded",
        "traceparent",
        "tracestate",
        "user-agent",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-real-ip",
        "x-request-id",
    }
)

Headers = Sequence[tuple[str, str]]


def safe_headers(headers: Iterable[tuple[str, str]], credential_header: str) -> Headers:
    """Keep only allowlisted header pairs, and never `credential_header`."""
    excluded = credential_header.lower()
    kept: list[tuple[str, str]] = []
    for name, value in headers:
        lowered = name.lower()
        if lowered in SAFE_HEADERS and lowered not in {excluded, "authorization"}:
            kept.append((lowered, value))
    return tuple(kept)


def body_digest(body: bytes) -> str:
    """Return the SHA-256 of a body as lowercase hex, the duplicate key part."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class AcceptedWebhook:
    """A verified webhook as the gateway hands it to the inbox.

    `received_at` is Unix time in seconds. `scan_id` is the export id on
    export routes and "" when the path carries none. `token_context` is the
    context sealed in the developerPayload token, as text (JSON when the
    token contains structured data), or None when the route opens no token.
    """

    route_class: str
    event: str
    scan_id: str
    received_at: float
    client_address: str
    body: bytes
    headers: Headers = ()
    checks: tuple[str, ...] = ()
    thumbprint: str | None = None
    token_context: str | None = None


@dataclass(frozen=True)
class RecordOutcome:
    """The id of the stored webhook, and whether it had been stored before."""

    id: int
    duplicate: bool


@dataclass(frozen=True)
class Rejection:
    """A rejected request, without its body. `reasons` are short codes."""

    received_at: float
    route: str | None
    client_address: str
    reasons: tuple[str, ...]
    thumbprint: str | None = None


@dataclass(frozen=True)
class StoredRejection:
    id: int
    received_at: float
    route: str | None
    client_address: str
    reasons: tuple[str, ...]
    thumbprint: str | None


@dataclass(frozen=True)
class StoredWebhook:
    """An accepted webhook with its delivery state.

    `body` is None when the query that read the record left bodies out
    (`Inbox.list` does unless asked). `next_attempt_at` is None once the
    webhook is delivered or dead.
    """

    id: int
    route_class: str
    event: str
    scan_id: str
    received_at: float
    client_address: str
    thumbprint: str | None
    body_sha256: str
    body_size: int
    body: bytes | None
    headers: Headers
    checks: tuple[str, ...]
    token_context: str | None
    state: DeliveryState
    attempts: int
    next_attempt_at: float | None
    last_error: str | None
    delivered_at: float | None


@dataclass(frozen=True)
class InboxStats:
    """Counts for `status` and metrics; `accepted` counts every stored webhook.

    `oldest_pending_age` is in seconds, None when nothing is pending.
    `commits` counts write transactions committed since this inbox was
    opened, so a test or a dashboard can see how many writes shared one.
    """

    accepted: int
    pending: int
    delivered: int
    dead: int
    rejections: int
    oldest_pending_age: float | None
    commits: int = 0
    schema_version: int = 0
    backend: str = ""


class Inbox(Protocol):
    """Durable storage of accepted webhooks and rejections.

    Every method may be called from any thread. Writes raise
    `InboxUnavailable` when the store cannot be written.
    """

    def record_accepted(self, webhook: AcceptedWebhook) -> RecordOutcome:
        """Store a webhook and return once the row is durable."""
        ...

    def record_rejection(self, rejection: Rejection) -> None: ...

    def claim_due(
        self, now: float, limit: int, *, lease: float = 300.0
    ) -> list[StoredWebhook]:
        """Return pending webhooks due at `now`, hidden from other claims
        for `lease` seconds so two relays never send one at the same time."""
        ...

    def mark_delivered(self, id: int, now: float) -> None: ...

    def mark_attempt_failed(
        self, id: int, error: str, next_attempt: float | None
    ) -> None:
        """Count a failed attempt; `next_attempt` None makes the webhook dead."""
        ...

    def get(self, id: int) -> StoredWebhook | None: ...

    def list(
        self,
        state: DeliveryState | None = None,
        limit: int = 50,
        *,
        before_id: int | None = None,
        include_body: bool = False,
    ) -> list[StoredWebhook]:
        """Return webhooks newest first, optionally only those in `state`."""
        ...

    def list_rejections(self, limit: int = 50) -> builtins.list[StoredRejection]: ...

    def redeliver(self, id: int) -> bool:
        """Make a webhook pending and due now with attempts reset.

        Returns False when no webhook has that id.
        """
        ...

    def stats(self, now: float | None = None) -> InboxStats: ...

    def writable(self) -> bool: ...

    def close(self) -> None: ...
