"""Every failure kind leaves the list in force unchanged.

Each case runs the real `sync` command in process against the HTTPS feed
server, once with good lists and once with the failure. The second run
must exit 1 and log one ERROR line with the reason. The ranges file must
stay byte-for-byte the same, and a fresh manager must serve the old lists.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from hookbouncer.cli.main import main
from hookbouncer.config import load_config
from hookbouncer.emulator.security_api import Failure, SecurityAPI
from hookbouncer.feeds.manager import FeedManager

from .conftest import RANGES, write_toml

CASES: list[tuple[Failure, str]] = [
    ("error", "http_status"),
    ("unavailable", "http_status"),
    ("unauthorized", "http_status"),
    ("hang", "timeout"),
    ("slow", "timeout"),
    ("html", "html"),
    ("empty", "empty"),
    ("zero_prefix", "invalid_entry"),
    ("invalid_entry", "invalid_entry"),
    ("shape", "shape"),
    ("redirect", "redirect"),
    ("redirect_http", "redirect"),
    ("huge", "too_large"),
    ("huge_declared", "too_large"),
    ("glued", "not_json"),
    ("truncated", "truncated"),
]


def ranges_file(config_path: Path) -> bytes:
    return (config_path.parent / "state" / "feeds" / "ranges.json").read_bytes()


def serves_original_lists(config_path: Path) -> bool:
    manager = FeedManager(load_config(config_path))
    manager.load_from_disk()
    snapshot = manager.snapshot()
    return (
        len(snapshot.allowlist) == len(RANGES)
        and "192.0.2.10" in snapshot.allowlist
        and "2001:db8::5" in snapshot.allowlist
        and len(snapshot.pins) == 2
    )


@pytest.fixture
def config_path(tmp_path: Path, api: SecurityAPI, ca_file: Path) -> Path:
    return write_toml(tmp_path / "hookbouncer.toml", api.url, ca_file)


@pytest.mark.parametrize(("failure", "reason"), CASES)
def test_sync_failure_keeps_previous_list(
    failure: Failure,
    reason: str,
    api: SecurityAPI,
    config_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sync", "--config", str(config_path)]) == 0
    before = ranges_file(config_path)
    api.fail("ranges", failure)
    caplog.clear()
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    code = main(["sync", "--config", str(config_path)])

    assert code == 1
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "reason", None) for r in errors] == [reason]
    assert "still serving the list fetched" in errors[0].getMessage()
    assert ranges_file(config_path) == before
    assert serves_original_lists(config_path)
    stderr = capsys.readouterr().err
    assert "the ranges feed was not updated" in stderr
    assert f"({reason})" in stderr


@pytest.mark.parametrize(("failure", "reason"), CASES)
def test_manager_failure_keeps_snapshot(
    failure: Failure,
    reason: str,
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
) -> None:
    manager = make_manager()
    assert manager.refresh().ok
    before = manager.snapshot()
    api.fail("both", failure)

    outcome = manager.refresh()

    assert outcome["ranges"].reason == reason
    assert outcome["thumbprints"].reason == reason
    after = manager.snapshot()
    assert after.allowlist is before.allowlist
    assert after.pins is before.pins
    assert manager.status().ranges.last_outcome == "failed"
    assert manager.status().ranges.feed_count == len(RANGES)


def test_sync_fails_when_server_is_down(
    tmp_path: Path, ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config_path = write_toml(tmp_path / "down.toml", "https://127.0.0.1:1", ca_file)
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    assert main(["sync", "--config", str(config_path)]) == 1

    reasons = {
        getattr(r, "reason", None) for r in caplog.records if r.levelno == logging.ERROR
    }
    assert reasons == {"network"}
    retries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [getattr(r, "attempt", None) for r in retries] == [1, 1]


def test_sync_fails_on_untrusted_certificate(
    tmp_path: Path, api: SecurityAPI, caplog: pytest.LogCaptureFixture
) -> None:
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    config_path = write_toml(tmp_path / "tls.toml", api.url, other_ca)
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")

    assert main(["sync", "--config", str(config_path)]) == 1

    reasons = {
        getattr(r, "reason", None) for r in caplog.records if r.levelno == logging.ERROR
    }
    assert reasons == {"tls"}


def test_plain_http_api_base_rejected(
    make_manager: Callable[..., FeedManager], make_config: Callable[..., object]
) -> None:
    manager = make_manager(make_config(api_base="http://127.0.0.1:1"))
    outcome = manager.refresh()
    assert outcome["ranges"].reason == "insecure_url"


def test_followed_redirect_must_stay_https(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    make_config: Callable[..., object],
) -> None:
    manager = make_manager(make_config(follow_redirects=True))
    api.fail("ranges", "redirect_http")
    outcome = manager.refresh()
    assert outcome["ranges"].reason == "insecure_url"
    assert outcome["thumbprints"].outcome == "updated"
    assert not manager.snapshot().allowlist


def test_followed_redirect_to_missing_page_fails(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    make_config: Callable[..., object],
) -> None:
    manager = make_manager(make_config(follow_redirects=True))
    api.fail("ranges", "redirect")
    outcome = manager.refresh()
    assert outcome["ranges"].reason == "http_status"
    assert "404" in (outcome["ranges"].error or "")


def test_transient_failure_recovers_on_retry(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hookbouncer.feeds")
    manager = make_manager()
    api.fail("ranges", "error", times=1)

    outcome = manager.refresh()

    assert outcome.ok
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].attempt == 1  # type: ignore[attr-defined]
    assert warnings[0].next_delay > 0  # type: ignore[attr-defined]


def test_client_error_is_not_retried(
    api: SecurityAPI,
    make_manager: Callable[..., FeedManager],
    make_config: Callable[..., object],
) -> None:
    manager = make_manager(make_config(retries=3))
    api.fail("ranges", "unauthorized")
    hits = api.hits("ranges")
    assert manager.refresh()["ranges"].reason == "http_status"
    assert api.hits("ranges") - hits == 1


def test_failure_before_any_list_serves_nothing(
    api: SecurityAPI, make_manager: Callable[..., FeedManager]
) -> None:
    manager = make_manager()
    api.fail("both", "zero_prefix")
    api.set_thumbprints(["A" * 40])
    manager.refresh()
    snapshot = manager.snapshot()
    assert not snapshot.ranges_loaded
    assert "203.0.113.9" not in snapshot.allowlist
    assert not manager.health().ready
