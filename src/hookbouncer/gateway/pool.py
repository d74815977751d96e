"""Blocking work off the reactor thread, with results back as Deferreds.

Each call crosses two threads: the reactor puts it on a queue, a pool
thread runs it, and its result comes back on the reactor thread. Under
load that crossing cost more than the checks themselves. A py-spy profile
showed Twisted's `ThreadPool` layers (team, coordinator, worker queue) on
the reactor thread, and a `ThreadPoolExecutor` still wakes the reactor
once per result. Here results wait in a deque, and a pool thread wakes
the reactor only when no delivery is pending already, so one wake-up
hands back every result finished meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, TypeVar

from twisted.internet import defer
from twisted.python.failure import Failure

T = TypeVar("T")

_Task = tuple[Callable[..., Any], tuple[Any, ...], "defer.Deferred[Any] | None"]
_Result = tuple["defer.Deferred[Any]", bool, Any]


class WorkerPool:
    def __init__(self, reactor: Any, threads: int, name: str = "gateway") -> None:
        self.reactor = reactor
        self.tasks: SimpleQueue[_Task | None] = SimpleQueue()
        self.results: deque[_Result] = deque()
        self.lock = threading.Lock()
        self.delivery_pending = False
        self.threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self.threads:
            thread.start()

    def run(self, function: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        """Call `function(*args)` in a pool thread; fire on the reactor thread."""
        deferred: defer.Deferred[T] = defer.Deferred()
        self.tasks.put((function, args, deferred))
        return deferred

    def call(self, function: Callable[..., object], *args: Any) -> None:
        """Call `function(*args)` in a pool thread and forget the result.

        An exception it raises is lost, so `function` must handle its own.
        """
        self.tasks.put((function, args, None))

    def stop(self) -> None:
        """Let the queued calls finish, then stop and join the threads."""
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            function, args, deferred = task
            try:
                result: _Result | None = None
                value = function(*args)
                if deferred is not None:
                    result = (deferred, True, value)
            except BaseException as error:
                if deferred is not None:
                    result = (deferred, False, error)
            if result is not None:
                self.hand_back(*result)

    def hand_back(self, deferred: defer.Deferred[Any], ok: bool, value: Any) -> None:
        """Fire `deferred` on the reactor thread; callable from any thread.

        `value` is the result when `ok`, else the exception to errback with.
        Results handed back while a delivery is pending share its wake-up.
        """
        self.results.append((deferred, ok, value))
        with self.lock:
            if self.delivery_pending:
                return
            self.delivery_pending = True
        self.reactor.callFromThread(self._deliver)

    def _deliver(self) -> None:
        # Clear the flag before draining, so a result appended after the
        # last popleft schedules a new delivery instead of waiting.
        with self.lock:
            self.delivery_pending = False
        while self.results:
            deferred, ok, value = self.results.popleft()
            if ok:
                deferred.callback(value)
            else:
                failure = Failure(value, type(value), value.__traceback__)  # type: ignore[no-untyped-call]
                deferred.errback(failure)
