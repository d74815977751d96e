"""Feed snapshots on disk: atomic writes, history, a lock between processes.

Layout under `state_dir/feeds`:

- `ranges.json`, `thumbprints.json`: the list in force with its metadata.
- `history/ranges.00000007.json`: the last `feeds.history` accepted
  versions, each with the entries added and removed by it.
- `ranges.txt`, `thumbprints.txt`: the lists in force including the
  configured extras, one entry per line, for edge proxies.
- `status.json`: the last refresh attempt of each feed, for `status`.
- `refresh.lock`: held by the one process that is fetching.
- `login-token.json`: the cached login token (mode 0600), if any.

Every file is written to a temporary file in the same directory, flushed
with fsync, renamed over the old one, and the directory is fsynced, so a
reader sees the old or the new file, never a mix. Reading validates the
entries again, so a damaged or edited file is rejected, not trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from hookbouncer.feeds.model import FEED_NAMES, FeedName

log = logging.getLogger("hookbouncer.feeds")

FORMAT = 1


@dataclass(frozen=True)
class StoredFeed:
    """One accepted version of a feed list, as written to disk.

    `fetched_at` is the last time the source confirmed the list (a 200 or
    a 304); `changed_at` is when its entries last changed. Entries are
    normalised strings: CIDR text for ranges, lowercase hex for pins.
    """

    feed: FeedName
    generation: int
    source_url: str
    fetched_at: float
    changed_at: float
    etag: str | None
    last_modified: str | None
    body_sha256: str
    entries: tuple[str, ...]
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def count(self) -> int:
        return len(self.entries)

    def to_json(self) -> bytes:
        document: dict[str, Any] = {"format": FORMAT, **asdict(self)}
        document["count"] = self.count
        document["entries_sha256"] = entries_digest(self.entries)
        return json.dumps(document, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> StoredFeed:
        """Read a snapshot file; raise ValueError when it is damaged."""
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError("unknown snapshot format")
        feed = document.get("feed")
        if feed not in FEED_NAMES:
            raise ValueError(f"unknown feed {feed!r}")
        entries = _strings(document, "entries")
        if document.get("count") != len(entries):
            raise ValueError("entry count does not match the entries")
        if document.get("entries_sha256") != entries_digest(entries):
            raise ValueError("entries do not match their SHA-256")
        return cls(
            feed=feed,
            generation=_number(document, "generation", int),
            source_url=str(document.get("source_url", "")),
            fetched_at=_number(document, "fetched_at", float),
            changed_at=_number(document, "changed_at", float),
            etag=_optional_text(document, "etag"),
            last_modified=_optional_text(document, "last_modified"),
            body_sha256=str(document.get("body_sha256", "")),
            entries=entries,
            added=_strings(document, "added"),
            removed=_strings(document, "removed"),
        )


def entries_digest(entries: tuple[str, ...]) -> str:
    return hashlib.sha256("\n".join(entries).encode("utf-8")).hexdigest()


FileSignature = tuple[int, int, int]


class FeedStore:
    """The `feeds` folder of the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "feeds"
        self.history_dir = self.directory / "history"

    def ensure(self) -> None:
        self.history_dir.mkdir(parents=True, exist_ok=True)

    def path(self, feed: FeedName) -> Path:
        return self.directory / f"{feed}.json"

    @property
    def status_path(self) -> Path:
        return self.directory / "status.json"

    @property
    def token_path(self) -> Path:
        return self.directory / "login-token.json"

    def lock(self, timeout: float) -> FileLock:
        """Return the lock that lets one process at a time fetch and write."""
        self.ensure()
        return FileLock(self.directory / "refresh.lock", timeout=timeout)

    def signature(self, feed: FeedName) -> FileSignature | None:
        """Return a cheap fingerprint of the current file, None if missing."""
        try:
            stat = self.path(feed).stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def read(self, feed: FeedName) -> StoredFeed | None:
        """Read the current snapshot; raise ValueError when it is damaged."""
        try:
            data = self.path(feed).read_bytes()
        except FileNotFoundError:
            return None
        stored = StoredFeed.from_json(data)
        if stored.feed != feed:
            raise ValueError(f"file contains the {stored.feed} feed")
        return stored

    def history(self, feed: FeedName) -> list[Path]:
        """Return the history files of a feed, newest first."""
        try:
            paths = list(self.history_dir.glob(f"{feed}.*.json"))
        except OSError:
            return []
        return sorted(paths, reverse=True)

    def last_generation(self, feed: FeedName) -> int:
        """Return the highest generation in the history files, 0 if none."""
        for path in self.history(feed):
            number = path.name.split(".")[1]
            if number.isdigit():
                return int(number)
        return 0

    def write(self, stored: StoredFeed, *, new_version: bool, keep: int) -> None:
        """Write the snapshot atomically and, for a new version, its history."""
        self.ensure()
        data = stored.to_json()
        if new_version:
            name = f"{stored.feed}.{stored.generation:08d}.json"
            atomic_write(self.history_dir / name, data)
            for old in self.history(stored.feed)[keep:]:
                old.unlink(missing_ok=True)
        atomic_write(self.path(stored.feed), data)

    def export_path(self, feed: FeedName) -> Path:
        return self.directory / f"{feed}.txt"

    def write_export(self, feed: FeedName, entries: tuple[str, ...]) -> bool:
        """Write `{feed}.txt`, one entry per line; True if it changed.

        Every line, the last one included, ends in a newline, so two
        exports concatenated by a careless script never merge two lines.
        """
        data = "".join(f"{entry}\n" for entry in entries).encode("ascii")
        path = self.export_path(feed)
        try:
            if path.read_bytes() == data:
                return False
        except FileNotFoundError:
            pass
        atomic_write(path, data)
        return True

    def read_status(self) -> dict[str, Any]:
        try:
            document = json.loads(self.status_path.read_bytes())
        except (OSError, ValueError):
            return {}
        return document if isinstance(document, dict) else {}

    def write_status(self, status: dict[str, Any]) -> None:
        self.ensure()
        atomic_write(self.status_path, json.dumps(status, indent=1).encode("utf-8"))


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data` so that readers never see a partial file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _strings(document: dict[str, Any], key: str) -> tuple[str, ...]:
    value = document.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key} is not a list of strings")
    return tuple(value)


def _number(document: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = document.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} is not a number")
    return kind(value)


def _optional_text(document: dict[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None
