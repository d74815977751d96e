"""Fetcher details: backoff, Retry-After, the lock and snapshot safety."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable

import httpx
import pytest
from filelock import FileLock

from hookbouncer.config import Config, FeedsConfig
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.fetch import Fetcher
from hookbouncer.feeds.manager import FeedManager


def fetcher(**settings: float) -> Fetcher:
    feeds = FeedsConfig(**settings)  # type: ignore[arg-type]
    return Fetcher(feeds, httpx.Client(), rng=random.Random(1))


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [(1, 0.5, 1.0), (2, 1.0, 2.0), (3, 2.0, 4.0), (4, 4.0, 8.0), (8, 5.0, 10.0)],
)
def test_backoff_doubles_within_jitter_and_cap(
    attempt: int, low: float, high: float
) -> None:
    source = fetcher(backoff_initial=1.0, backoff_max=10.0)
    delays = [source.backoff(attempt) for _ in range(50)]
    assert min(delays) >= low
    assert max(delays) <= high


def test_backoff_jitter_varies() -> None:
    source = fetcher(backoff_initial=1.0, backoff_max=10.0)
    assert len({source.backoff(3) for _ in range(10)}) > 1


def test_retry_after_lengthens_delay_up_to_cap() -> None:
    source = fetcher(backoff_initial=0.1, backoff_max=5.0)
    assert source.backoff(1, retry_after=3.0) == 3.0
    assert source.backoff(1, retry_after=600.0) == 5.0


def test_retry_after_header_is_used(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    slept: list[float] = []
    manager = make_manager(
        make_config(backoff_initial=0.01, backoff_max=0.5), sleep=slept.append
    )
    api.fail("ranges", "unavailable", times=1)

    assert manager.refresh().ok
    assert slept == [0.5]


def test_lock_held_too_long_fails_with_locked(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = make_config()
    manager = make_manager(config)
    monkeypatch.setattr(manager, "_lock_timeout", lambda: 0.05)
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")
    (config.state_dir / "feeds").mkdir(parents=True)
    hits = api.hits("ranges")

    with FileLock(config.state_dir / "feeds" / "refresh.lock"):
        outcome = manager.refresh()

    assert outcome["ranges"].reason == "locked"
    assert outcome["thumbprints"].reason == "locked"
    assert api.hits("ranges") == hits
    assert "refresh.lock" in caplog.text


def test_snapshot_never_raises(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = make_manager(disk_check_interval=0.0)
    manager.refresh()
    before = manager.snapshot()

    def broken(name: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(manager.store, "signature", broken)

    assert manager.snapshot() is before
    assert "checking the feed snapshot files failed" in caplog.text


def test_snapshot_fails_closed_on_age_error(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = make_manager()
    manager.refresh()

    def broken(now: float) -> bool:
        raise ValueError("bug")

    monkeypatch.setattr(manager, "_is_fail_closed", broken)

    assert manager.snapshot().fail_closed


def test_failure_log_carries_list_age(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from .conftest import FakeClock

    clock = FakeClock()
    manager = make_manager(clock=clock)
    manager.refresh()
    clock.advance(7200)
    api.fail("ranges", "html")
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    manager.refresh()

    error = next(r for r in caplog.records if r.levelno == logging.ERROR)
    assert error.list_age == 7200  # type: ignore[attr-defined]
    assert "still serving the list fetched 2.0h ago" in error.getMessage()


def test_unexpected_error_keeps_list(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = make_manager()
    manager.refresh()
    api.set_ranges(["203.0.113.0/24"])

    def explode(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(manager, "_parse", explode)
    outcome = manager.refresh()

    assert outcome["ranges"].reason == "internal"
    assert "192.0.2.1" in manager.snapshot().allowlist
    assert "203.0.113.1" not in manager.snapshot().allowlist


def test_injected_transport_is_used(make_config: Callable[..., Config]) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path.endswith("/ips"):
            return httpx.Response(200, json={"ips": ["192.0.2.0/24"]})
        return httpx.Response(200, json=[{"thumbprint": "AB" * 20}])

    config = make_config(api_base="https://feeds.invalid")
    manager = FeedManager(config, transport=httpx.MockTransport(answer))

    assert manager.refresh().ok
    assert seen == ["/v1/security/servers/ips", "/v2/security/client-certificates"]
    assert "192.0.2.9" in manager.snapshot().allowlist
    manager.close()
