"""The inbox on a SQL database; `sqlite` and `postgres` supply the dialect.

All writes go through one `GroupCommitWriter` and its own connection. Reads
use a second connection behind a lock, so `stats` and `list` never wait for
an fsync. SQL here uses `?` placeholders, and a backend rewrites them when
its driver wants another style.
"""

from __future__ import annotations

import builtins
import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar, cast

from hookbouncer.errors import InboxUnavailable
from hookbouncer.inbox.base import (
    AcceptedWebhook,
    DeliveryState,
    InboxStats,
    RecordOutcome,
    Rejection,
    StoredRejection,
    StoredWebhook,
    body_digest,
    safe_headers,
)
from hookbouncer.inbox.writer import (
    BatchableOperation,
    GroupCommitWriter,
    Transactor,
    WriterClosed,
    WriteTimedOut,
)

T = TypeVar("T")

log = logging.getLogger(__name__)

# The newest schema this code reads and writes. Entry N of a backend's
# `migrations` moves the schema from version N-1 to N.
SCHEMA_VERSION = 2

_META_COLUMNS = (
    "id, route_class, event, scan_id, received_at, client_address, thumbprint,"
    " body_sha256, body_size, headers, checks, token_context, state, attempts,"
    " next_attempt_at, last_error, delivered_at"
)
_ALL_COLUMNS = _META_COLUMNS + ", body"


