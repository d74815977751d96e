"""Operator additions: `feeds.extra_ranges` and `feeds.extra_thumbprints`.

They pass the same checks as feed entries. A bad one is a `ConfigError`
at startup that names the key and the entry, so nothing starts serving
with a list the operator did not mean.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hookbouncer.config import Config
from hookbouncer.errors import ConfigError
from hookbouncer.feeds.validate import IPNetwork, normalize_thumbprint, parse_network

T = TypeVar("T")


def extra_networks(config: Config) -> tuple[IPNetwork, ...]:
    """Return the validated `feeds.extra_ranges` without duplicates."""
    feeds = config.feeds

    def check(entry: str) -> IPNetwork:
        return parse_network(entry, feeds.min_prefix_ipv4, feeds.min_prefix_ipv6)

    return _validated(config, "feeds.extra_ranges", feeds.extra_ranges, check)


def extra_thumbprints(config: Config) -> tuple[str, ...]:
    """Return the normalised `feeds.extra_thumbprints` without duplicates."""
    entries = config.feeds.extra_thumbprints
    return _validated(config, "feeds.extra_thumbprints", entries, normalize_thumbprint)


def _validated(
    config: Config, key: str, entries: tuple[str, ...], check: Callable[[str], T]
) -> tuple[T, ...]:
    values: dict[T, None] = {}
    for entry in entries:
        try:
            values[check(entry)] = None
        except ValueError as error:
            raise ConfigError(
                f"{config.source}: {key} contains {entry!r}, which is invalid: {error}"
            ) from None
    return tuple(values)
