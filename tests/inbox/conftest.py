"""Inbox fixtures: every test runs against SQLite and against PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hookbouncer.inbox import AcceptedWebhook, Inbox, open_inbox_url

POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_DATABASE = "test"
POSTGRES_USERS = ("postgres", "root")

OpenInbox = Callable[..., Inbox]


def _postgres_admin_url() -> str | None:
    """Return a URL that reaches the test server, or None when none does."""
    try:
        import psycopg
    except ImportError:
        return None
    for user in POSTGRES_USERS:
        url = (
            f"postgresql://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}"
            f"/{POSTGRES_DATABASE}?connect_timeout=3"
        )
        try:
            with psycopg.connect(url):
                return url
        except psycopg.Error:
            continue
    return None


_ADMIN_URL: list[str | None] = []


def postgres_admin_url() -> str:
    if not _ADMIN_URL:
        _ADMIN_URL.append(_postgres_admin_url())
    url = _ADMIN_URL[0]
    if url is None:
        pytest.skip(
            f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} is unreachable"
            f" (database {POSTGRES_DATABASE}, users {', '.join(POSTGRES_USERS)})"
        )
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped after the test."""
    import psycopg

    admin = postgres_admin_url()
    schema = f"hb_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    yield f"{admin}&options=-csearch_path%3D{schema}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def inbox_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'inbox.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def open_inbox(inbox_url: str) -> Iterator[OpenInbox]:
    """Open inboxes on the test's database; every one is closed at the end."""
    opened: list[Inbox] = []

    def opener(**options: object) -> Inbox:
        inbox = open_inbox_url(inbox_url, **options)  # type: ignore[arg-type]
        opened.append(inbox)
        return inbox

    yield opener
    for inbox in opened:
        inbox.close()


@pytest.fixture
def inbox(open_inbox: OpenInbox) -> Inbox:
    return open_inbox()


def make_webhook(
    number: int = 1, *, body: bytes | None = None, **fields: object
) -> AcceptedWebhook:
    values: dict[str, object] = {
        "route_class": "status",
        "event": "completed",
        "scan_id": f"scan-{number}",
        "received_at": 1_700_000_000.0 + number,
        "client_address": "203.0.113.7",
        "body": body if body is not None else b'{"status": 0, "n": %d}' % number,
        "headers": (("content-type", "application/json"),),
        "checks": ("source_ip", "client_certificate", "developer_payload"),
        "thumbprint": "ab" * 20,
        "token_context": '{"customer": "c-1"}',
    }
    values.update(fields)
    return AcceptedWebhook(**values)  # type: ignore[arg-type]
