"""Durable record of accepted webhooks and of rejections.

`open_inbox(config)` picks the backend from `config.inbox_url`:
`sqlite:///PATH` (the default, in the state directory) or
`postgresql://USER@HOST/DATABASE` (needs the `postgres` extra).
"""

from __future__ import annotations

from hookbouncer.config import Config
from hookbouncer.errors import InboxUnavailable
from hookbouncer.inbox.base import (
    DELIVERY_STATES,
    SAFE_HEADERS,
    AcceptedWebhook,
    DeliveryState,
    Inbox,
    InboxStats,
    RecordOutcome,
    Rejection,
    StoredRejection,
    StoredWebhook,
    body_digest,
    safe_headers,
)
from hookbouncer.inbox.sql import SCHEMA_VERSION

__all__ = [
    "DELIVERY_STATES",
    "SAFE_HEADERS",
    "SCHEMA_VERSION",
    "AcceptedWebhook",
    "DeliveryState",
    "Inbox",
    "InboxStats",
    "RecordOutcome",
    "Rejection",
    "StoredRejection",
    "StoredWebhook",
    "body_digest",
    "open_inbox",
    "open_inbox_url",
    "safe_headers",
]


def open_inbox(config: Config) -> Inbox:
    """Open the configured inbox, creating or migrating its schema.

    Raises `InboxUnavailable` when the database cannot be opened or written.
    """
    return open_inbox_url(
        config.inbox_url,
        synchronous=config.inbox.synchronous,
        credential_header=config.header_secret.name,
        max_rejections=config.inbox.max_rejections,
    )


def open_inbox_url(
    url: str,
    *,
    synchronous: str = "full",
    credential_header: str = "authorization",
    max_rejections: int = 100_000,
    max_batch: int = 512,
) -> Inbox:
    """Open an inbox by URL; `max_batch` 1 turns group commit off."""
    if url.startswith("sqlite:"):
        from hookbouncer.inbox.sqlite import SqliteInbox, sqlite_path

        try:
            path = sqlite_path(url)
        except ValueError as error:
            raise InboxUnavailable(str(error)) from None
        return SqliteInbox(
            path,
            synchronous=synchronous,
            credential_header=credential_header,
            max_rejections=max_rejections,
            max_batch=max_batch,
        )
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from hookbouncer.inbox.postgres import PostgresInbox
        except ImportError as error:
            raise InboxUnavailable(
                "a postgresql:// inbox needs psycopg: install hookbouncer[postgres]"
            ) from error
        return PostgresInbox(
            url,
            synchronous=synchronous,
            credential_header=credential_header,
            max_rejections=max_rejections,
            max_batch=max_batch,
        )
    raise InboxUnavailable(
        f"inbox URL {url!r} is not supported: use sqlite:///PATH or postgresql://…"
    )
