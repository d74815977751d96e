"""Sealed developerPayload tokens and the key ring file."""

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from hookbouncer.errors import KeyringError
from hookbouncer.tokens import (
    MAX_TOKEN_CHARS,
    PREFIX,
    KeyRing,
    TokenError,
    TokenExpired,
    TokenFuture,
    TokenMalformed,
    TokenTampered,
    TokenTooLong,
    TokenUnknownKey,
    TokenWrongScan,
    max_context_bytes,
)

from .conftest import NOW

DAY = 86400.0
MAX_AGE = 30 * DAY


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.generate(NOW - 100 * DAY)


def open_token(ring: KeyRing, token: str, scan_id: str = "scan-1", now: float = NOW):
    return ring.open(token, scan_id, now=now, max_age=MAX_AGE)


def flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token[4:] + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return PREFIX + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_seal_open_round_trip(ring: KeyRing) -> None:
    token = ring.seal("scan-1", "order=42", now=NOW)
    opened = open_token(ring, token)
    assert opened.scan_id == "scan-1"
    assert opened.context == "order=42"
    assert opened.key_id == ring.active
    assert opened.issued_at == int(NOW)


def test_seal_is_randomised(ring: KeyRing) -> None:
    assert ring.seal("scan-1", now=NOW) != ring.seal("scan-1", now=NOW)


def test_token_is_url_safe(ring: KeyRing) -> None:
    token = ring.seal("scan-1", "\u00e9" * 100, now=NOW)
    assert token.startswith("hb1.")
    assert set(token[4:]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )


def test_non_ascii_context_round_trip(ring: KeyRing) -> None:
    token = ring.seal("scan-1", "caf\u00e9 \u4e2d\U0001f600", now=NOW)
    assert open_token(ring, token).context == "caf\u00e9 \u4e2d\U0001f600"


def test_longest_context_fits_limit(ring: KeyRing) -> None:
    token = ring.seal("s" * 100, "x" * max_context_bytes(), now=NOW)
    assert len(token) <= MAX_TOKEN_CHARS
    assert open_token(ring, token, "s" * 100).context == "x" * max_context_bytes()


def test_seal_too_long_raises(ring: KeyRing) -> None:
    with pytest.raises(TokenTooLong):
        ring.seal("scan-1", "x" * (max_context_bytes() + 1), now=NOW)


@pytest.mark.parametrize("scan_id", ["", "a/b", "a b", "..", "x" * 101, "\u00e9"])
def test_seal_invalid_scan_id(ring: KeyRing, scan_id: str) -> None:
    with pytest.raises(ValueError):
        ring.seal(scan_id, now=NOW)


@pytest.mark.parametrize(
    ("issued", "now", "error"),
    [
        (NOW, NOW + MAX_AGE + 1, TokenExpired),
        (NOW, NOW + 365 * DAY, TokenExpired),
        (NOW + 301, NOW, TokenFuture),
        (NOW + DAY, NOW, TokenFuture),
    ],
)
def test_open_rejects_by_time(
    ring: KeyRing, issued: float, now: float, error: type[TokenError]
) -> None:
    token = ring.seal("scan-1", now=issued)
    with pytest.raises(error):
        open_token(ring, token, now=now)


@pytest.mark.parametrize(
    ("issued", "now"),
    [(NOW, NOW + MAX_AGE), (NOW + 300, NOW), (NOW, NOW)],
)
def test_open_accepts_at_time_bounds(ring: KeyRing, issued: float, now: float) -> None:
    token = ring.seal("scan-1", now=issued)
    assert open_token(ring, token, now=now).issued_at == int(issued)


def test_open_other_scan_rejected(ring: KeyRing) -> None:
    token = ring.seal("scan-A", now=NOW)
    with pytest.raises(TokenWrongScan) as caught:
        open_token(ring, token, "scan-B")
    assert caught.value.reason == "token_wrong_scan"
    assert caught.value.status == 403


def test_open_unknown_key_rejected(ring: KeyRing) -> None:
    stranger = KeyRing.generate(NOW)
    token = stranger.seal("scan-1", now=NOW)
    with pytest.raises(TokenUnknownKey):
        open_token(ring, token)


@pytest.mark.parametrize(
    "index",
    [
        *range(4, 12),  # issue time: cannot be moved to dodge expiry
        *range(12, 16),  # scan fingerprint
        16,  # nonce
        27,  # nonce end
        28,  # ciphertext
        -1,  # tag
    ],
)
def test_open_tampered_rejected(ring: KeyRing, index: int) -> None:
    token = ring.seal("scan-1", "ctx", now=NOW)
    with pytest.raises((TokenTampered, TokenWrongScan)):
        open_token(ring, flip(token, index))


def test_open_tampered_reason(ring: KeyRing) -> None:
    token = ring.seal("scan-1", "ctx", now=NOW)
    with pytest.raises(TokenTampered):
        open_token(ring, flip(token, -1))


