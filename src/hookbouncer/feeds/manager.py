"""The feed manager: the lists in force, their refresh and their health.

Rules this module keeps:

- A new list replaces the one in force only after it was fetched whole
  and every entry validated. A failed update changes nothing, and nothing
  is cleared before its replacement is known to be good.
- `snapshot()` never touches the network and never raises. It returns
  the current `TrustSnapshot`, which is swapped in one assignment.
- One process at a time fetches (a file lock in the state directory).
  Other processes notice the new snapshot file and load it from disk.
- Feeds never decide whether a request is accepted; the policy does.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import filelock
import httpx

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet
from hookbouncer.config import Config
from hookbouncer.errors import ConfigError
from hookbouncer.feeds import history
from hookbouncer.feeds.attempts import Attempt
from hookbouncer.feeds.extras import extra_networks, extra_thumbprints
from hookbouncer.feeds.fetch import Fetcher, Validators, build_client, ssl_context
from hookbouncer.feeds.login import TokenSource
from hookbouncer.feeds.model import (
    FEED_NAMES,
    FeedHealth,
    FeedName,
    FeedOutcome,
    FeedState,
    FeedStatus,
    FeedUpdateError,
    Outcome,
    RefreshOutcome,
    format_age,
)
from hookbouncer.feeds.parse import parse_ranges, parse_thumbprints
from hookbouncer.feeds.scheduler import Scheduler
from hookbouncer.feeds.store import FeedStore, FileSignature, StoredFeed
from hookbouncer.feeds.validate import (
    normalize_thumbprints,
    parse_networks,
)
from hookbouncer.trust import TrustSnapshot

log = logging.getLogger("hookbouncer.feeds")

STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class _Loaded:
    """A stored list with its parsed values (networks or thumbprints)."""

    stored: StoredFeed
    values: tuple[Any, ...]


class FeedManager:
    """Keep both feed lists current and serve them as a `TrustSnapshot`."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        disk_check_interval: float = 1.0,
        cache_token: bool = True,
    ) -> None:
        self.config = config
        self.feeds = config.feeds
        self.clock = clock
        self._transport = transport
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not secrecy)
        self._disk_check_interval = disk_check_interval
        self._cache_token = cache_token
        self.store = FeedStore(config.state_dir)

        # Configuration problems stop startup here, before anything serves.
        self._extra_networks = extra_networks(config)
        self._extra_pins = extra_thumbprints(config)
        try:
            self._ssl_context = ssl_context(self.feeds)
        except (OSError, ssl.SSLError) as error:
            raise ConfigError(
                f"{config.source}: feeds.ca_bundle = {str(self.feeds.ca_bundle)!r}"
                f" cannot be loaded ({error}): point it at a PEM CA bundle"
            ) from None

        self._lists: dict[FeedName, _Loaded | None] = dict.fromkeys(FEED_NAMES)
        self._signatures: dict[FeedName, FileSignature | None] = dict.fromkeys(
            FEED_NAMES
        )
        self._attempts = {name: Attempt() for name in FEED_NAMES}

        self._refresh_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._last_disk_check = float("-inf")
        self._fetcher: Fetcher | None = None
        self._client: httpx.Client | None = None
        self._dirty = False
        self._snapshot = self._build_snapshot()
        self._fail_closed_snapshot: TrustSnapshot | None = None
        self.scheduler = Scheduler(self)

    # -- reading -----------------------------------------------------------

    def snapshot(self) -> TrustSnapshot:
        """Return the trust snapshot in force without blocking on the network.

        At most once per `disk_check_interval` seconds this compares the
        snapshot files' mtime, size and inode with the ones last loaded, to
        pick up a list another process fetched. When the scheduler thread
        runs, the thread loads the files; otherwise they load here.
        """
        try:
            self._check_disk()
        except Exception:
            log.exception("checking the feed snapshot files failed")
        snapshot = self._snapshot
        try:
            fail_closed = self._is_fail_closed(self.clock())
        except Exception:
            log.exception("checking the feed ages failed; failing closed")
            return replace(snapshot, fail_closed=True)
        return self._fail_closed(snapshot) if fail_closed else snapshot

    def _check_disk(self) -> None:
        now = self.clock()
        if now - self._last_disk_check < self._disk_check_interval:
            return
        self._last_disk_check = now
        if not self._disk_changed():
            return
        if self.scheduler.running:
            self.scheduler.wake()
        else:
            self.reload_if_changed()

    def load_from_disk(self) -> None:
        """Load the last good snapshot of each feed, without any network."""
        with self._reload_lock:
            if any([self._load_file(name) for name in FEED_NAMES]):
                self._swap()
        for name in FEED_NAMES:
            loaded = self._lists[name]
            if loaded is not None:
                log.info(
                    "loaded %s feed from disk: %d entries, fetched %s ago",
                    name,
                    loaded.stored.count,
                    format_age(self.clock() - loaded.stored.fetched_at),
                    extra={"feed": name, "count": loaded.stored.count},
                )

    def reload_if_changed(self) -> bool:
        """Load snapshot files that changed on disk; True if any did."""
        if not self._reload_lock.acquire(blocking=False):
            return False
        try:
            return self._reload_changed()
        finally:
            self._reload_lock.release()

    def _reload_changed(self) -> bool:
        # The caller holds _reload_lock.
        changed = [
            name
            for name in FEED_NAMES
            if self.store.signature(name) != self._signatures[name]
        ]
        swapped = [self._load_file(name) for name in changed]
        if any(swapped):
            self._swap()
        return bool(changed)

    def _disk_changed(self) -> bool:
        return any(
            self.store.signature(name) != self._signatures[name] for name in FEED_NAMES
        )

    def _load_file(self, name: FeedName) -> bool:
        """Load one snapshot file; True if the entries in force changed."""
        signature = self.store.signature(name)
        self._signatures[name] = signature
        try:
            stored = self.store.read(name)
        except Exception as error:
            # Any failure to read a file this code wrote means damage, such
            # as a partial copy, a full disk or a hand edit.
            log.error(
                "the stored %s feed in %s is damaged (%s); keeping the list in force",
                name,
                self.store.path(name),
                error,
                extra={"feed": name},
            )
            stored = None
        if stored is None and self._lists[name] is None:
            stored = self._newest_history(name)
        if stored is None:
            return False
        current = self._lists[name]
        if current is not None and current.stored.entries == stored.entries:
            # Only the metadata changed, such as the fetch time after a 304.
            self._lists[name] = _Loaded(stored, current.values)
            return False
        try:
            values = self._values(name, stored.entries)
        except ValueError as error:
            log.error(
                "the stored %s feed has an invalid entry (%s); keeping the list"
                " in force",
                name,
                error,
                extra={"feed": name},
            )
            return False
        previous = len(current.stored.entries) if current is not None else 0
        self._lists[name] = _Loaded(stored, values)
        log.info(
            "loaded %s feed from %s: %d entries (was %d), generation %d",
            name,
            self.store.path(name),
            len(stored.entries),
            previous,
            stored.generation,
            extra={"feed": name},
        )
        return True

    def _newest_history(self, name: FeedName) -> StoredFeed | None:
        for path in self.store.history(name):
            try:
                stored = StoredFeed.from_json(path.read_bytes())
            except Exception as error:
                log.warning("skipping damaged history file %s (%s)", path, error)
                continue
            if stored.feed == name:
                log.warning(
                    "serving the %s feed from history file %s",
                    name,
                    path,
                    extra={"feed": name},
                )
                return stored
        return None

    def _values(self, name: FeedName, entries: Iterable[str]) -> tuple[Any, ...]:
        if name == "ranges":
            return parse_networks(
                entries, self.feeds.min_prefix_ipv4, self.feeds.min_prefix_ipv6
            )
        return normalize_thumbprints(entries)

    # -- refreshing --------------------------------------------------------

    def refresh(self) -> RefreshOutcome:
        """Fetch both feeds once, blocking, and install what validates."""
        with self._refresh_lock:
            started = self.clock()
            log.info("feed refresh started", extra={"feeds": list(FEED_NAMES)})
            try:
                # Holding _reload_lock makes snapshot() skip its disk check
                # while the lists change, instead of waiting for the refresh.
                with self.store.lock(self._lock_timeout()), self._reload_lock:
                    # A list written by another process after this refresh
                    # began is as fresh as a fetch now would be.
                    fresh_on_disk = self._reload_changed()
                    outcomes = tuple(
                        self._refresh_feed(name, started if fresh_on_disk else None)
                        for name in FEED_NAMES
                    )
                    self._save_attempts()
                    self._write_exports()
            except filelock.Timeout:
                error = FeedUpdateError(
                    "locked",
                    f"another process held {self.store.directory}/refresh.lock"
                    " for too long",
                )
                outcomes = tuple(self._fail(name, error) for name in FEED_NAMES)
            except OSError as cause:
                error = FeedUpdateError(
                    "storage",
                    f"locking {self.store.directory}/refresh.lock failed: {cause}",
                )
                outcomes = tuple(self._fail(name, error) for name in FEED_NAMES)
            if self._dirty:
                self._swap()
            result = RefreshOutcome(outcomes)
            log.info(
                "feed refresh finished: %s",
                ", ".join(f"{item.feed} {item.outcome}" for item in outcomes),
                extra={"ok": result.ok},
            )
            return result

    def _refresh_feed(self, name: FeedName, started: float | None) -> FeedOutcome:
        current = self._lists[name]
        if (
            started is not None
            and current is not None
            and current.stored.fetched_at >= started
        ):
            self._record(name, "unchanged", None)
            return FeedOutcome(name, "unchanged", current.stored.count)
        try:
            return self._fetch_and_install(name, current)
        except FeedUpdateError as error:
            return self._fail(name, error)
        except OSError as error:
            message = (
                f"storing the {name} feed in {self.store.directory} failed: {error}"
            )
            return self._fail(name, FeedUpdateError("storage", message))
        except Exception as error:
            log.exception("refreshing the %s feed failed unexpectedly", name)
            return self._fail(name, FeedUpdateError("internal", repr(error)))

    def _fetch_and_install(
        self, name: FeedName, current: _Loaded | None
    ) -> FeedOutcome:
        url = self._url(name)
        validators = Validators()
        if current is not None:
            validators = Validators(current.stored.etag, current.stored.last_modified)
        result = self._get_fetcher().fetch(name, url, validators)
        if result.status == 304:
            return self._confirm(name, url, current)

        values, entries = self._parse(name, result.body, result.content_type)
        stored, new_version = history.next_version(
            name,
            current.stored if current else None,
            result,
            entries,
            self.clock(),
            self.store.last_generation(name),
        )
        self._install(name, _Loaded(stored, values), new_version=new_version)
        outcome: Outcome = "updated" if new_version else "unchanged"
        self._record(name, outcome, None)
        history.log_change(log, stored, outcome)
        return FeedOutcome(
            name,
            outcome,
            stored.count,
            stored.added if new_version else (),
            stored.removed if new_version else (),
        )

    def _confirm(
        self, name: FeedName, url: str, current: _Loaded | None
    ) -> FeedOutcome:
        """Keep the list after a 304 and record the new fetch time."""
        if current is None:
            raise FeedUpdateError(
                "http_status", f"{url} returned 304 but no list is stored"
            )
        stored = replace(current.stored, fetched_at=self.clock())
        self._install(name, _Loaded(stored, current.values), new_version=False)
        self._record(name, "not_modified", None)
        log.info(
            "%s feed not modified; %d entries confirmed",
            name,
            stored.count,
            extra={"feed": name, "outcome": "not_modified", "count": stored.count},
        )
        return FeedOutcome(name, "not_modified", stored.count)

    def _parse(
        self, name: FeedName, body: bytes, content_type: str
    ) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        if name == "ranges":
            ranges = parse_ranges(
                body,
                content_type=content_type,
                min_v4=self.feeds.min_prefix_ipv4,
                min_v6=self.feeds.min_prefix_ipv6,
            )
            return ranges.networks, tuple(str(n) for n in ranges.networks)
        pins = parse_thumbprints(body, content_type=content_type)
        return pins.thumbprints, pins.thumbprints

    def _install(self, name: FeedName, loaded: _Loaded, *, new_version: bool) -> None:
        self.store.write(
            loaded.stored, new_version=new_version, keep=self.feeds.history
        )
        if new_version or self._lists[name] is None:
            self._dirty = True
        self._lists[name] = loaded
        self._signatures[name] = self.store.signature(name)

    def _fail(self, name: FeedName, error: FeedUpdateError) -> FeedOutcome:
        current = self._lists[name]
        age = None if current is None else self.clock() - current.stored.fetched_at
        self._record(name, "failed", error.message)
        log.error(
            "%s feed update failed (%s): %s; still serving %s",
            name,
            error.reason,
            error.message,
            "no feed list"
            if age is None
            else f"the list fetched {format_age(age)} ago",
            extra={"feed": name, "reason": error.reason, "list_age": age},
        )
        return FeedOutcome(
            name,
            "failed",
            0 if current is None else current.stored.count,
            reason=error.reason,
            error=error.message,
        )

    def _record(self, name: FeedName, outcome: Outcome, error: str | None) -> None:
        previous = self._last_attempt(name, self.store.read_status())
        now = self.clock()
        if error is None:
            self._attempts[name] = replace(previous, at=now, outcome=outcome)
        else:
            self._attempts[name] = Attempt(now, outcome, error, now)

    def _last_attempt(self, name: FeedName, saved: dict[str, Any]) -> Attempt:
        """Return the newer of this process's attempt and the saved one."""
        mine = self._attempts[name]
        theirs = Attempt.from_json(saved.get(name))
        if theirs.at is not None and (mine.at is None or theirs.at > mine.at):
            return theirs
        return mine

    def _save_attempts(self) -> None:
        status: dict[str, Any] = {
            name: attempt.to_json() for name, attempt in self._attempts.items()
        }
        try:
            self.store.write_status(status)
        except OSError as error:
            log.warning("could not write %s: %s", self.store.status_path, error)

    def _write_exports(self) -> None:
        """Write the plain-text lists that edge proxies read."""
        exports: dict[FeedName, tuple[str, ...]] = {
            "ranges": tuple(str(network) for network in self._served("ranges")),
            "thumbprints": tuple(self._served("thumbprints")),
        }
        for name, entries in exports.items():
            if not entries:
                # An empty file would read as "allow nobody" or, to a
                # careless consumer, as "no list"; keep the last one.
                continue
            try:
                if self.store.write_export(name, entries):
                    log.info(
                        "wrote %s with %d entries",
                        self.store.export_path(name),
                        len(entries),
                        extra={"feed": name, "count": len(entries)},
                    )
            except OSError as error:
                log.error(
                    "writing %s failed: %s",
                    self.store.export_path(name),
                    error,
                    extra={"feed": name},
                )

    def _served(self, name: FeedName) -> tuple[Any, ...]:
        """Return the feed values plus the extras, without duplicates."""
        loaded = self._lists[name]
        feed_values = loaded.values if loaded is not None else ()
        extras = self._extra_networks if name == "ranges" else self._extra_pins
        return tuple(dict.fromkeys((*feed_values, *extras)))

    def _url(self, name: FeedName) -> str:
        path = self.feeds.ips_path if name == "ranges" else self.feeds.certificates_path
        return self.feeds.api_base + path

    def _get_fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._client = build_client(self.feeds, self._ssl_context, self._transport)
            tokens = None
            if self.feeds.login is not None:
                tokens = TokenSource(
                    self.feeds.login,
                    self._client,
                    clock=self.clock,
                    cache_file=self.store.token_path if self._cache_token else None,
                )
            self._fetcher = Fetcher(
                self.feeds, self._client, tokens, sleep=self._sleep, rng=self._rng
            )
        return self._fetcher

    def _lock_timeout(self) -> float:
        # Long enough for another process's whole refresh of both feeds.
        f = self.feeds
        attempts = f.retries + 1
        one_feed = attempts * (f.connect_timeout + 2 * f.read_timeout)
        return 2 * (one_feed + f.retries * f.backoff_max) + 10.0

    def close(self) -> None:
        self.stop()
        if self._client is not None:
            self._client.close()

    # -- the snapshot ------------------------------------------------------

    def _swap(self) -> None:
        self._dirty = False
        self._snapshot = self._build_snapshot()
        self._fail_closed_snapshot = None

    def _build_snapshot(self) -> TrustSnapshot:
        networks = self._served("ranges")
        thumbprints = self._served("thumbprints")
        return TrustSnapshot(
            allowlist=Allowlist(networks),
            pins=PinSet(thumbprints),
            ranges_loaded=bool(networks),
            pins_loaded=bool(thumbprints),
            fail_closed=False,
        )

    def _fail_closed(self, snapshot: TrustSnapshot) -> TrustSnapshot:
        cached = self._fail_closed_snapshot
        if cached is None:
            cached = replace(snapshot, fail_closed=True)
            self._fail_closed_snapshot = cached
        return cached

    def _ages(self, now: float) -> dict[FeedName, float]:
        return {
            name: now - loaded.stored.fetched_at
            for name, loaded in self._lists.items()
            if loaded is not None
        }

    def _is_stale(self, now: float) -> bool:
        return any(age > self.feeds.stale_after for age in self._ages(now).values())

    def _is_fail_closed(self, now: float) -> bool:
        limit = self.feeds.fail_closed_after
        if limit is None:
            return False
        return any(age > limit for age in self._ages(now).values())

    # -- health and status -------------------------------------------------

    def health(self) -> FeedHealth:
        """Return whether the lists are loaded, stale or past fail-closed.

        A list counts as missing only when a route uses its check.
        """
        now = self.clock()
        snapshot = self._snapshot
        in_use = self.config.checks_in_use()
        ranges_missing = "source_ip" in in_use and not snapshot.ranges_loaded
        pins_missing = "client_certificate" in in_use and not snapshot.pins_loaded
        detail: list[str] = []
        if ranges_missing:
            detail.append("no sender ranges loaded")
        if pins_missing:
            detail.append("no certificate thumbprints loaded")
        for name, age in self._ages(now).items():
            if age > self.feeds.stale_after:
                detail.append(f"{name} feed list is {format_age(age)} old")
        fail_closed = self._is_fail_closed(now)
        if fail_closed:
            detail.append("feeds are past feeds.fail_closed_after")
        return FeedHealth(
            loaded=not ranges_missing and not pins_missing,
            stale=self._is_stale(now),
            fail_closed=fail_closed,
            detail=tuple(detail),
        )

    def status(self) -> FeedStatus:
        """Return ages, counts by source and the last refresh of each feed."""
        now = self.clock()
        saved = self.store.read_status()
        states = {
            name: self._state(name, now, self._last_attempt(name, saved))
            for name in FEED_NAMES
        }
        return FeedStatus(ranges=states["ranges"], thumbprints=states["thumbprints"])

    def _state(self, name: FeedName, now: float, attempt: Attempt) -> FeedState:
        loaded = self._lists[name]
        extras = len(self._extra_networks if name == "ranges" else self._extra_pins)
        stored = loaded.stored if loaded is not None else None
        age = None if stored is None else now - stored.fetched_at
        limit = self.feeds.fail_closed_after
        total = (
            len(self._snapshot.allowlist)
            if name == "ranges"
            else len(self._snapshot.pins)
        )
        return FeedState(
            feed=name,
            source_url=stored.source_url if stored else self._url(name),
            fetched_at=stored.fetched_at if stored else None,
            changed_at=stored.changed_at if stored else None,
            age=age,
            feed_count=stored.count if stored else 0,
            extra_count=extras,
            total_count=total,
            generation=stored.generation if stored else 0,
            etag=stored.etag if stored else None,
            last_attempt_at=attempt.at,
            last_outcome=attempt.outcome,
            last_error=attempt.last_error,
            last_error_at=attempt.last_error_at,
            stale=age is not None and age > self.feeds.stale_after,
            fail_closed=age is not None and limit is not None and age > limit,
        )

    # -- scheduling --------------------------------------------------------

    def request_early_refresh(self) -> bool:
        """Ask for a refresh now; False if one was asked too recently."""
        return self.scheduler.request_early()

    def start(self) -> None:
        """Start the daemon thread that refreshes on schedule."""
        self.scheduler.start()

    def stop(self, timeout: float | None = STOP_TIMEOUT) -> None:
        """Stop the refresh thread, waiting up to `timeout` seconds for it.

        A refresh in progress is not interrupted. Stopping the process
        while it writes is safe, because snapshot files are replaced
        atomically.
        """
        self.scheduler.stop(timeout)
