"""WatchedKeyRing: reload after rotation, keep the ring in force on a bad file."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from hookbouncer.errors import KeyringError
from hookbouncer.keyfile import WatchedKeyRing
from hookbouncer.tokens import KeyRing, TokenUnknownKey

NOW = 1_800_000_000.0
MAX_AGE = 3600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def write_ring(path: Path, ring: KeyRing) -> None:
    path.write_bytes(ring.to_json())
    path.chmod(0o600)


@pytest.fixture
def ring_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    write_ring(path, KeyRing.generate(NOW))
    return path


def test_rotation_picked_up_after_interval(ring_file: Path) -> None:
    clock = Clock()
    watched = WatchedKeyRing(ring_file, check_interval=1.0, clock=clock)
    old_token = watched.ring.seal("scan-1", now=NOW)
    rotated = KeyRing.load(ring_file).rotated(NOW)
    write_ring(ring_file, rotated)
    new_token = rotated.seal("scan-1", now=NOW)

    with pytest.raises(TokenUnknownKey):
        watched.open(new_token, "scan-1", now=NOW, max_age=MAX_AGE)

    clock.now = 1.5
    assert watched.open(new_token, "scan-1", now=NOW, max_age=MAX_AGE).context == ""
    assert watched.open(old_token, "scan-1", now=NOW, max_age=MAX_AGE).context == ""
    assert watched.reloads == 1


def test_unchanged_file_not_reloaded(ring_file: Path) -> None:
    clock = Clock()
    watched = WatchedKeyRing(ring_file, check_interval=1.0, clock=clock)
    for step in range(1, 5):
        clock.now = step * 2.0
        assert watched.ring.active
    assert watched.reloads == 0


@pytest.mark.parametrize("damage", ["invalid_json", "deleted", "world_readable"])
def test_bad_file_keeps_ring_in_force(
    ring_file: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    watched = WatchedKeyRing(ring_file, check_interval=1.0, clock=clock)
    token = watched.ring.seal("scan-1", now=NOW)
    if damage == "invalid_json":
        ring_file.write_text("{not json")
    elif damage == "deleted":
        ring_file.unlink()
    else:
        os.chmod(ring_file, 0o644)
        os.utime(ring_file, ns=(1, 1))

    clock.now = 5.0
    with caplog.at_level(logging.ERROR, logger="hookbouncer.tokens"):
        opened = watched.open(token, "scan-1", now=NOW, max_age=MAX_AGE)
    assert opened.context == ""
    assert watched.reloads == 0
    assert "key ring not reloaded" in caplog.text

    caplog.clear()
    clock.now = 10.0
    with caplog.at_level(logging.ERROR, logger="hookbouncer.tokens"):
        watched.open(token, "scan-1", now=NOW, max_age=MAX_AGE)
    assert caplog.text == ""


def test_missing_file_at_startup_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyringError) as caught:
        WatchedKeyRing(tmp_path / "absent.json")
    assert "token keygen" in str(caught.value)


def test_fixed_mode_reloads(ring_file: Path) -> None:
    clock = Clock()
    watched = WatchedKeyRing(ring_file, check_interval=1.0, clock=clock)
    rotated = KeyRing.load(ring_file).rotated(NOW)
    ring_file.write_bytes(rotated.to_json())
    os.chmod(ring_file, 0o644)
    clock.now = 2.0
    assert watched.ring.active != rotated.active

    os.chmod(ring_file, 0o600)
    clock.now = 4.0
    assert watched.ring.active == rotated.active
    assert watched.reloads == 1


def test_fifo_rejected_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "keys.json"
    os.mkfifo(fifo, 0o600)
    with pytest.raises(KeyringError) as caught:
        KeyRing.load(fifo)
    assert "not a regular file" in str(caught.value)


def test_save_into_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(KeyringError) as caught:
        KeyRing.generate(NOW).save(tmp_path / "absent" / "keys.json")
    assert "folder exists" in str(caught.value)
