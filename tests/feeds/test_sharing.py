"""Several processes on one state directory: one fetches, all serve it."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from hookbouncer.config import Config
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.manager import FeedManager

from .conftest import FakeClock, write_toml

HOOKBOUNCER = str(Path(sys.executable).with_name("hookbouncer"))


def test_second_manager_picks_up_new_list(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config()
    syncing = make_manager(config)
    serving = make_manager(config, disk_check_interval=0.0)
    syncing.refresh()
    serving.load_from_disk()
    assert "203.0.113.7" not in serving.snapshot().allowlist

    api.set_ranges(["203.0.113.0/24"])
    syncing.refresh()

    with caplog.at_level(logging.INFO, logger="hookbouncer.feeds"):
        assert "203.0.113.7" in serving.snapshot().allowlist
    assert "192.0.2.1" not in serving.snapshot().allowlist
    assert serving.status().ranges.generation == 2
    assert "loaded ranges feed from" in caplog.text
    assert "generation 2" in caplog.text


def test_disk_check_is_rate_limited(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    clock = FakeClock()
    config = make_config()
    syncing = make_manager(config)
    serving = make_manager(config, clock=clock, disk_check_interval=1.0)
    serving.snapshot()
    syncing.refresh()

    assert not serving.snapshot().ranges_loaded
    clock.advance(1.0)
    assert serving.snapshot().ranges_loaded


def test_sync_from_cli_reaches_running_manager(
    api: SecurityAPI, tmp_path: Path, ca_file: Path
) -> None:
    from hookbouncer.config import load_config

    config_path = write_toml(tmp_path / "hookbouncer.toml", api.url, ca_file)
    serving = FeedManager(load_config(config_path), disk_check_interval=0.0)
    assert not serving.snapshot().ranges_loaded

    result = subprocess.run(
        [HOOKBOUNCER, "sync", "--config", str(config_path)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "192.0.2.99" in serving.snapshot().allowlist
    serving.close()


def test_refresh_skips_fetch_done_by_another_process(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config()
    first = make_manager(config)
    first.refresh()
    hits = api.hits("ranges")
    # This manager started its refresh before the other one fetched, as if
    # it had waited for the lock meanwhile.
    clock = FakeClock(first.status().ranges.fetched_at or 0.0)
    clock.advance(-60)
    second = make_manager(config, clock=clock)

    outcome = second.refresh()

    assert outcome.ok
    assert outcome["ranges"].outcome == "unchanged"
    assert api.hits("ranges") == hits
    assert second.snapshot().ranges_loaded


def test_concurrent_refreshes_keep_valid_snapshot(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config()
    managers = [make_manager(config) for _ in range(3)]
    outcomes: list[bool] = []

    def run(manager: FeedManager) -> None:
        outcomes.append(manager.refresh().ok)

    threads = [threading.Thread(target=run, args=(m,)) for m in managers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == [True, True, True]
    reader = make_manager(config)
    reader.load_from_disk()
    assert reader.status().ranges.generation == 1
    assert len(reader.snapshot().allowlist) == 3
