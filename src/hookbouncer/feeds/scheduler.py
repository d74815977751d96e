"""The refresh schedule: a daemon thread that wakes on time or on request.

The gateway runs Twisted in the main thread, so every blocking refresh
happens in this thread. The thread sleeps on a `threading.Event`, which
`stop()`, an early refresh request and a changed snapshot file set.
`run_pending()` holds the decisions and takes its time from the
manager's clock, so tests drive the schedule without sleeping.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from hookbouncer.feeds.model import RefreshOutcome

if TYPE_CHECKING:
    from hookbouncer.feeds.manager import FeedManager

log = logging.getLogger("hookbouncer.feeds")

# How often the thread looks for snapshot files written by another process
# and for a list turning stale, in seconds of real time.
POLL_INTERVAL = 5.0
STALE_WARNING_INTERVAL = 3600.0


class Scheduler:
    """When to refresh: every `refresh_every` plus jitter, or early."""

    def __init__(self, manager: FeedManager, poll_interval: float = POLL_INTERVAL):
        self.manager = manager
        self.feeds = manager.feeds
        self.poll_interval = poll_interval
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._early_lock = threading.Lock()
        self._early_requested = False
        self._last_early_at: float | None = None
        self._failures = 0
        self._last_failure_at: float | None = None
        self._last_stale_warning = float("-inf")
        self._jitter = self._draw_jitter()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def due_at(self) -> float:
        """Return the clock time of the next scheduled refresh.

        A feed without a list is due at once. After a failed refresh the
        next try waits `early_refresh_interval`, doubling with each
        consecutive failure up to `refresh_every`.
        """
        fetched = [
            loaded.stored.fetched_at
            for loaded in self.manager._lists.values()
            if loaded is not None
        ]
        due = float("-inf")
        if len(fetched) == len(self.manager._lists):
            due = min(fetched) + self.feeds.refresh_every + self._jitter
        if self._last_failure_at is not None:
            retry = min(
                self.feeds.refresh_every,
                self.feeds.early_refresh_interval * 2 ** (self._failures - 1),
            )
            due = max(due, self._last_failure_at + retry)
        return due

    def run_pending(self) -> RefreshOutcome | None:
        """Refresh if due or requested; return the outcome, or None."""
        manager = self.manager
        manager.reload_if_changed()
        now = manager.clock()
        self._warn_if_stale(now)
        with self._early_lock:
            early = self._early_requested
            self._early_requested = False
        due = now >= self.due_at()
        backing_off = self._last_failure_at is not None and not due
        # An early request skips the daily wait but not the backoff after a
        # failure: requests can come from anyone who reaches the port.
        if not due and (not early or backing_off):
            return None
        try:
            outcome = manager.refresh()
        except BaseException:
            # Back off as for a failed refresh, so a bug cannot turn into
            # a refresh every poll interval.
            self._record_failure()
            raise
        if outcome.ok:
            self._failures = 0
            self._last_failure_at = None
        else:
            self._record_failure()
        self._jitter = self._draw_jitter()
        return outcome

    def _record_failure(self) -> None:
        self._failures += 1
        self._last_failure_at = self.manager.clock()

    def request_early(self) -> bool:
        """Schedule a refresh now unless one was requested too recently."""
        now = self.manager.clock()
        with self._early_lock:
            last = self._last_early_at
            if last is not None and now - last < self.feeds.early_refresh_interval:
                return False
            self._last_early_at = now
            self._early_requested = True
        log.info(
            "early feed refresh requested",
            extra={"feeds_early_refresh": True},
        )
        self._wake.set()
        return True

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stop.clear()
        if self.running:
            return
        self._thread = threading.Thread(
            target=self._run, name="hookbouncer-feeds", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the thread; a refresh in progress finishes first."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.warning(
                    "the feed refresh thread is still in a refresh; it ends"
                    " when the refresh does"
                )
                return
        self._thread = None

    def _run(self) -> None:
        log.info("feed refresh thread started", extra={"feeds_thread": "start"})
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_pending()
            except Exception:
                log.exception("the feed refresh thread caught an error")
            if self._stop.is_set():
                break
            delay = self.due_at() - self.manager.clock()
            self._wake.wait(max(0.0, min(delay, self.poll_interval)))
        log.info("feed refresh thread stopped", extra={"feeds_thread": "stop"})

    def _warn_if_stale(self, now: float) -> None:
        ages = self.manager._ages(now)
        stale = {
            name: age for name, age in ages.items() if age > self.feeds.stale_after
        }
        if not stale or now - self._last_stale_warning < STALE_WARNING_INTERVAL:
            return
        self._last_stale_warning = now
        limit = self.feeds.fail_closed_after
        for name, age in stale.items():
            if limit is not None and age > limit:
                log.error(
                    "%s feed list is %.1fh old, past feeds.fail_closed_after"
                    " (%.1fh); source_ip and client_certificate checks fail"
                    " until a refresh succeeds",
                    name,
                    age / 3600,
                    limit / 3600,
                    extra={"feed": name, "list_age": age, "fail_closed": True},
                )
                continue
            log.warning(
                "%s feed list is %.1fh old, past feeds.stale_after (%.1fh);"
                " still serving it",
                name,
                age / 3600,
                self.feeds.stale_after / 3600,
                extra={"feed": name, "list_age": age},
            )

    def _draw_jitter(self) -> float:
        return self.manager._rng.uniform(0.0, self.feeds.refresh_jitter)
