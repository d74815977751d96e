"""Operator additions: extra_ranges and extra_thumbprints."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hookbouncer.cli.main import main
from hookbouncer.config import Config
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.errors import ConfigError
from hookbouncer.feeds.manager import FeedManager

from .conftest import PINS, RANGES, write_toml

EXTRA_PIN = "C" * 40


def test_extras_served_before_any_feed(make_config: Callable[..., Config]) -> None:
    config = make_config(
        api_base="https://127.0.0.1:1",
        extra_ranges=("203.0.113.0/24",),
        extra_thumbprints=(EXTRA_PIN,),
    )
    manager = FeedManager(config)

    snapshot = manager.snapshot()

    assert snapshot.ranges_loaded
    assert snapshot.pins_loaded
    assert "203.0.113.4" in snapshot.allowlist
    assert EXTRA_PIN.lower() in snapshot.pins
    assert manager.health().loaded


def test_extras_merge_with_feed(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config(
        extra_ranges=("203.0.113.0/24", "192.0.2.0/24"),
        extra_thumbprints=(EXTRA_PIN,),
    )
    manager = make_manager(config)
    manager.refresh()

    snapshot = manager.snapshot()
    status = manager.status()

    assert "203.0.113.4" in snapshot.allowlist
    assert "198.51.100.4" in snapshot.allowlist
    assert status.ranges.feed_count == len(RANGES)
    assert status.ranges.extra_count == 2
    assert status.ranges.total_count == len(RANGES) + 1
    assert status.thumbprints.feed_count == len(PINS)
    assert status.thumbprints.extra_count == 1
    assert len(snapshot.pins) == len(PINS) + 1


def test_extras_survive_failed_feed(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    manager = make_manager(make_config(extra_ranges=("203.0.113.0/24",)))
    api.fail("both", "html")
    manager.refresh()
    assert "203.0.113.4" in manager.snapshot().allowlist
    assert "192.0.2.1" not in manager.snapshot().allowlist


@pytest.mark.parametrize(
    ("key", "entry", "message"),
    [
        ("extra_ranges", "10.0.0.1/8", "host bits"),
        ("extra_ranges", "0.0.0.0/0", "every address"),
        ("extra_ranges", "10.0.0.0/8", "minimum prefix /16"),
        ("extra_ranges", "not-an-ip", "not an IP address"),
        ("extra_thumbprints", "abc", "3 hex digits"),
    ],
)
def test_bad_extra_is_config_error(
    key: str, entry: str, message: str, make_config: Callable[..., Config]
) -> None:
    config = make_config(**{key: ("192.0.2.0/24",) if key == "extra_ranges" else ()})
    config = make_config(**{key: (*getattr(config.feeds, key), entry)})
    with pytest.raises(ConfigError) as caught:
        FeedManager(config)
    text = str(caught.value)
    assert f"feeds.{key}" in text
    assert repr(entry) in text
    assert message in text
    assert "position" not in text


def test_bad_extra_stops_sync_with_exit_2(
    tmp_path: Path, ca_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = write_toml(
        tmp_path / "bad.toml",
        "https://127.0.0.1:1",
        ca_file,
        extra_ranges=["192.0.2.0/24", "10.0.0.1/8"],
    )
    assert main(["sync", "--config", str(config_path)]) == 2
    assert "'10.0.0.1/8'" in capsys.readouterr().err
