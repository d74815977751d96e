"""Copyleaks login: bearer token, caching, renewal and secrecy."""

from __future__ import annotations

import logging
import stat
import time
from collections.abc import Callable

import pytest

from hookbouncer.config import Config, LoginConfig, Secret
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.login import _parse_expiry
from hookbouncer.feeds.manager import FeedManager

from .conftest import FakeClock

EMAIL = "ops@example.com"
KEY = b"00000000-1111-2222-3333-444444444444"


@pytest.fixture
def login_config(api: SecurityAPI, make_config: Callable[..., Config]) -> Config:
    api.require_login(EMAIL, KEY)
    return make_config(
        login=LoginConfig(email=EMAIL, api_key=Secret(KEY, "test"), url=api.login_url)
    )


def bearer_tokens(api: SecurityAPI) -> list[str]:
    return [
        r.headers.get("Authorization", "") for r in api.requests if r.method == "GET"
    ]


def test_feed_requests_carry_bearer_token(
    api: SecurityAPI, login_config: Config, make_manager: Callable[..., FeedManager]
) -> None:
    logins = api.logins
    outcome = make_manager(login_config).refresh()

    assert outcome.ok
    assert api.logins == logins + 1
    tokens = bearer_tokens(api)
    assert len(tokens) == 2
    assert all(token.startswith("Bearer ") for token in tokens)


def test_token_is_reused_and_cached_with_0600(
    api: SecurityAPI, login_config: Config, make_manager: Callable[..., FeedManager]
) -> None:
    logins = api.logins
    make_manager(login_config).refresh()
    make_manager(login_config).refresh()

    assert api.logins == logins + 1
    token_file = login_config.state_dir / "feeds" / "login-token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600


def test_token_not_cached_on_disk_when_disabled(
    api: SecurityAPI, login_config: Config, make_manager: Callable[..., FeedManager]
) -> None:
    make_manager(login_config, cache_token=False).refresh()
    assert not (login_config.state_dir / "feeds" / "login-token.json").exists()


def test_token_renewed_before_expiry(
    api: SecurityAPI, login_config: Config, make_manager: Callable[..., FeedManager]
) -> None:
    # The emulator stamps expiry times from the real clock.
    clock = FakeClock(time.time())
    manager = make_manager(login_config, clock=clock, cache_token=False)
    manager.refresh()
    logins = api.logins

    clock.advance(46 * 3600)
    manager.refresh()
    assert api.logins == logins
    clock.advance(1.5 * 3600)
    manager.refresh()
    assert api.logins == logins + 1


def test_revoked_token_triggers_one_new_login(
    api: SecurityAPI, login_config: Config, make_manager: Callable[..., FeedManager]
) -> None:
    manager = make_manager(login_config)
    manager.refresh()
    logins = api.logins
    api.revoke_tokens()
    api.set_ranges(["203.0.113.0/24"])

    outcome = manager.refresh()

    assert outcome.ok
    assert api.logins == logins + 1
    assert "203.0.113.5" in manager.snapshot().allowlist


def test_wrong_key_fails_and_keeps_list(
    api: SecurityAPI,
    login_config: Config,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_manager(login_config).refresh()
    api.require_login(EMAIL, b"rotated-key")
    api.revoke_tokens()
    (login_config.state_dir / "feeds" / "login-token.json").unlink()
    manager = make_manager(login_config)
    manager.load_from_disk()
    caplog.set_level(logging.DEBUG)

    outcome = manager.refresh()

    assert outcome["ranges"].reason == "login"
    assert "192.0.2.1" in manager.snapshot().allowlist
    assert KEY.decode() not in caplog.text
    assert "rotated-key" not in caplog.text


def test_key_and_token_never_logged(
    api: SecurityAPI,
    login_config: Config,
    make_manager: Callable[..., FeedManager],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    manager = make_manager(login_config)
    manager.refresh()
    api.revoke_tokens()
    manager.refresh()

    tokens = {t.removeprefix("Bearer ") for t in bearer_tokens(api)}
    assert tokens
    assert KEY.decode() not in caplog.text
    for token in tokens:
        assert token not in caplog.text
    assert KEY.decode() not in repr(manager._get_fetcher().tokens)


def test_feed_without_login_config_reports_401(
    api: SecurityAPI, make_manager: Callable[..., FeedManager]
) -> None:
    api.require_login(EMAIL, KEY)
    outcome = make_manager().refresh()
    assert outcome["ranges"].reason == "http_status"
    assert "configure feeds.login" in (outcome["ranges"].error or "")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-03T00:00:00Z", 1767398400.0),
        ("2026-01-03T00:00:00.1234567Z", 1767398400.1234567),
        ("2026-01-03T00:00:00+00:00", 1767398400.0),
        ("2026-01-03T00:00:00", 1767225600.0 + 48 * 3600),
        ("not a date", 1767225600.0 + 48 * 3600),
        (None, 1767225600.0 + 48 * 3600),
        ("2020-01-01T00:00:00Z", 1767225600.0 + 48 * 3600),
    ],
)
def test_parse_expiry(value: object, expected: float) -> None:
    issued = 1767225600.0  # 2026-01-01T00:00:00Z
    assert _parse_expiry(value, issued) == pytest.approx(expected, abs=1e-3)
