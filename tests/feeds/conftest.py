"""Fixtures for the feed tests: a real HTTPS feed server and configs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hookbouncer.config import Config, FeedsConfig
from hookbouncer.emulator.security_api import SecurityAPI
from hookbouncer.feeds.manager import FeedManager

RANGES = ["192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32"]
PINS = ["A" * 40, "b" * 64]

# Short timeouts and backoffs keep failure tests quick; none of them is a
# timing assertion.
FAST_FEEDS: dict[str, Any] = {
    "connect_timeout": 2.0,
    "read_timeout": 0.5,
    "retries": 1,
    "backoff_initial": 0.01,
    "backoff_max": 0.02,
    "max_response_bytes": 64 * 1024,
}


@pytest.fixture(scope="session")
def shared_api() -> Iterator[SecurityAPI]:
    api = SecurityAPI().start()
    yield api
    api.stop()


@pytest.fixture
def api(shared_api: SecurityAPI) -> Iterator[SecurityAPI]:
    """The feed server with the standard lists and no failure set."""
    shared_api.recover()
    shared_api.set_ranges(RANGES)
    shared_api.set_thumbprints(PINS)
    shared_api.etags = True
    shared_api._login = None
    shared_api.requests.clear()
    yield shared_api
    shared_api.recover()


@pytest.fixture
def ca_file(tmp_path: Path, shared_api: SecurityAPI) -> Path:
    return shared_api.credentials.write_ca(tmp_path / "feeds-ca.pem")


@pytest.fixture
def make_config(
    tmp_path: Path, ca_file: Path, shared_api: SecurityAPI
) -> Callable[..., Config]:
    def make(state_dir: Path | None = None, **feeds: Any) -> Config:
        settings = {
            "api_base": shared_api.url,
            "ca_bundle": ca_file,
            **FAST_FEEDS,
            **feeds,
        }
        return Config(
            state_dir=state_dir or tmp_path / "state",
            feeds=FeedsConfig(**settings),
            source="test.toml",
        )

    return make


@pytest.fixture
def make_manager(
    make_config: Callable[..., Config],
) -> Iterator[Callable[..., FeedManager]]:
    managers: list[FeedManager] = []

    def make(config: Config | None = None, **options: Any) -> FeedManager:
        manager = FeedManager(config or make_config(), **options)
        managers.append(manager)
        return manager

    yield make
    for manager in managers:
        manager.close()


class FakeClock:
    """A settable clock for schedule and age tests."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def replace_feeds(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(
        config, feeds=dataclasses.replace(config.feeds, **changes)
    )


def write_toml(path: Path, api_base: str, ca_file: Path, **feeds: Any) -> Path:
    """Write a minimal config file for the CLI that checks source_ip only."""
    lines = [
        f'state_dir = "{path.parent / "state"}"',
        "[server]",
        'certificate = "server.pem"',
        'private_key = "server.key"',
    ]
    for route in ("status", "new_result", "export"):
        lines += [f"[routes.{route}]", 'checks = ["source_ip"]']
    settings = {
        "api_base": api_base,
        "ca_bundle": str(ca_file),
        "connect_timeout": "2s",
        "read_timeout": "500ms",
        "retries": 1,
        "backoff_initial": "10ms",
        "backoff_max": "20ms",
        "max_response_bytes": 65536,
        **feeds,
    }
    lines.append("[feeds]")
    for key, value in settings.items():
        if isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        elif isinstance(value, bool):
            lines.append(f"{key} = {str(value).lower()}")
        elif isinstance(value, list):
            items = ", ".join(f'"{item}"' for item in value)
            lines.append(f"{key} = [{items}]")
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return path
