"""The inbox contract, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from hookbouncer.config import Config, InboxConfig
from hookbouncer.errors import InboxUnavailable
from hookbouncer.inbox import (
    SCHEMA_VERSION,
    Inbox,
    Rejection,
    open_inbox,
    open_inbox_url,
)
from hookbouncer.inbox.sql import SqlInbox
from hookbouncer.inbox.sqlite import SqliteInbox, sqlite_path
from tests.inbox.conftest import OpenInbox, make_webhook


def _sql(inbox: Inbox) -> SqlInbox:
    assert isinstance(inbox, SqlInbox)
    return inbox


def _rejection(number: int) -> Rejection:
    return Rejection(
        received_at=1_700_000_000.0 + number,
        route="status",
        client_address="198.51.100.9",
        reasons=("source_ip",),
        thumbprint=None,
    )


# -- recording ---------------------------------------------------------------


def test_record_accepted_stores_every_field(inbox: Inbox) -> None:
    webhook = make_webhook(1, body=b'{"status": 0}\r\n\x00\xff')
    outcome = inbox.record_accepted(webhook)
    assert outcome.duplicate is False
    stored = inbox.get(outcome.id)
    assert stored is not None
    assert stored.body == webhook.body
    assert stored.body_size == len(webhook.body)
    assert stored.route_class == "status"
    assert stored.event == "completed"
    assert stored.scan_id == "scan-1"
    assert stored.received_at == webhook.received_at
    assert stored.client_address == "203.0.113.7"
    assert stored.thumbprint == "ab" * 20
    assert stored.checks == webhook.checks
    assert stored.token_context == '{"customer": "c-1"}'
    assert stored.headers == (("content-type", "application/json"),)
    assert stored.state == "pending"
    assert stored.attempts == 0
    assert stored.next_attempt_at == webhook.received_at


def test_record_repeat_is_duplicate(inbox: Inbox) -> None:
    first = inbox.record_accepted(make_webhook(1))
    again = inbox.record_accepted(make_webhook(1, received_at=1_800_000_000.0))
    assert again.duplicate is True
    assert again.id == first.id
    assert inbox.stats().accepted == 1


def test_record_other_body_is_not_duplicate(inbox: Inbox) -> None:
    first = inbox.record_accepted(make_webhook(1))
    other_body = inbox.record_accepted(make_webhook(1, body=b"{}"))
    other_event = inbox.record_accepted(make_webhook(1, event="error"))
    other_route = inbox.record_accepted(make_webhook(1, route_class="new_result"))
    ids = {first.id, other_body.id, other_event.id, other_route.id}
    assert len(ids) == 4
    assert not any(
        outcome.duplicate for outcome in (other_body, other_event, other_route)
    )


def test_record_keeps_only_safe_headers(open_inbox: OpenInbox) -> None:
    inbox = open_inbox(credential_header="X-Request-Id")
    headers = (
        ("Content-Type", "application/json"),
        ("Authorization", "Bearer secret-token"),
        ("X-Request-Id", "looks harmless but is the configured secret"),
        ("X-Api-Key", "k"),
        ("User-Agent", "Copyleaks"),
    )
    outcome = inbox.record_accepted(make_webhook(1, headers=headers))
    stored = inbox.get(outcome.id)
    assert stored is not None
    assert stored.headers == (
        ("content-type", "application/json"),
        ("user-agent", "Copyleaks"),
    )


def test_get_unknown_id_is_none(inbox: Inbox) -> None:
    assert inbox.get(12345) is None


def test_list_filters_by_state(inbox: Inbox) -> None:
    ids = [inbox.record_accepted(make_webhook(n)).id for n in range(1, 6)]
    inbox.mark_delivered(ids[0], now=1_700_000_100.0)
    inbox.mark_attempt_failed(ids[1], "HTTP 500", next_attempt=None)
    listed = inbox.list(None, limit=10)
    assert [webhook.id for webhook in listed] == sorted(ids, reverse=True)
    assert all(webhook.body is None for webhook in listed)
    assert [webhook.id for webhook in inbox.list("delivered")] == [ids[0]]
    assert [webhook.id for webhook in inbox.list("dead")] == [ids[1]]
    assert len(inbox.list("pending")) == 3
    assert [webhook.id for webhook in inbox.list(None, limit=2)] == ids[:2:-1][:2]
    older = inbox.list(None, limit=10, before_id=ids[2])
    assert [webhook.id for webhook in older] == [ids[1], ids[0]]
    with_body = inbox.list("pending", limit=1, include_body=True)
    assert with_body[0].body is not None


# -- delivery state -----------------------------------------------------------


def test_claim_due_hides_claimed_rows(inbox: Inbox) -> None:
    first = inbox.record_accepted(make_webhook(1)).id
    second = inbox.record_accepted(make_webhook(2)).id
    not_due = inbox.record_accepted(make_webhook(3, received_at=2_000_000_000.0)).id
    now = 1_700_000_500.0
    claimed = inbox.claim_due(now, limit=10, lease=60.0)
    assert [webhook.id for webhook in claimed] == [first, second]
    assert claimed[0].body == make_webhook(1).body
    assert inbox.claim_due(now, limit=10) == []
    after_lease = inbox.claim_due(now + 61.0, limit=10)
    assert [webhook.id for webhook in after_lease] == [first, second]
    assert not_due not in [webhook.id for webhook in after_lease]


def test_claim_due_respects_limit(inbox: Inbox) -> None:
    for number in range(1, 6):
        inbox.record_accepted(make_webhook(number))
    assert len(inbox.claim_due(1_800_000_000.0, limit=2)) == 2
    assert len(inbox.claim_due(1_800_000_000.0, limit=10)) == 3


def test_mark_delivered(inbox: Inbox) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    inbox.mark_delivered(webhook_id, now=1_700_000_123.0)
    stored = inbox.get(webhook_id)
    assert stored is not None
    assert stored.state == "delivered"
    assert stored.attempts == 1
    assert stored.delivered_at == 1_700_000_123.0
    assert stored.next_attempt_at is None


def test_mark_attempt_failed_then_dead(inbox: Inbox) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    inbox.mark_attempt_failed(webhook_id, "HTTP 502", next_attempt=1_700_000_200.0)
    retrying = inbox.get(webhook_id)
    assert retrying is not None
    assert retrying.state == "pending"
    assert retrying.attempts == 1
    assert retrying.last_error == "HTTP 502"
    assert retrying.next_attempt_at == 1_700_000_200.0
    inbox.mark_attempt_failed(webhook_id, "timed out", next_attempt=None)
    dead = inbox.get(webhook_id)
    assert dead is not None
    assert dead.state == "dead"
    assert dead.attempts == 2
    assert dead.last_error == "timed out"
    assert inbox.claim_due(2_000_000_000.0, limit=10) == []


def test_redeliver_resets_dead_webhook(inbox: Inbox) -> None:
    webhook_id = inbox.record_accepted(make_webhook(1)).id
    inbox.mark_attempt_failed(webhook_id, "HTTP 500", next_attempt=None)
    assert inbox.redeliver(webhook_id) is True
    stored = inbox.get(webhook_id)
    assert stored is not None
    assert stored.state == "pending"
    assert stored.attempts == 0
    assert stored.last_error is None
    assert [w.id for w in inbox.claim_due(time.time() + 1, 10)] == [webhook_id]


def test_redeliver_unknown_id_is_false(inbox: Inbox) -> None:
    assert inbox.redeliver(999) is False


def test_stats_counts_states(inbox: Inbox) -> None:
    ids = [inbox.record_accepted(make_webhook(n)).id for n in range(1, 5)]
    inbox.mark_delivered(ids[0], now=1_700_000_100.0)
    inbox.mark_attempt_failed(ids[1], "HTTP 500", next_attempt=None)
    inbox.record_rejection(_rejection(1))
    stats = inbox.stats(now=1_700_000_010.0)
    assert stats.accepted == 4
    assert stats.pending == 2
    assert stats.delivered == 1
    assert stats.dead == 1
    assert stats.rejections == 1
    # The oldest pending webhook is number 3, received at ...003.
    assert stats.oldest_pending_age == pytest.approx(7.0)
    assert stats.schema_version == SCHEMA_VERSION


def test_stats_of_empty_inbox(inbox: Inbox) -> None:
    stats = inbox.stats()
    assert stats.accepted == 0
    assert stats.oldest_pending_age is None


# -- rejections ---------------------------------------------------------------


def test_rejections_bounded_oldest_deleted(open_inbox: OpenInbox) -> None:
    inbox = open_inbox(max_rejections=5)
    for number in range(12):
        inbox.record_rejection(_rejection(number))
    assert inbox.stats().rejections == 5
    kept = inbox.list_rejections(limit=100)
    assert [r.received_at for r in kept] == [
        1_700_000_000.0 + number for number in range(11, 6, -1)
    ]
    assert kept[0].reasons == ("source_ip",)
    assert kept[0].client_address == "198.51.100.9"


def test_rejections_off_when_max_zero(open_inbox: OpenInbox) -> None:
    inbox = open_inbox(max_rejections=0)
    inbox.record_rejection(_rejection(1))
    assert inbox.stats().rejections == 0


# -- group commit ---------------------------------------------------------------


def test_concurrent_writers_all_recorded(inbox: Inbox) -> None:
    threads_count = 32
    per_thread = 10
    outcomes: list[list[int]] = [[] for _ in range(threads_count)]
    barrier = threading.Barrier(threads_count)

    def write(index: int) -> None:
        barrier.wait()
        for number in range(per_thread):
            webhook = make_webhook(index * 1000 + number)
            outcomes[index].append(inbox.record_accepted(webhook).id)

    threads = [
        threading.Thread(target=write, args=(index,)) for index in range(threads_count)
    ]
    commits_before = _sql(inbox).commit_count
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    all_ids = [webhook_id for ids in outcomes for webhook_id in ids]
    total = threads_count * per_thread
    assert len(set(all_ids)) == total
    for webhook_id in all_ids:
        assert inbox.get(webhook_id) is not None
    assert inbox.stats().accepted == total
    assert _sql(inbox).commit_count - commits_before <= total


class _Gate:
    """Holds the writer thread busy so that writes queue up behind it."""

    def __init__(self, inbox: SqlInbox) -> None:
        self.writer = inbox._writer
        self.event = threading.Event()
        self.thread = threading.Thread(
            target=self.writer.submit, args=(lambda connection: self.event.wait(), None)
        )
        self.thread.start()
        while self.writer._queue.qsize() > 0:
            time.sleep(0.001)

    def open_when_queued(self, count: int) -> None:
        while self.writer._queue.qsize() < count:
            time.sleep(0.001)
        self.event.set()
        self.thread.join()


def _in_threads(
    functions: list[Any],
) -> tuple[list[threading.Thread], list[Any]]:
    """Call each function in its own thread; return results or exceptions."""
    results: list[Any] = [None] * len(functions)

    def call(index: int) -> None:
        try:
            results[index] = functions[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(functions))]
    for thread in threads:
        thread.start()
    return threads, results


def test_waiting_writers_share_one_commit(inbox: Inbox) -> None:
    """Writes queued behind a busy writer all land in the next commit."""
    sql_inbox = _sql(inbox)
    gate = _Gate(sql_inbox)
    commits_before = sql_inbox.commit_count
    waiting = 20
    threads, results = _in_threads(
        [lambda n=n: inbox.record_accepted(make_webhook(n)) for n in range(waiting)]
    )
    gate.open_when_queued(waiting)
    for thread in threads:
        thread.join()

    assert all(outcome.duplicate is False for outcome in results)
    # One commit for the blocking write, one for all twenty waiting writes.
    assert sql_inbox.commit_count - commits_before == 2
    assert sql_inbox._writer.last_batch_size == waiting


def test_large_group_with_duplicates(inbox: Inbox) -> None:
    """More inserts than one INSERT statement takes, with repeats mixed in."""
    sql_inbox = _sql(inbox)
    stored_before = inbox.record_accepted(make_webhook(0)).id
    numbers = [0, *range(1, 150), 5, 5, 149]
    gate = _Gate(sql_inbox)
    threads, results = _in_threads(
        [lambda n=n: inbox.record_accepted(make_webhook(n)) for n in numbers]
    )
    gate.open_when_queued(len(numbers))
    for thread in threads:
        thread.join()

    assert sql_inbox._writer.last_batch_size == len(numbers)
    by_number: dict[int, list[Any]] = {}
    for number, outcome in zip(numbers, results, strict=True):
        by_number.setdefault(number, []).append(outcome)
    assert by_number[0][0].id == stored_before
    assert by_number[0][0].duplicate is True
    for number in (5, 149):
        outcomes = by_number[number]
        assert len({outcome.id for outcome in outcomes}) == 1
        assert sorted(outcome.duplicate for outcome in outcomes) == [
            False,
            True,
            *([True] if number == 5 else []),
        ]
    ids = {outcomes[0].id for outcomes in by_number.values()}
    assert len(ids) == 150
    assert inbox.stats().accepted == 150
    for number, outcomes in by_number.items():
        stored = inbox.get(outcomes[0].id)
        assert stored is not None
        assert stored.scan_id == f"scan-{number}"


def test_failed_write_spares_its_group(inbox: Inbox) -> None:
    """A write that fails is retried alone, so its neighbours still commit."""
    sql_inbox = _sql(inbox)
    writer = sql_inbox._writer
    gate = _Gate(sql_inbox)

    def broken() -> None:
        writer.submit(
            lambda connection: connection.execute("INSERT INTO missing VALUES (1)"),
            None,
        )

    functions: list[Any] = [
        lambda: inbox.record_accepted(make_webhook(1)),
        broken,
        lambda: inbox.record_rejection(_rejection(1)),
        lambda: inbox.record_accepted(make_webhook(2)),
    ]
    threads, results = _in_threads(functions)
    gate.open_when_queued(len(functions))
    for thread in threads:
        thread.join()

    assert isinstance(results[1], Exception)
    assert results[0].duplicate is False
    assert results[2] is None
    assert results[3].duplicate is False
    assert inbox.stats().accepted == 2
    assert inbox.stats().rejections == 1


class _Results:
    """Collect `record_accepted_later` callbacks, which run on the writer thread."""

    def __init__(self, expected: int) -> None:
        self.calls: list[tuple[Any, BaseException | None]] = []
        self.expected = expected
        self.done = threading.Event()

    def __call__(self, outcome: Any, error: BaseException | None) -> None:
        self.calls.append((outcome, error))
        if len(self.calls) == self.expected:
            self.done.set()


def test_record_later_calls_back_after_commit(inbox: Inbox) -> None:
    sql_inbox = _sql(inbox)
    gate = _Gate(sql_inbox)
    commits_before = sql_inbox.commit_count
    results = _Results(3)
    for number in (1, 2, 1):
        sql_inbox.record_accepted_later(make_webhook(number), results)
    assert results.calls == []
    gate.open_when_queued(3)
    assert results.done.wait(30)

    outcomes = [outcome for outcome, _ in results.calls]
    assert [error for _, error in results.calls] == [None, None, None]
    assert [outcome.duplicate for outcome in outcomes] == [False, False, True]
    assert outcomes[2].id == outcomes[0].id
    # One commit for the blocking write, one for the three queued ones.
    assert sql_inbox.commit_count - commits_before == 2
    stored = inbox.get(outcomes[1].id)
    assert stored is not None
    assert stored.scan_id == "scan-2"


def test_record_later_reports_write_failure(inbox: Inbox) -> None:
    results = _Results(1)
    # No driver can bind a plain object, so the INSERT fails on the writer.
    unbindable = make_webhook(1, client_address=object())
    _sql(inbox).record_accepted_later(unbindable, results)
    assert results.done.wait(30)
    outcome, error = results.calls[0]
    assert outcome is None
    assert isinstance(error, InboxUnavailable)
    assert "cannot be written" in str(error)


def test_record_later_on_closed_inbox_raises(inbox: Inbox) -> None:
    inbox.close()
    results = _Results(1)
    with pytest.raises(InboxUnavailable, match="closed"):
        _sql(inbox).record_accepted_later(make_webhook(1), results)
    assert results.calls == []


def test_group_commit_off_commits_each_write(open_inbox: OpenInbox) -> None:
    inbox = open_inbox(max_batch=1)
    before = _sql(inbox).commit_count
    for number in range(5):
        inbox.record_accepted(make_webhook(number))
    assert _sql(inbox).commit_count - before == 5


def test_duplicates_in_one_group(inbox: Inbox) -> None:
    outcomes: list[Any] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        barrier.wait()
        outcomes.append(inbox.record_accepted(make_webhook(7)))

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({outcome.id for outcome in outcomes}) == 1
    assert sum(not outcome.duplicate for outcome in outcomes) == 1
    assert inbox.stats().accepted == 1


# -- schema -------------------------------------------------------------------


def _index_exists(inbox: SqlInbox, name: str) -> bool:
    connection = inbox.connect()
    try:
        if inbox.backend == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?"
        else:
            query = (
                "SELECT indexname FROM pg_indexes"
                " WHERE schemaname = current_schema() AND indexname = ?"
            )
        return connection.execute(inbox.sql(query), (name,)).fetchone() is not None
    finally:
        connection.close()


def test_open_migrates_version_one(open_inbox: OpenInbox) -> None:
    first = _sql(open_inbox())
    webhook_id = first.record_accepted(make_webhook(1)).id
    # Turn the database back into what version 1 wrote: version 2 only
    # added the index that claim_due uses.
    connection = first.connect()
    connection.execute("DROP INDEX webhooks_due")
    connection.execute("UPDATE schema_version SET version = 1")
    connection.close()
    first.close()
    assert not _index_exists(first, "webhooks_due")

    second = _sql(open_inbox())
    assert second.stats().schema_version == SCHEMA_VERSION
    assert _index_exists(second, "webhooks_due")
    stored = second.get(webhook_id)
    assert stored is not None
    assert stored.body == make_webhook(1).body
    connection = second.connect()
    version = connection.execute("SELECT version FROM schema_version").fetchall()
    connection.close()
    assert [tuple(row) for row in version] == [(SCHEMA_VERSION,)]


def test_open_rejects_newer_schema(open_inbox: OpenInbox) -> None:
    first = _sql(open_inbox())
    connection = first.connect()
    connection.execute("UPDATE schema_version SET version = 99")
    connection.close()
    first.close()
    with pytest.raises(InboxUnavailable, match="schema version 99"):
        open_inbox()


def test_closed_inbox_raises_unavailable(inbox: Inbox) -> None:
    inbox.close()
    with pytest.raises(InboxUnavailable, match="closed"):
        inbox.record_accepted(make_webhook(1))


# -- durability ---------------------------------------------------------------

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    from hookbouncer.inbox import AcceptedWebhook, open_inbox_url

    inbox = open_inbox_url(sys.argv[1])
    outcome = inbox.record_accepted(
        AcceptedWebhook(
            route_class="status",
            event="completed",
            scan_id="durable-1",
            received_at=1700000000.0,
            client_address="203.0.113.7",
            body=b'{"status": 0}',
        )
    )
    print(outcome.id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_row_survives_sigkill_after_return(inbox_url: str, tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(_KILLED_WRITER)
    result = subprocess.run(
        [sys.executable, str(script), inbox_url],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == -9, result.stderr
    webhook_id = int(result.stdout.strip())
    reopened = open_inbox_url(inbox_url)
    try:
        stored = reopened.get(webhook_id)
        assert stored is not None
        assert stored.scan_id == "durable-1"
        assert stored.body == b'{"status": 0}'
    finally:
        reopened.close()


# -- unavailable stores -------------------------------------------------------


def test_sqlite_path_under_a_file_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    with pytest.raises(InboxUnavailable, match="cannot be opened"):
        open_inbox_url(f"sqlite:///{blocker / 'inbox.db'}")


def test_sqlite_locked_file_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "inbox.db"
    inbox = SqliteInbox(path, busy_timeout=0.05)
    try:
        inbox.record_accepted(make_webhook(1))
        other = inbox.connect()
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(InboxUnavailable, match="cannot be written"):
            inbox.record_accepted(make_webhook(2))
        assert inbox.writable() is False
        other.execute("ROLLBACK")
        other.close()
        assert inbox.writable() is True
        assert inbox.record_accepted(make_webhook(2)).duplicate is False
    finally:
        inbox.close()


def test_sqlite_file_created_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "inbox.db"
    inbox = open_inbox_url(f"sqlite:///{path}")
    inbox.close()
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/lib/x.db", "/var/lib/x.db"),
        ("sqlite:////var/lib/x.db", "/var/lib/x.db"),
    ],
)
def test_sqlite_path_from_url(url: str, expected: str) -> None:
    assert str(sqlite_path(url)) == expected


def test_open_inbox_uses_state_dir(tmp_path: Path) -> None:
    config = Config(state_dir=tmp_path, inbox=InboxConfig(max_rejections=3))
    inbox = open_inbox(config)
    try:
        assert (tmp_path / "inbox.db").exists()
        assert inbox.writable() is True
    finally:
        inbox.close()


def test_unknown_scheme_unavailable() -> None:
    with pytest.raises(InboxUnavailable, match="not supported"):
        open_inbox_url("mysql://localhost/x")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.postgres
def test_postgres_closed_port_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/test?connect_timeout=2"
    with pytest.raises(InboxUnavailable, match="cannot be opened"):
        open_inbox_url(url)


@pytest.mark.postgres
def test_postgres_reconnects_after_lost_connection(postgres_url: str) -> None:
    inbox = _sql(open_inbox_url(postgres_url))
    try:
        inbox.record_accepted(make_webhook(1))
        backend_pid = inbox._writer_connection.info.backend_pid
        admin = inbox.connect()
        admin.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
        admin.close()
        with pytest.raises(InboxUnavailable, match="cannot be written"):
            inbox.record_accepted(make_webhook(2))
        assert inbox.record_accepted(make_webhook(2)).duplicate is False
        assert inbox.stats().accepted == 2
    finally:
        inbox.close()


def test_postgres_description_hides_password() -> None:
    from hookbouncer.inbox.postgres import describe_url

    url = "postgresql://app:hunter2@db.internal:6432/hooks?sslmode=require"
    assert describe_url(url) == "postgresql://app@db.internal:6432/hooks"


def test_public_names_exported() -> None:
    import hookbouncer.inbox as package

    for name in (
        "AcceptedWebhook",
        "Inbox",
        "InboxStats",
        "RecordOutcome",
        "Rejection",
        "StoredWebhook",
        "open_inbox",
        "safe_headers",
    ):
        assert name in package.__all__
        assert hasattr(package, name)
