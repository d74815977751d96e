"""Group commit: one writer thread runs many callers' writes per transaction.

Callers put a write operation on a queue and block. The writer thread takes
every operation waiting in the queue (up to `max_batch`), runs them in one
transaction and commits once, so one fsync covers the whole group. While it
commits, new operations pile up and form the next group. Each caller is
released only after the commit that holds its write has returned.

When a group fails, each operation is retried alone in its own transaction,
so one bad write cannot fail its neighbours. When the store itself is broken
they all fail again, and each caller gets the error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class WriterClosed(Exception):
    """The writer was closed before the operation ran."""


class WriteTimedOut(Exception):
    """The operation did not commit within the caller's timeout."""


class _Operation(Generic[T]):
    __slots__ = ("done", "error", "function", "result")

    def __init__(self, function: Callable[[Any], T]) -> None:
        self.function = function
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class Transactor:
    """What the writer needs from a backend: a connection and a transaction."""

    def connection(self) -> Any:
        """Return the writer's connection, connecting again if it was lost."""
        raise NotImplementedError

    def begin(self, connection: Any) -> None:
        raise NotImplementedError

    def commit(self, connection: Any) -> None:
        raise NotImplementedError

    def rollback(self, connection: Any) -> None:
        raise NotImplementedError


class GroupCommitWriter:
    """A thread that runs queued write operations in grouped transactions."""

    def __init__(
        self, transactor: Transactor, *, max_batch: int = 512, name: str = "inbox"
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, not {max_batch}")
        self._transactor = transactor
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Operation[Any] | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self.commits = 0
        self.last_batch_size = 0
        self.max_batch_seen = 0
        self._thread = threading.Thread(
            target=self._run, name=f"{name}-writer", daemon=True
        )
        self._thread.start()

    def submit(self, function: Callable[[Any], T], timeout: float | None) -> T:
        """Run `function(connection)` in the next group and return its result
        after the commit; re-raise what it or the commit raised."""
        operation = _Operation(function)
        with self._lock:
            if self._closed:
                raise WriterClosed("the inbox is closed")
            self._queue.put(operation)
        if not operation.done.wait(timeout):
            raise WriteTimedOut(f"the write did not commit within {timeout:g} s")
        if operation.error is not None:
            raise operation.error
        return operation.result  # type: ignore[return-value]

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout: float | None = 30.0) -> None:
        """Run what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch: list[_Operation[Any]] = [first]
            while len(batch) < self._max_batch:
                try:
                    following = self._queue.get_nowait()
                except queue.Empty:
                    break
                if following is None:
                    stopping = True
                    break
                batch.append(following)
            self._run_batch(batch)

    def _run_batch(self, batch: list[_Operation[Any]]) -> None:
        self.last_batch_size = len(batch)
        self.max_batch_seen = max(self.max_batch_seen, len(batch))
        error = self._transact(batch)
        if error is None:
            for operation in batch:
                operation.done.set()
            return
        if len(batch) == 1:
            batch[0].error = error
            batch[0].done.set()
            return
        log.warning(
            "inbox group of %d writes failed, retrying each alone: %s",
            len(batch),
            error,
        )
        for operation in batch:
            operation.error = self._transact([operation])
            operation.done.set()

    def _transact(self, batch: list[_Operation[Any]]) -> BaseException | None:
        """Run `batch` in one transaction; return the error instead of raising."""
        connection = None
        try:
            connection = self._transactor.connection()
            self._transactor.begin(connection)
            for operation in batch:
                operation.result = operation.function(connection)
            self._transactor.commit(connection)
        except Exception as error:
            if connection is not None:
                try:
                    self._transactor.rollback(connection)
                except Exception as rollback_error:
                    log.debug("inbox rollback failed: %s", rollback_error)
            for operation in batch:
                operation.result = None
            return error
        self.commits += 1
        return None
