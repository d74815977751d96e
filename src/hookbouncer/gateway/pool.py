"""Blocking work off the reactor thread, with results back as Deferreds.

A `concurrent.futures.ThreadPoolExecutor` with one `callFromThread` per
result. Twisted's own `ThreadPool` runs several layers of Python (team,
coordinator, worker queue) on the reactor thread for each call. Under
load, a py-spy profile showed them as a large share of the reactor
thread's time, so the gateway uses this thinner path.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")


class WorkerPool:
    def __init__(self, reactor: Any, threads: int, name: str = "gateway") -> None:
        self.reactor = reactor
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    def run(self, function: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """Call `function(*args)` in a pool thread; fire on the reactor thread."""
        deferred: defer.Deferred[T] = defer.Deferred()
        future = self.executor.submit(function, *args)

        def done(finished: Future[T]) -> None:
            self.reactor.callFromThread(_deliver, deferred, finished)

        future.add_done_callback(done)
        return deferred

    def call(self, function: Callable[..., object], *args: Any) -> None:
        """Call `function(*args)` in a pool thread and forget the result."""
        self.executor.submit(function, *args)

    def stop(self) -> None:
        """Wait for queued calls to finish and stop the threads."""
        self.executor.shutdown(wait=True)


def _deliver(deferred: defer.Deferred[T], finished: Future[T]) -> None:
    error = finished.exception()
    if error is None:
        deferred.callback(finished.result())
    else:
        failure = Failure(error, type(error), error.__traceback__)  # type: ignore[no-untyped-call]
        deferred.errback(failure)
