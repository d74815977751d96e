"""Group commit: one writer thread runs many callers' writes per transaction.

Callers put a write operation on a queue and block. The writer thread takes
every operation waiting in the queue (up to `max_batch`), runs them in one
transaction and commits once, so one fsync covers the whole group. While it
commits, new operations pile up and form the next group. Each caller is
released only after the commit that holds its write has returned.

Operations that share a `batch_key` and sit next to each other in a group
run as one call of their `run_batch`, so that, for example, all of a
group's inserts become one multi-row INSERT.

When a group fails, each operation is retried alone in its own transaction,
so one bad write cannot fail its neighbours. When the store itself is broken
they all fail again, and each caller gets the error.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

T = TypeVar("T")

log = logging.getLogger(__name__)


class WriterClosed(Exception):
    """The writer was closed before the operation ran."""


class WriteTimedOut(Exception):
    """The operation did not commit within the caller's timeout."""


# Called on the writer thread once an operation has committed or failed,
# with its result or its error.
Callback = Callable[[Any, "BaseException | None"], object]


class _Operation(Generic[T]):
    """One queued write; `wait` returns once the writer has called `finish`.

    With a callback, `finish` calls it instead, and nobody waits.
    """

    __slots__ = ("_done", "callback", "error", "function", "result")

    def __init__(
        self, function: Callable[[Any], T], callback: Callback | None = None
    ) -> None:
        self.function = function
        self.result: T | None = None
        self.error: BaseException | None = None
        self.callback = callback
        # A bare lock held until the write is finished. It is cheaper than an
        # Event, which wraps a Condition, and every commit releases many.
        self._done = threading.Lock()
        if callback is None:
            self._done.acquire()

    def finish(self) -> None:
        if self.callback is None:
            self._done.release()
            return
        try:
            self.callback(self.result, self.error)
        except Exception:
            # The callback belongs to the caller; a bug in it must not stop
            # the writer from finishing the rest of the group.
            log.exception("an inbox write callback failed")

    def wait(self, timeout: float | None) -> bool:
        return self._done.acquire(timeout=-1 if timeout is None else timeout)


class BatchableOperation(Generic[T]):
    """A write that can run together with its neighbours of the same key.

    `run_batch` gets every adjacent operation with an equal `batch_key`
    (itself first) and returns their results in the same order.
    """

    batch_key: str = ""

    def __call__(self, connection: Any) -> T:
        return self.run_batch(connection, [self])[0]

    def run_batch(
        self, connection: Any, operations: list[BatchableOperation[T]]
    ) -> list[T]:
        raise NotImplementedError


class Transactor:
    """The backend interface of the writer: a connection and transactions."""

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
        if not operation.wait(timeout):
            raise WriteTimedOut(f"the write did not commit within {timeout:g} s")
        if operation.error is not None:
            raise operation.error
        return operation.result  # type: ignore[return-value]

    def submit_later(self, function: Callable[[Any], T], callback: Callback) -> None:
        """Run `function(connection)` in the next group without waiting.

        After the commit, `callback(result, None)` runs on the writer
        thread, or `callback(None, error)` when the write or the commit
        failed. Raise `WriterClosed` at once when the writer is closed.
        There is no timeout here: a caller that needs one keeps its own
        timer and ignores a late callback.
        """
        operation = _Operation(function, callback)
        with self._lock:
            if self._closed:
                raise WriterClosed("the inbox is closed")
            self._queue.put(operation)

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
                operation.finish()
            return
        if len(batch) == 1:
            batch[0].error = error
            batch[0].finish()
            return
        log.warning(
            "inbox group of %d writes failed, retrying each alone: %s",
            len(batch),
            error,
        )
        for operation in batch:
            operation.error = self._transact([operation])
            operation.finish()

    def _transact(self, batch: list[_Operation[Any]]) -> BaseException | None:
        """Run `batch` in one transaction; return the error instead of raising."""
        connection = None
        try:
            connection = self._transactor.connection()
            self._transactor.begin(connection)
            self._run_operations(connection, batch)
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

    @staticmethod
    def _run_operations(connection: Any, batch: list[_Operation[Any]]) -> None:
        start = 0
        while start < len(batch):
            function = batch[start].function
            if not isinstance(function, BatchableOperation):
                batch[start].result = function(connection)
                start += 1
                continue
            end = start + 1
            while end < len(batch):
                following = batch[end].function
                if not isinstance(following, BatchableOperation):
                    break
                if following.batch_key != function.batch_key:
                    break
                end += 1
            group = batch[start:end]
            merged = [cast(BatchableOperation[Any], op.function) for op in group]
            results = function.run_batch(connection, merged)
            for operation, result in zip(group, results, strict=True):
                operation.result = result
            start = end
