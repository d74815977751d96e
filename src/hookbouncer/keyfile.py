"""A key ring that follows its file, so `token rotate` needs no restart.

After `hookbouncer token rotate`, new scans carry tokens sealed under the
new active key. A gateway that kept the ring it loaded at startup would
reject every one of them, so `WatchedKeyRing` checks the file's identity
(inode, size, modification and change times, mode, owner) at most once
per `check_interval` and reloads it when it changed.

A file that no longer loads (deleted, invalid, readable by others) is
logged at ERROR and the ring in force stays, in the same way as a bad feed
never replaces a good list. Fixing the file, even only its mode, makes the
next check load it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hookbouncer.errors import KeyringError
from hookbouncer.tokens import DEFAULT_MAX_SKEW, KeyRing, OpenedToken

log = logging.getLogger("hookbouncer.tokens")

FileIdentity = tuple[int, ...]


def _identity(path: Path) -> FileIdentity | None:
    """Return what changes when the file or its permissions change.

    The change time and mode are included so that `chmod 600` on a file
    that was refused for its mode counts as a change and is read again.
    """
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (
        status.st_dev,
        status.st_ino,
        status.st_size,
        status.st_mtime_ns,
        status.st_ctime_ns,
        status.st_mode,
        status.st_uid,
    )


class WatchedKeyRing:
    """Open tokens with the newest valid key ring read from `path`."""

    def __init__(
        self,
        path: Path,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_interval = check_interval
        self._clock = clock
        self._identity = _identity(path)
        # Startup fails on a bad file: there is no ring in force to keep.
        self._ring = KeyRing.load(path)
        self._checked_at = clock()
        self._lock = threading.Lock()
        self.reloads = 0

    @property
    def ring(self) -> KeyRing:
        self._reload_if_changed()
        return self._ring

    def open(
        self,
        token: str,
        scan_id: str,
        *,
        now: float,
        max_age: float,
        max_skew: float = DEFAULT_MAX_SKEW,
    ) -> OpenedToken:
        """Open `token` with the current ring; see `KeyRing.open`."""
        return self.ring.open(
            token, scan_id, now=now, max_age=max_age, max_skew=max_skew
        )

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._check_interval:
            return
        with self._lock:
            if now - self._checked_at < self._check_interval:
                return
            self._checked_at = now
            identity = _identity(self.path)
            if identity == self._identity:
                return
            try:
                ring = KeyRing.load(self.path)
            except KeyringError as error:
                # Remember the bad version so the error is logged once per change.
                self._identity = identity
                log.error("key ring not reloaded, the previous one stays: %s", error)
                return
            self._identity = identity
            self._ring = ring
            self.reloads += 1
            log.info(
                "key ring %s reloaded: %d keys, active key %s",
                self.path,
                len(ring.keys),
                ring.active,
            )
