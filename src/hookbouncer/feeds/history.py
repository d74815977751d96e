"""Versions of a feed list: what changed, and how a change is logged."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from hookbouncer.feeds.model import FeedName, FetchResult
from hookbouncer.feeds.store import StoredFeed

# Log lines list at most this many added or removed entries, then a count.
LOGGED_ENTRIES = 20


def next_version(
    feed: FeedName,
    current: StoredFeed | None,
    result: FetchResult,
    entries: tuple[str, ...],
    now: float,
    last_generation: int = 0,
) -> tuple[StoredFeed, bool]:
    """Return the stored form of a fetched list and whether it is new.

    A list with the same entries as the one in force, in any order, keeps
    its generation and only records the new fetch time and validators. A
    new version's generation follows both the list in force and
    `last_generation`, the highest one in the history files.
    """
    digest = hashlib.sha256(result.body).hexdigest()
    if current is not None and set(entries) == set(current.entries):
        confirmed = replace(
            current,
            source_url=result.url,
            fetched_at=now,
            etag=result.etag,
            last_modified=result.last_modified,
            body_sha256=digest,
        )
        return confirmed, False
    before = set(current.entries) if current is not None else set()
    after = set(entries)
    stored = StoredFeed(
        feed=feed,
        generation=max(current.generation if current else 0, last_generation) + 1,
        source_url=result.url,
        fetched_at=now,
        changed_at=now,
        etag=result.etag,
        last_modified=result.last_modified,
        body_sha256=digest,
        entries=entries,
        added=tuple(entry for entry in entries if entry not in before),
        removed=tuple(entry for entry in current.entries if entry not in after)
        if current is not None
        else (),
    )
    return stored, True


def log_change(log: logging.Logger, stored: StoredFeed, outcome: str) -> None:
    """Log a successful refresh with its counts and changed entries."""
    if outcome != "updated":
        log.info(
            "%s feed unchanged: %d entries",
            stored.feed,
            stored.count,
            extra={"feed": stored.feed, "outcome": outcome, "count": stored.count},
        )
        return
    log.info(
        "%s feed updated to generation %d: %d entries, %d added, %d removed;"
        " added %s; removed %s",
        stored.feed,
        stored.generation,
        stored.count,
        len(stored.added),
        len(stored.removed),
        summarize(stored.added),
        summarize(stored.removed),
        extra={
            "feed": stored.feed,
            "outcome": outcome,
            "count": stored.count,
            "generation": stored.generation,
            "added": len(stored.added),
            "removed": len(stored.removed),
        },
    )


def summarize(entries: tuple[str, ...], limit: int = LOGGED_ENTRIES) -> str:
    """Return up to `limit` entries as text, with a count of the rest."""
    if not entries:
        return "none"
    listed = ", ".join(entries[:limit])
    rest = len(entries) - limit
    return f"[{listed}]" + (f" and {rest} more" if rest > 0 else "")
