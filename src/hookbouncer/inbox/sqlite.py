"""The inbox in one SQLite file, in WAL mode.

With `synchronous = FULL` SQLite syncs the write-ahead log at every commit,
so a committed webhook survives a crash of the process or of the machine.
`NORMAL` syncs only at checkpoints: a power loss may then drop the last
commits, but never corrupts the file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from hookbouncer.inbox.sql import SqlInbox


def sqlite_path(url: str) -> Path:
    """Return the file path of a `sqlite:///PATH` URL.

    The path is always absolute: `sqlite:///var/lib/x.db` and
    `sqlite:////var/lib/x.db` both name /var/lib/x.db.
    """
    prefix = "sqlite://"
    if not url.startswith(prefix + "/") or not url[len(prefix) :].strip("/"):
        raise ValueError(f"invalid SQLite inbox URL {url!r}: use sqlite:///PATH")
    return Path("/" + url[len(prefix) :].lstrip("/"))


class SqliteInbox(SqlInbox):
    backend = "sqlite"
    database_errors = (sqlite3.Error, OSError)

    migrations: ClassVar[dict[int, tuple[str, ...]]] = {
        1: (
            """CREATE TABLE webhooks (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                route_class TEXT NOT NULL,
                event TEXT NOT NULL,
                scan_id TEXT NOT NULL,
                body_sha256 TEXT NOT NULL,
                received_at REAL NOT NULL,
                client_address TEXT NOT NULL,
                thumbprint TEXT,
                body BLOB NOT NULL,
                body_size INTEGER NOT NULL,
                headers TEXT NOT NULL,
                checks TEXT NOT NULL,
                token_context TEXT,
                state TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at REAL,
                last_error TEXT,
                delivered_at REAL
            )""",
            """CREATE UNIQUE INDEX webhooks_duplicate
                ON webhooks (route_class, event, scan_id, body_sha256)""",
            """CREATE TABLE rejections (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                received_at REAL NOT NULL,
                route TEXT,
                client_address TEXT NOT NULL,
                reasons TEXT NOT NULL,
                thumbprint TEXT
            )""",
        ),
        2: ("CREATE INDEX webhooks_due ON webhooks (state, next_attempt_at)",),
    }

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        credential_header: str = "authorization",
        max_rejections: int = 100_000,
        max_batch: int = 512,
        busy_timeout: float = 10.0,
        write_timeout: float = 30.0,
    ) -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be full or normal, not {synchronous!r}")
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout = busy_timeout
        super().__init__(
            description=str(path),
            credential_header=credential_header,
            max_rejections=max_rejections,
            max_batch=max_batch,
            write_timeout=write_timeout,
        )

    def connect(self) -> Any:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The file contains webhook bodies: create it readable by the owner
            # only. SQLite gives the -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = sqlite3.connect(
            self.path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.execute("PRAGMA journal_mode = WAL").fetchall()
            connection.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def begin(self, connection: Any) -> None:
        # IMMEDIATE takes the write lock now, so a busy file fails here
        # after busy_timeout, before any statement of the group has run.
        connection.execute("BEGIN IMMEDIATE")

    def commit(self, connection: Any) -> None:
        connection.execute("COMMIT")

    def rollback(self, connection: Any) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
