"""Measure durable acknowledgements per second with and without group commit.

N writer threads each call `record_accepted` in a loop on a SQLite inbox
with `synchronous = FULL`, as the gateway's request threads do. A call
returns only after its commit, so every counted call is a durable
acknowledgement. The same run measures two inboxes in the same directory:

- group: the writer thread commits every queued write in one transaction.
- single: `max_batch = 1`, so each request gets its own commit and fsync,
  still through the one writer thread. This isolates the gain of grouping.
- connections: each writer thread opens its own inbox (its own connection)
  with `max_batch = 1`, the usual one-transaction-per-request design. The
  writers then contend for SQLite's write lock.

Rounds alternate between the two modes so that disk cache and background
load affect both alike; the median round of each mode is reported.

    .venv/bin/python bench/inbox_commit.py --writers 32 --per-writer 100
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from hookbouncer.inbox import AcceptedWebhook
from hookbouncer.inbox.sqlite import SqliteInbox

MODES = ("group", "single", "connections")


@dataclass(frozen=True)
class Round:
    mode: str
    writes: int
    seconds: float
    commits: int

    @property
    def rate(self) -> float:
        return self.writes / self.seconds


def open_inboxes(path: Path, mode: str, writers: int) -> list[SqliteInbox]:
    """Return the inbox each writer thread uses, by index."""
    if mode == "connections":
        return [
            SqliteInbox(path, synchronous="full", max_batch=1) for _ in range(writers)
        ]
    max_batch = 512 if mode == "group" else 1
    return [SqliteInbox(path, synchronous="full", max_batch=max_batch)] * writers


def run_round(
    path: Path, mode: str, writers: int, per_writer: int, body: bytes, offset: int
) -> Round:
    inboxes = open_inboxes(path, mode, writers)
    distinct = list({id(inbox): inbox for inbox in inboxes}.values())
    commits_before = sum(inbox.commit_count for inbox in distinct)
    barrier = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def write(index: int) -> None:
        inbox = inboxes[index]
        barrier.wait()
        try:
            for number in range(per_writer):
                inbox.record_accepted(
                    AcceptedWebhook(
                        route_class="status",
                        event="completed",
                        scan_id=f"bench-{offset}-{index}-{number}",
                        received_at=time.time(),
                        client_address="203.0.113.7",
                        body=body,
                        headers=(("content-type", "application/json"),),
                        checks=("source_ip", "client_certificate"),
                    )
                )
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    commits = sum(inbox.commit_count for inbox in distinct) - commits_before
    for inbox in distinct:
        inbox.close()
    if errors:
        raise errors[0]
    return Round(mode, writers * per_writer, seconds, commits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=32, help="writer threads")
    parser.add_argument(
        "--per-writer", type=int, default=100, help="records each thread writes"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per mode")
    parser.add_argument(
        "--body-bytes", type=int, default=2048, help="size of each body in bytes"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="directory for the database files (default: a temporary directory)",
    )
    args = parser.parse_args()
    body = b'{"status": 0, "pad": "' + b"x" * max(0, args.body_bytes - 22) + b'"}'

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="inbox-bench-") as folder:
        print(
            f"python {platform.python_version()}, SQLite {sqlite3.sqlite_version},"
            f" {os.cpu_count()} CPUs, files in {folder}"
        )
        print(
            f"{args.writers} writers x {args.per_writer} records,"
            f" {len(body)}-byte bodies, synchronous FULL, WAL"
        )
        results: dict[str, list[Round]] = {mode: [] for mode in MODES}
        for round_number in range(args.rounds):
            for mode in MODES:
                path = Path(folder) / f"{mode}.db"
                result = run_round(
                    path, mode, args.writers, args.per_writer, body, round_number
                )
                results[mode].append(result)
                print(
                    f"  round {round_number + 1} {mode:11}: {result.rate:8.1f} acks/s,"
                    f" {result.writes} writes in {result.commits} commits"
                    f" ({result.writes / result.commits:.1f} writes per commit)"
                )
        medians = {
            mode: statistics.median(r.rate for r in rounds)
            for mode, rounds in results.items()
        }
        for mode, rate in medians.items():
            print(f"median {mode:11}: {rate:8.1f} durable acks/s")
        for baseline in ("single", "connections"):
            ratio = medians["group"] / medians[baseline]
            print(f"ratio group / {baseline:11}: {ratio:6.2f}x")


if __name__ == "__main__":
    main()