def test_open_same_key_other_ring_rejected(ring: KeyRing) -> None:
    # A key id copied onto a token sealed under another key does not open.
    stranger = KeyRing.generate(NOW)
    token = stranger.seal("scan-1", now=NOW)
    raw = bytearray(base64.urlsafe_b64decode(token[4:] + "=" * (-len(token) % 4)))
    raw[:4] = bytes.fromhex(ring.active)
    forged = PREFIX + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(TokenTampered):
        open_token(ring, forged)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "hb1.",
        "hb1",
        "hb2.AAAA",
        "HB1.AAAA",
        "hb1.AAAA",
        "hb1.A",
        "hb1.AAAA=",
        "hb1.AA+A",
        "hb1.AA/A",
        "hb1." + "A" * 58,
        "hb1." + "A" * 600,
        "hb1.\u00e9\u00e9\u00e9\u00e9",
        "plain-secret",
    ],
)
def test_open_malformed(ring: KeyRing, token: str) -> None:
    with pytest.raises(TokenMalformed):
        open_token(ring, token)


def test_open_non_canonical_base64_rejected(ring: KeyRing) -> None:
    token = ring.seal("scan-1", now=NOW)
    body = token[4:]
    if len(body) % 4 == 0:
        pytest.skip("no spare bits in this length")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(body[-1])
    variant = PREFIX + body[:-1] + alphabet[last ^ 1]
    with pytest.raises((TokenMalformed, TokenTampered)):
        open_token(ring, variant)


# -- rotation --


def test_rotation_keeps_old_tokens_opening(ring: KeyRing) -> None:
    old_token = ring.seal("scan-1", "old", now=NOW)
    rotated = ring.rotated(NOW)
    assert rotated.active != ring.active
    assert len(rotated.keys) == 2
    new_token = rotated.seal("scan-1", "new", now=NOW)
    assert open_token(rotated, old_token).context == "old"
    assert open_token(rotated, new_token).key_id == rotated.active
    with pytest.raises(TokenUnknownKey):
        open_token(ring, new_token)


def test_rotation_keep_drops_oldest(ring: KeyRing) -> None:
    first_token = ring.seal("scan-1", now=NOW)
    second = ring.rotated(NOW + 1)
    third = second.rotated(NOW + 2, keep=1)
    assert len(third.keys) == 2
    with pytest.raises(TokenUnknownKey):
        open_token(third, first_token)


# -- key ring file --


def test_save_load_round_trip(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "keys.json"
    ring.save(path, replace=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = KeyRing.load(path)
    assert loaded.active == ring.active
    token = ring.seal("scan-1", now=NOW)
    assert open_token(loaded, token).key_id == ring.active


def test_save_without_replace_keeps_existing(tmp_path: Path, ring: KeyRing) -> None:
    path = tmp_path / "keys.json"
    ring.save(path, replace=False)
    with pytest.raises(KeyringError, match="already exists"):
        KeyRing.generate(NOW).save(path, replace=False)
    assert KeyRing.load(path).active == ring.active


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666])
def test_load_rejects_readable_by_others(
    tmp_path: Path, ring: KeyRing, mode: int
) -> None:
    path = tmp_path / "keys.json"
    ring.save(path)
    os.chmod(path, mode)
    with pytest.raises(KeyringError, match="chmod 600"):
        KeyRing.load(path)


def test_load_missing_file_names_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyringError, match="token keygen"):
        KeyRing.load(tmp_path / "absent.json")


def test_key_ring_repr_hides_secrets(ring: KeyRing) -> None:
    secret = ring.keys[0].secret
    assert base64.urlsafe_b64encode(secret).decode() not in repr(ring.keys)
    assert secret.hex() not in repr(ring.keys)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[]",
        {"format": "other", "version": 1, "active": "00000000", "keys": []},
        {"format": "hookbouncer-keyring", "version": 2, "active": "x", "keys": []},
        {"format": "hookbouncer-keyring", "version": 1, "active": "x", "keys": []},
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [{"id": "bbbbbbbb", "secret": "A" * 43 + "=", "created": 1}],
        },
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [{"id": "aaaaaaaa", "secret": "short", "created": 1}],
        },
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [{"id": "AAAAAAAA", "secret": "A" * 43 + "=", "created": 1}],
        },
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [
                {"id": "aaaaaaaa", "secret": "A" * 43 + "=", "created": 1},
                {"id": "aaaaaaaa", "secret": "A" * 43 + "=", "created": 2},
            ],
        },
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [{"id": "aaaaaaaa", "secret": "A" * 43 + "=", "created": "x"}],
        },
        {
            "format": "hookbouncer-keyring",
            "version": 1,
            "active": "aaaaaaaa",
            "keys": [{"id": "aaaaaaaa", "secret": "\u00e9", "created": 1}],
        },
    ],
)
def test_from_json_invalid(document: object) -> None:
    text = document if isinstance(document, str) else json.dumps(document)
    with pytest.raises(KeyringError):
        KeyRing.from_json(text.encode(), "test")


def test_load_rejects_oversized_file(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_bytes(b" " * (1024 * 1024 + 1))
    os.chmod(path, 0o600)
    with pytest.raises(KeyringError, match="not a key ring"):
        KeyRing.load(path)
