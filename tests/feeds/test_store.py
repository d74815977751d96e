"""Snapshots on disk: metadata, history, atomic files and restarts."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from hookbouncer.config import Config
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.manager import FeedManager
from hookbouncer.feeds.store import FeedStore, StoredFeed, atomic_write

from .conftest import RANGES


def test_snapshot_file_has_metadata(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    make_config: Callable[..., Config],
) -> None:
    config = make_config()
    make_manager(config).refresh()

    document = json.loads((config.state_dir / "feeds" / "ranges.json").read_bytes())

    assert document["source_url"] == api.url + "/v1/security/servers/ips"
    assert document["count"] == len(RANGES)
    assert document["entries"] == RANGES
    assert document["etag"].startswith('"')
    assert document["last_modified"].endswith("GMT")
    body = json.dumps(RANGES).encode()
    assert document["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert document["generation"] == 1
    assert document["fetched_at"] == document["changed_at"]


def test_not_modified_refreshes_fetch_time_only(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    from .conftest import FakeClock

    clock = FakeClock()
    config = make_config()
    manager = make_manager(config, clock=clock)
    manager.refresh()
    clock.advance(3600)

    outcome = manager.refresh()

    assert outcome["ranges"].outcome == "not_modified"
    stored = FeedStore(config.state_dir).read("ranges")
    assert stored is not None
    assert stored.fetched_at == clock.now
    assert stored.changed_at == clock.now - 3600
    assert stored.generation == 1
    sent = [r for r in api.requests if r.path.endswith("/ips")]
    assert "If-None-Match" in sent[-1].headers


def test_same_entries_without_etag_are_unchanged(
    api: SecurityAPI, make_manager: Callable[..., FeedManager]
) -> None:
    manager = make_manager()
    manager.refresh()
    api.etags = False
    api.set_ranges(list(reversed(RANGES)))

    outcome = manager.refresh()

    assert outcome["ranges"].outcome == "unchanged"
    assert manager.status().ranges.generation == 1


def test_history_keeps_last_versions_with_changes(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config(history=3)
    manager = make_manager(config)
    for index in range(5):
        api.set_ranges(["192.0.2.0/24", f"198.51.100.{index}"])
        assert manager.refresh()["ranges"].outcome == "updated"

    store = FeedStore(config.state_dir)
    names = [path.name for path in store.history("ranges")]
    assert names == [
        "ranges.00000005.json",
        "ranges.00000004.json",
        "ranges.00000003.json",
    ]
    newest = StoredFeed.from_json(store.history("ranges")[0].read_bytes())
    assert newest.added == ("198.51.100.4/32",)
    assert newest.removed == ("198.51.100.3/32",)


def test_update_logs_added_and_removed_entries(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    manager = make_manager()
    manager.refresh()
    api.set_ranges(["192.0.2.0/24", "203.0.113.0/24"])
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    manager.refresh()

    updates = [r for r in caplog.records if getattr(r, "outcome", None) == "updated"]
    assert len(updates) == 1
    message = updates[0].getMessage()
    assert "added [203.0.113.0/24]" in message
    assert "removed [198.51.100.0/24, 2001:db8::/32]" in message
    assert updates[0].added == 1  # type: ignore[attr-defined]
    assert updates[0].removed == 2  # type: ignore[attr-defined]


def test_update_log_caps_listed_entries(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.set_ranges([f"10.{i}.0.0/16" for i in range(50)])
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    make_manager().refresh()

    message = next(
        r.getMessage()
        for r in caplog.records
        if getattr(r, "outcome", None) == "updated"
    )
    assert "10.19.0.0/16" in message
    assert "10.20.0.0/16" not in message
    assert "and 30 more" in message


def test_no_temporary_files_left(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config()
    manager = make_manager(config)
    manager.refresh()
    manager.refresh()
    leftovers = [p.name for p in (config.state_dir / "feeds").rglob(".*.tmp")]
    assert leftovers == []


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "file.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_restart_with_server_down_serves_last_list(
    api: SecurityAPI, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    config = make_config()
    first = FeedManager(config)
    first.refresh()
    first.close()
    down = make_config(api_base="https://127.0.0.1:1")

    restarted = FeedManager(down)
    restarted.load_from_disk()
    outcome = restarted.refresh()

    assert not outcome.ok
    snapshot = restarted.snapshot()
    assert snapshot.ranges_loaded
    assert "192.0.2.200" in snapshot.allowlist
    assert len(snapshot.pins) == 2
    restarted.close()


def test_load_from_disk_needs_no_network(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    FeedManager(config).refresh()
    hits = api.hits("ranges")

    manager = FeedManager(config)
    manager.load_from_disk()

    assert "198.51.100.1" in manager.snapshot().allowlist
    assert api.hits("ranges") == hits


def test_damaged_file_falls_back_to_history(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = make_config()
    FeedManager(config).refresh()
    (config.state_dir / "feeds" / "ranges.json").write_text('{"format": 1, "entr')
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    manager = FeedManager(config)
    manager.load_from_disk()

    assert "192.0.2.1" in manager.snapshot().allowlist
    assert any("damaged" in r.getMessage() for r in caplog.records)


def test_edited_entries_are_rejected(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    FeedManager(config).refresh()
    path = config.state_dir / "feeds" / "ranges.json"
    document = json.loads(path.read_bytes())
    document["entries"][0] = "0.0.0.0/0"
    path.write_text(json.dumps(document))
    for old in (config.state_dir / "feeds" / "history").iterdir():
        old.unlink()

    manager = FeedManager(config)
    manager.load_from_disk()

    assert not manager.snapshot().ranges_loaded
    assert "203.0.113.1" not in manager.snapshot().allowlist


def test_write_failure_keeps_list_in_force(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    manager = make_manager()
    manager.refresh()
    api.set_ranges(["203.0.113.0/24"])

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(manager.store, "write", disk_full)
    outcome = manager.refresh()

    assert outcome["ranges"].reason == "storage"
    assert "No space left" in (outcome["ranges"].error or "")
    assert "192.0.2.1" in manager.snapshot().allowlist
    assert "203.0.113.1" not in manager.snapshot().allowlist


def test_generation_continues_after_current_file_lost(
    api: SecurityAPI,
    make_config: Callable[..., Config],
    make_manager: Callable[..., FeedManager],
) -> None:
    config = make_config(history=3)
    first = make_manager(config)
    for index in range(4):
        api.set_ranges([f"198.51.100.{index}"])
        first.refresh()
    for name in ("ranges.json", "thumbprints.json"):
        (config.state_dir / "feeds" / name).unlink()
    for path in (config.state_dir / "feeds" / "history").iterdir():
        path.write_text("damaged")
    api.set_ranges(["203.0.113.0/24"])

    second = make_manager(config)
    second.load_from_disk()
    second.refresh()

    assert second.status().ranges.generation == 5
    names = [p.name for p in FeedStore(config.state_dir).history("ranges")]
    assert names[0] == "ranges.00000005.json"
    assert len(names) == 3


def test_unwritable_state_dir_fails_with_storage(
    api: SecurityAPI, make_config: Callable[..., Config], tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    manager = FeedManager(make_config(state_dir=blocker))

    outcome = manager.refresh()

    assert outcome["ranges"].reason == "storage"
    assert outcome["thumbprints"].reason == "storage"
    manager.close()


def test_missing_current_file_falls_back_to_history(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    FeedManager(config).refresh()
    (config.state_dir / "feeds" / "ranges.json").unlink()

    manager = FeedManager(config)
    manager.load_from_disk()

    assert "192.0.2.1" in manager.snapshot().allowlist


def test_deeply_nested_file_is_damage_not_crash(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    FeedManager(config).refresh()
    (config.state_dir / "feeds" / "ranges.json").write_text("[" * 100_000)

    manager = FeedManager(config)
    manager.load_from_disk()

    assert "192.0.2.1" in manager.snapshot().allowlist


def test_plain_text_exports_include_extras(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config(
        extra_ranges=("203.0.113.0/24",), extra_thumbprints=("C" * 40,)
    )
    manager = FeedManager(config)
    manager.refresh()

    ranges = (config.state_dir / "feeds" / "ranges.txt").read_text()
    pins = (config.state_dir / "feeds" / "thumbprints.txt").read_text()

    assert ranges == "".join(f"{entry}\n" for entry in [*RANGES, "203.0.113.0/24"])
    assert pins.splitlines() == ["a" * 40, "b" * 64, "c" * 40]
    assert pins.endswith("\n")
    manager.close()


def test_failed_refresh_leaves_exports_alone(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    manager = FeedManager(config)
    manager.refresh()
    export = config.state_dir / "feeds" / "ranges.txt"
    before = export.stat().st_mtime_ns
    api.fail("ranges", "empty")

    manager.refresh()

    assert export.stat().st_mtime_ns == before
    assert export.read_text().splitlines() == RANGES
    manager.close()


def test_no_export_without_any_list(
    api: SecurityAPI, make_config: Callable[..., Config]
) -> None:
    config = make_config()
    api.fail("both", "html")
    manager = FeedManager(config)
    manager.refresh()
    assert not (config.state_dir / "feeds" / "ranges.txt").exists()
    manager.close()
