"""The refresh schedule, early refreshes, staleness and fail-closed."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Callable

import pytest

from hookbouncer.config import Config, RouteConfig
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.manager import FeedManager

from .conftest import FakeClock

HOUR = 3600.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def scheduled(
    api: SecurityAPI,
    clock: FakeClock,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> FeedManager:
    config = make_config(
        refresh_every=24 * HOUR,
        refresh_jitter=HOUR,
        stale_after=48 * HOUR,
        fail_closed_after=72 * HOUR,
        early_refresh_interval=300.0,
    )
    return make_manager(config, clock=clock, rng=random.Random(7))


def test_first_run_refreshes_at_once(scheduled: FeedManager) -> None:
    outcome = scheduled.scheduler.run_pending()
    assert outcome is not None
    assert outcome.ok


def test_next_refresh_waits_for_interval_and_jitter(
    scheduled: FeedManager, clock: FakeClock
) -> None:
    scheduled.scheduler.run_pending()
    due = scheduled.scheduler.due_at()
    assert clock.now + 24 * HOUR <= due <= clock.now + 25 * HOUR

    clock.advance(24 * HOUR - 1)
    assert scheduled.scheduler.run_pending() is None
    clock.advance(HOUR + 1)
    assert scheduled.scheduler.run_pending() is not None


def test_failed_refresh_retries_with_growing_delay(
    api: SecurityAPI, scheduled: FeedManager, clock: FakeClock
) -> None:
    api.fail("both", "error")
    assert scheduled.scheduler.run_pending() is not None
    assert scheduled.scheduler.due_at() == clock.now + 300

    clock.advance(300)
    assert scheduled.scheduler.run_pending() is not None
    assert scheduled.scheduler.due_at() == clock.now + 600

    api.recover()
    clock.advance(600)
    outcome = scheduled.scheduler.run_pending()
    assert outcome is not None
    assert outcome.ok
    assert scheduled.scheduler.due_at() > clock.now + 24 * HOUR - 1


def test_early_refresh_waits_out_failure_backoff(
    api: SecurityAPI, scheduled: FeedManager, clock: FakeClock
) -> None:
    api.fail("both", "unavailable")
    assert scheduled.scheduler.run_pending() is not None
    hits = api.hits("ranges")

    clock.advance(300)
    assert scheduled.request_early_refresh() is True
    clock.advance(1)
    assert scheduled.request_early_refresh() is False
    assert scheduled.scheduler.run_pending() is not None
    assert api.hits("ranges") > hits
    hits = api.hits("ranges")

    clock.advance(300)
    assert scheduled.request_early_refresh() is True
    assert scheduled.scheduler.run_pending() is None
    assert api.hits("ranges") == hits


def test_early_refresh_is_rate_limited(
    api: SecurityAPI, scheduled: FeedManager, clock: FakeClock
) -> None:
    scheduled.scheduler.run_pending()
    hits = api.hits("ranges")

    assert scheduled.request_early_refresh() is True
    assert scheduled.request_early_refresh() is False
    assert scheduled.scheduler.run_pending() is not None
    assert api.hits("ranges") == hits + 1
    assert scheduled.scheduler.run_pending() is None

    clock.advance(299)
    assert scheduled.request_early_refresh() is False
    clock.advance(1)
    assert scheduled.request_early_refresh() is True


def test_stale_list_warns_hourly_and_keeps_serving(
    api: SecurityAPI,
    scheduled: FeedManager,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduled.refresh()
    api.fail("both", "error")
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    def stale_warnings() -> int:
        return sum(
            1
            for r in caplog.records
            if r.levelno == logging.WARNING and "stale_after" in r.getMessage()
        )

    clock.advance(48 * HOUR + 1)
    scheduled.scheduler.run_pending()
    assert stale_warnings() == 2
    clock.advance(600)
    scheduled.scheduler.run_pending()
    assert stale_warnings() == 2
    clock.advance(HOUR)
    scheduled.scheduler.run_pending()
    assert stale_warnings() == 4

    health = scheduled.health()
    assert health.stale
    assert health.degraded
    assert health.ready
    assert not scheduled.snapshot().fail_closed
    assert "192.0.2.1" in scheduled.snapshot().allowlist


def test_fail_closed_after_limit(
    api: SecurityAPI, scheduled: FeedManager, clock: FakeClock
) -> None:
    scheduled.refresh()
    api.fail("both", "error")
    clock.advance(72 * HOUR + 1)

    snapshot = scheduled.snapshot()

    assert snapshot.fail_closed
    assert scheduled.health().fail_closed
    assert not scheduled.health().ready
    assert scheduled.status().ranges.fail_closed

    api.recover()
    scheduled.refresh()
    assert not scheduled.snapshot().fail_closed


def test_fail_closed_logs_error_hourly(
    api: SecurityAPI,
    scheduled: FeedManager,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    scheduled.refresh()
    api.fail("both", "error")
    clock.advance(72 * HOUR + 1)
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    scheduled.scheduler.run_pending()

    closed = [r for r in caplog.records if getattr(r, "fail_closed", False)]
    assert len(closed) == 2
    assert closed[0].levelno == logging.ERROR
    assert "checks fail until a refresh succeeds" in closed[0].getMessage()


def test_health_before_any_list(scheduled: FeedManager) -> None:
    health = scheduled.health()
    assert not health.loaded
    assert not health.ready
    assert "no sender ranges loaded" in health.detail


def test_thread_refreshes_and_stops(
    api: SecurityAPI, make_manager: Callable[..., FeedManager]
) -> None:
    manager = make_manager()
    refreshed = threading.Event()
    original = manager.refresh

    def refresh_and_signal():  # type: ignore[no-untyped-def]
        outcome = original()
        refreshed.set()
        return outcome

    manager.refresh = refresh_and_signal  # type: ignore[method-assign]
    manager.start()
    assert manager.scheduler.running
    # The wait only keeps a broken thread from hanging the test run.
    assert refreshed.wait(30)
    assert manager.snapshot().ranges_loaded

    refreshed.clear()
    assert manager.request_early_refresh()
    assert refreshed.wait(30)

    manager.stop()
    assert not manager.scheduler.running


def test_running_thread_loads_other_process_list(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config()
    syncing = make_manager(config)
    syncing.refresh()
    serving = make_manager(config, disk_check_interval=0.0)
    serving.load_from_disk()
    serving.scheduler.poll_interval = 0.05
    serving.start()
    api.set_ranges(["203.0.113.0/24"])
    syncing.refresh()

    reloaded = threading.Event()
    for _ in range(600):
        if "203.0.113.1" in serving.snapshot().allowlist:
            reloaded.set()
            break
        reloaded.wait(0.05)
    assert reloaded.is_set()
    serving.stop()


def test_health_ignores_lists_no_route_checks(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config(extra_ranges=("203.0.113.0/24",))
    only_ip = {
        name: RouteConfig(("source_ip",)) for name in ("status", "new_result", "export")
    }
    manager = make_manager(dataclasses.replace(config, routes=only_ip))

    health = manager.health()

    assert health.loaded
    assert health.ready
    assert health.detail == ()


def test_refresh_exception_backs_off(
    scheduled: FeedManager, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(scheduled, "refresh", broken)

    with pytest.raises(RuntimeError):
        scheduled.scheduler.run_pending()
    assert scheduled.scheduler.due_at() == clock.now + 300
    assert scheduled.scheduler.run_pending() is None
