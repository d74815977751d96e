"""Values the feed modules pass around: feeds, failures and outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from hookbouncer.errors import FeedError

FeedName = Literal["ranges", "thumbprints"]
FEED_NAMES: tuple[FeedName, ...] = ("ranges", "thumbprints")

# Reason code of a rejected update, for logs, status output and tests.
FailureReason = Literal[
    "network",
    "timeout",
    "tls",
    "insecure_url",
    "http_status",
    "redirect",
    "too_large",
    "truncated",
    "html",
    "not_json",
    "shape",
    "empty",
    "invalid_entry",
    "login",
    "locked",
    "storage",
    "internal",
]

Outcome = Literal["updated", "unchanged", "not_modified", "failed"]


class FeedUpdateError(FeedError):
    """A feed update was rejected; the list in force stays unchanged."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason
        self.message = message


@dataclass(frozen=True)
class FetchResult:
    """One HTTP response that passed the transport checks."""

    url: str
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


@dataclass(frozen=True)
class FeedOutcome:
    """The outcome of one refresh for one feed."""

    feed: FeedName
    outcome: Outcome
    count: int = 0
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    reason: FailureReason | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


@dataclass(frozen=True)
class RefreshOutcome:
    """The outcome of one refresh of both feeds."""

    feeds: tuple[FeedOutcome, ...]

    @property
    def ok(self) -> bool:
        return all(feed.ok for feed in self.feeds)

    def __getitem__(self, feed: FeedName) -> FeedOutcome:
        for item in self.feeds:
            if item.feed == feed:
                return item
        raise KeyError(feed)


@dataclass(frozen=True)
class FeedState:
    """Status of one feed: the list in force and the last attempt."""

    feed: FeedName
    source_url: str | None
    fetched_at: float | None
    changed_at: float | None
    age: float | None
    feed_count: int
    extra_count: int
    total_count: int
    generation: int
    etag: str | None
    last_attempt_at: float | None
    last_outcome: Outcome | None
    last_error: str | None
    last_error_at: float | None
    stale: bool
    fail_closed: bool


@dataclass(frozen=True)
class FeedStatus:
    """Status of both feeds, as `hookbouncer status` shows it."""

    ranges: FeedState
    thumbprints: FeedState

    def __iter__(self) -> Iterator[FeedState]:
        return iter((self.ranges, self.thumbprints))


@dataclass(frozen=True)
class FeedHealth:
    """Feed health for readiness probes.

    `loaded` is False while a list that a route's checks need is missing
    (no feed snapshot and no extra entries). `stale` is True when a feed
    list is older than `feeds.stale_after`, which degrades readiness but
    keeps serving it.
    `fail_closed` is True past `feeds.fail_closed_after`.
    """

    loaded: bool
    stale: bool
    fail_closed: bool
    detail: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.loaded and not self.fail_closed

    @property
    def degraded(self) -> bool:
        return self.stale or not self.ready


def format_age(seconds: float) -> str:
    """Format a duration for humans: 45s, 12m, 3.5h or 2.1d."""
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