class SqlInbox(Transactor):
    """An `Inbox` on a DB-API connection; subclasses name the dialect."""

    backend = "sql"
    # Exceptions from the driver that mean the store cannot be used.
    database_errors: tuple[type[BaseException], ...] = ()
    lock_clause = ""

    def __init__(
        self,
        *,
        description: str,
        credential_header: str,
        max_rejections: int,
        max_batch: int = 512,
        write_timeout: float = 30.0,
    ) -> None:
        self.description = description
        self._credential_header = credential_header
        self._max_rejections = max_rejections
        self._write_timeout = write_timeout
        self._read_lock = threading.Lock()
        self._reader: Any = None
        self._writer_connection: Any = None
        self.schema_version = self._open_and_migrate()
        self._writer = GroupCommitWriter(self, max_batch=max_batch)

    # -- dialect hooks ------------------------------------------------------

    def connect(self) -> Any:
        raise NotImplementedError

    def migrate(self, connection: Any, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema to `target` and return the version found before.

        Raises `InboxUnavailable` when a newer hookbouncer wrote the schema,
        because this code could misread its rows.
        """
        self.begin(connection)
        try:
            self.lock_schema(connection)
            connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            row = connection.execute("SELECT version FROM schema_version").fetchone()
            found = 0 if row is None else int(row[0])
            if found > SCHEMA_VERSION:
                raise InboxUnavailable(
                    f"inbox {self.description} has schema version {found}, newer"
                    f" than this hookbouncer's {SCHEMA_VERSION}: upgrade hookbouncer"
                )
            for version in range(found + 1, target + 1):
                for statement in self.migrations[version]:
                    connection.execute(statement)
            if row is None:
                connection.execute(
                    self.sql("INSERT INTO schema_version (version) VALUES (?)"),
                    (max(found, target),),
                )
            elif target > found:
                connection.execute(
                    self.sql("UPDATE schema_version SET version = ?"), (target,)
                )
            self.commit(connection)
        except BaseException:
            self.rollback(connection)
            raise
        if target > found:
            log.info(
                "inbox %s schema migrated from version %d to %d",
                self.description,
                found,
                target,
            )
        return found

    def sql(self, text: str) -> str:
        return text

    def lock_schema(self, connection: Any) -> None:
        """Serialise migrations between processes, inside the transaction."""

    migrations: ClassVar[dict[int, tuple[str, ...]]] = {}

    def discard(self, connection: Any) -> None:
        """Close a connection that failed; ignore errors from closing it."""
        try:
            connection.close()
        except Exception as error:
            log.debug("closing a failed %s connection: %s", self.backend, error)

    def connection_broken(self, connection: Any) -> bool:
        return False

    # -- Transactor ---------------------------------------------------------

    def connection(self) -> Any:
        if self._writer_connection is not None and self.connection_broken(
            self._writer_connection
        ):
            self.discard(self._writer_connection)
            self._writer_connection = None
        if self._writer_connection is None:
            self._writer_connection = self.connect()
        return self._writer_connection

    # -- opening ------------------------------------------------------------

    def _open_and_migrate(self) -> int:
        try:
            connection = self.connect()
        except self.database_errors as error:
            raise self._unavailable("cannot be opened", error) from error
        try:
            self.migrate(connection)
        except self.database_errors as error:
            self.discard(connection)
            raise self._unavailable(
                "schema cannot be created or migrated", error
            ) from error
        except InboxUnavailable:
            self.discard(connection)
            raise
        self._writer_connection = connection
        return SCHEMA_VERSION

    def _unavailable(self, what: str, error: BaseException) -> InboxUnavailable:
        return InboxUnavailable(f"inbox {self.description} {what}: {error}")

    # -- writes -------------------------------------------------------------

    def _write(self, function: Callable[[Any], T]) -> T:
        try:
            return self._writer.submit(function, self._write_timeout)
        except WriterClosed as error:
            raise InboxUnavailable(f"inbox {self.description} is closed") from error
        except WriteTimedOut as error:
            raise self._unavailable("did not commit in time", error) from error
        except self.database_errors as error:
            raise self._unavailable("cannot be written", error) from error

    def record_accepted(self, webhook: AcceptedWebhook) -> RecordOutcome:
        return self._write(self._webhook_insert(webhook))

    def record_accepted_later(
        self,
        webhook: AcceptedWebhook,
        callback: Callable[[RecordOutcome | None, BaseException | None], object],
    ) -> None:
        """Store a webhook like `record_accepted`, but return at once.

        After the commit, `callback(outcome, None)` runs on the writer
        thread, or `callback(None, InboxUnavailable(...))` when the write
        failed. Raise `InboxUnavailable` at once when the inbox is closed.
        The caller runs its own timer, as `record_accepted` gives up after
        `write_timeout` seconds.
        """
        database_errors = self.database_errors
        description = self.description

        def finished(outcome: Any, error: BaseException | None) -> None:
            if error is not None and isinstance(error, database_errors):
                error = InboxUnavailable(
                    f"inbox {description} cannot be written: {error}"
                )
            callback(outcome, error)

        try:
            self._writer.submit_later(self._webhook_insert(webhook), finished)
        except WriterClosed as error:
            raise InboxUnavailable(f"inbox {description} is closed") from error

    @property
    def write_timeout(self) -> float:
        """Seconds `record_accepted` waits for its commit before giving up."""
        return self._write_timeout

    def _webhook_insert(self, webhook: AcceptedWebhook) -> _WebhookInsert:
        digest = body_digest(webhook.body)
        key = (webhook.route_class, webhook.event, webhook.scan_id, digest)
        headers = safe_headers(webhook.headers, self._credential_header)
        row = (
            *key,
            webhook.received_at,
            webhook.client_address,
            webhook.thumbprint,
            webhook.body,
            len(webhook.body),
            json.dumps([list(pair) for pair in headers]),
            _checks_json(webhook.checks),
            webhook.token_context,
            webhook.received_at,
        )
        return _WebhookInsert(self, key, row)

    def record_rejection(self, rejection: Rejection) -> None:
        if self._max_rejections == 0:
            return
        insert = self.sql(
            "INSERT INTO rejections (received_at, route, client_address, reasons,"
            " thumbprint) VALUES (?, ?, ?, ?, ?)"
        )
        prune = self.sql(
            "DELETE FROM rejections WHERE id <= (SELECT max(id) FROM rejections) - ?"
        )
        row = (
            rejection.received_at,
            rejection.route,
            rejection.client_address,
            json.dumps(list(rejection.reasons)),
            rejection.thumbprint,
        )
        limit = self._max_rejections

        def store(connection: Any) -> None:
            connection.execute(insert, row)
            connection.execute(prune, (limit,))

        self._write(store)

    def claim_due(
        self, now: float, limit: int, *, lease: float = 300.0
    ) -> list[StoredWebhook]:
        claim = self.sql(
            "UPDATE webhooks SET next_attempt_at = ? WHERE id IN ("  # noqa: S608
            " SELECT id FROM webhooks WHERE state = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?"
            f" {self.lock_clause}) RETURNING {_ALL_COLUMNS}"
        )

        def run(connection: Any) -> list[Sequence[Any]]:
            return list(connection.execute(claim, (now + lease, now, limit)).fetchall())

        rows = self._write(run)
        claimed = [self._webhook(row, with_body=True) for row in rows]
        claimed.sort(key=lambda webhook: (webhook.received_at, webhook.id))
        return claimed

    def mark_delivered(self, id: int, now: float) -> None:
        update = self.sql(
            "UPDATE webhooks SET state = 'delivered', attempts = attempts + 1,"
            " delivered_at = ?, next_attempt_at = NULL, last_error = NULL"
            " WHERE id = ?"
        )
        self._write(lambda connection: connection.execute(update, (now, id)))

    def mark_attempt_failed(
        self, id: int, error: str, next_attempt: float | None
    ) -> None:
        if next_attempt is None:
            update = self.sql(
                "UPDATE webhooks SET state = 'dead', attempts = attempts + 1,"
                " last_error = ?, next_attempt_at = NULL"
                " WHERE id = ? AND state = 'pending'"
            )
            params: tuple[Any, ...] = (error, id)
        else:
            update = self.sql(
                "UPDATE webhooks SET attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ? WHERE id = ? AND state = 'pending'"
            )
            params = (error, next_attempt, id)
        self._write(lambda connection: connection.execute(update, params))

    def redeliver(self, id: int) -> bool:
        update = self.sql(
            "UPDATE webhooks SET state = 'pending', attempts = 0,"
            " next_attempt_at = ?, last_error = NULL, delivered_at = NULL"
            " WHERE id = ?"
        )
        now = time.time()

        def run(connection: Any) -> bool:
            return bool(connection.execute(update, (now, id)).rowcount > 0)

        return self._write(run)

    # -- reads --------------------------------------------------------------

    def _read(self, function: Callable[[Any], T]) -> T:
        with self._read_lock:
            try:
                if self._reader is not None and self.connection_broken(self._reader):
                    self.discard(self._reader)
                    self._reader = None
                if self._reader is None:
                    self._reader = self.connect()
                return function(self._reader)
            except self.database_errors as error:
                if self._reader is not None:
                    self.discard(self._reader)
                    self._reader = None
                raise self._unavailable("cannot be read", error) from error

    def get(self, id: int) -> StoredWebhook | None:
        query = self.sql(f"SELECT {_ALL_COLUMNS} FROM webhooks WHERE id = ?")  # noqa: S608
        row = self._read(lambda connection: connection.execute(query, (id,)).fetchone())
        return None if row is None else self._webhook(row, with_body=True)

    def list(
        self,
        state: DeliveryState | None = None,
        limit: int = 50,
        *,
        before_id: int | None = None,
        include_body: bool = False,
    ) -> list[StoredWebhook]:
        columns = _ALL_COLUMNS if include_body else _META_COLUMNS
        conditions: list[str] = []
        params: list[Any] = []
        if state is not None:
            conditions.append("state = ?")
            params.append(state)
        if before_id is not None:
            conditions.append("id < ?")
            params.append(before_id)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        query = self.sql(
            f"SELECT {columns} FROM webhooks{where} ORDER BY id DESC LIMIT ?"  # noqa: S608
        )
        params.append(limit)
        rows = self._read(
            lambda connection: connection.execute(query, tuple(params)).fetchall()
        )
        return [self._webhook(row, with_body=include_body) for row in rows]

    def list_rejections(self, limit: int = 50) -> builtins.list[StoredRejection]:
        query = self.sql(
            "SELECT id, received_at, route, client_address, reasons, thumbprint"
            " FROM rejections ORDER BY id DESC LIMIT ?"
        )
        rows = self._read(
            lambda connection: connection.execute(query, (limit,)).fetchall()
        )
        return [
            StoredRejection(
                id=int(row[0]),
                received_at=float(row[1]),
                route=row[2],
                client_address=row[3],
                reasons=tuple(json.loads(row[4])),
                thumbprint=row[5],
            )
            for row in rows
        ]

    def stats(self, now: float | None = None) -> InboxStats:
        now = time.time() if now is None else now
        by_state = self.sql(
            "SELECT state, count(*), min(received_at) FROM webhooks GROUP BY state"
        )
        rejections = self.sql("SELECT count(*) FROM rejections")

        def run(connection: Any) -> tuple[list[Sequence[Any]], int]:
            rows = list(connection.execute(by_state).fetchall())
            count = connection.execute(rejections).fetchone()[0]
            return rows, int(count)

        rows, rejection_count = self._read(run)
        counts = {"pending": 0, "delivered": 0, "dead": 0}
        oldest_pending: float | None = None
        for state, count, oldest in rows:
            counts[state] = int(count)
            if state == "pending" and oldest is not None:
                oldest_pending = max(0.0, now - float(oldest))
        return InboxStats(
            accepted=sum(counts.values()),
            pending=counts["pending"],
            delivered=counts["delivered"],
            dead=counts["dead"],
            rejections=rejection_count,
            oldest_pending_age=oldest_pending,
            commits=self._writer.commits,
            schema_version=self.schema_version,
            backend=self.backend,
        )

    @property
    def commit_count(self) -> int:
        """Write transactions committed since open; grouped writes share one."""
        return self._writer.commits

    def writable(self) -> bool:
        if not self._writer.alive():
            return False
        # A real write, grouped like any other. Updating the version row to
        # itself fails when the file or server rejects writes, as an insert would.
        probe = "UPDATE schema_version SET version = version"
        try:
            self._write(lambda connection: connection.execute(probe))
        except InboxUnavailable as error:
            log.warning("inbox %s is not writable: %s", self.description, error)
            return False
        return True

    def close(self) -> None:
        self._writer.close()
        with self._read_lock:
            for connection in (self._reader, self._writer_connection):
                if connection is not None:
                    self.discard(connection)
            self._reader = None
            self._writer_connection = None

    # -- rows ---------------------------------------------------------------

    def _webhook(self, row: Sequence[Any], *, with_body: bool) -> StoredWebhook:
        headers = tuple((str(name), str(value)) for name, value in json.loads(row[9]))
        return StoredWebhook(
            id=int(row[0]),
            route_class=row[1],
            event=row[2],
            scan_id=row[3],
            received_at=float(row[4]),
            client_address=row[5],
            thumbprint=row[6],
            body_sha256=row[7],
            body_size=int(row[8]),
            headers=headers,
            checks=tuple(json.loads(row[10])),
            token_context=row[11],
            state=cast(DeliveryState, row[12]),
            attempts=int(row[13]),
            next_attempt_at=None if row[14] is None else float(row[14]),
            last_error=row[15],
            delivered_at=None if row[16] is None else float(row[16]),
            body=bytes(row[17]) if with_body else None,
        )


@functools.lru_cache(maxsize=64)
def _checks_json(checks: tuple[str, ...]) -> str:
    # Each route class has one list of checks, so the text repeats.
    return json.dumps(list(checks))


_WEBHOOK_INSERT_COLUMNS = (
    "route_class, event, scan_id, body_sha256, received_at, client_address,"
    " thumbprint, body, body_size, headers, checks, token_context, next_attempt_at"
)
# Rows per INSERT statement. 64 rows of 13 values stay under 999 bound
# parameters, SQLite's default limit before version 3.32.
_INSERT_CHUNK = 64

DuplicateKey = tuple[str, str, str, str]


class _WebhookInsert(BatchableOperation[RecordOutcome]):
    """`record_accepted`'s write: neighbours merge into multi-row INSERTs."""

    batch_key = "insert-webhook"

    def __init__(
        self, inbox: SqlInbox, key: DuplicateKey, row: tuple[Any, ...]
    ) -> None:
        self.inbox = inbox
        self.key = key
        self.row = row

    def run_batch(
        self, connection: Any, operations: builtins.list[Any]
    ) -> builtins.list[RecordOutcome]:
        inserts: list[_WebhookInsert] = operations
        new_ids: dict[DuplicateKey, int] = {}
        for start in range(0, len(inserts), _INSERT_CHUNK):
            chunk = inserts[start : start + _INSERT_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            statement = self.inbox.sql(
                f"INSERT INTO webhooks ({_WEBHOOK_INSERT_COLUMNS}) VALUES {values}"  # noqa: S608
                " ON CONFLICT (route_class, event, scan_id, body_sha256) DO NOTHING"
                " RETURNING id, route_class, event, scan_id, body_sha256"
            )
            parameters = [value for insert in chunk for value in insert.row]
            # fetchall, not fetchone: SQLite keeps a RETURNING statement open
            # until every row is read, and an open statement blocks COMMIT.
            for row in connection.execute(statement, parameters).fetchall():
                new_ids[(row[1], row[2], row[3], row[4])] = int(row[0])
        find = self.inbox.sql(
            "SELECT id FROM webhooks WHERE route_class = ? AND event = ?"
            " AND scan_id = ? AND body_sha256 = ?"
        )
        outcomes: list[RecordOutcome] = []
        for insert in inserts:
            new_id = new_ids.pop(insert.key, None)
            if new_id is not None:
                outcomes.append(RecordOutcome(new_id, duplicate=False))
                continue
            # Stored before, or earlier in this same group.
            existing = connection.execute(find, insert.key).fetchall()
            outcomes.append(RecordOutcome(int(existing[0][0]), duplicate=True))
        return outcomes
