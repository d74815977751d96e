"""Sealed developerPayload tokens and the key ring that makes them.

A sealed token is AES-256-GCM from `cryptography`, written as
`hb1.` + URL-safe base64 (no padding) of::

    key id (4) | issued at (8, Unix seconds, big-endian) |
    scan fingerprint (4) | nonce (12) | ciphertext + tag (16)

The clear header and the scan id are the associated data, so changing the
key id, the issue time or the scan id breaks the tag, and a token sealed
for scan A never opens for scan B. The plaintext is the optional context
handed to the application. The scan fingerprint (the first 4 bytes of
SHA-256 of the scan id) only labels a failed open as "wrong scan" rather
than "tampered". An attacker can change that label, never the outcome.

The key ring is a JSON file (mode 0600) with one active key for sealing
and older keys still accepted for opening.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import stat
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hookbouncer.errors import HookbouncerError, KeyringError, RequestError
from hookbouncer.routes import is_valid_id

PREFIX = "hb1."
# Copyleaks stores at most 512 characters of developerPayload.
MAX_TOKEN_CHARS = 512
KEY_BYTES = 32
KEY_ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER = struct.Struct(">4sQ4s")
_MIN_RAW = _HEADER.size + NONCE_BYTES + TAG_BYTES
# Issue times this far ahead of the clock are tolerated as clock skew.
DEFAULT_MAX_SKEW = 300.0
KEYRING_FORMAT = "hookbouncer-keyring"
KEYRING_VERSION = 1

# A ring of a thousand keys is under 100 KB.
_MAX_KEYRING_BYTES = 1024 * 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_KEY_ID = re.compile(r"[0-9a-f]{8}")


class TokenError(RequestError):
    """A sealed developerPayload did not open (403); `reason` is the cause.

    Each subclass fixes its reason code in `code`.
    """

    status = 403
    code = "token_invalid"

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.code, detail)


class TokenMalformed(TokenError):
    code = "token_malformed"


class TokenUnknownKey(TokenError):
    code = "token_unknown_key"


class TokenTampered(TokenError):
    code = "token_tampered"


class TokenWrongScan(TokenError):
    code = "token_wrong_scan"


class TokenExpired(TokenError):
    code = "token_expired"


class TokenFuture(TokenError):
    code = "token_future"


class TokenTooLong(HookbouncerError):
    """A token would be longer than Copyleaks' 512-character limit."""


@dataclass(frozen=True)
class Key:
    """One AES-256-GCM key of the ring; `created` is in Unix seconds."""

    key_id: str
    secret: bytes
    created: int

    def __repr__(self) -> str:
        return f"Key(key_id={self.key_id!r}, created={self.created})"


@dataclass(frozen=True)
class OpenedToken:
    """The content of a token that opened and passed every check."""

    key_id: str
    issued_at: int
    scan_id: str
    context: str


def max_context_bytes() -> int:
    """Return the longest context, in UTF-8 bytes, that still fits a token."""
    raw_budget = (MAX_TOKEN_CHARS - len(PREFIX)) * 3 // 4
    return raw_budget - _MIN_RAW


def _fingerprint(scan_id: str) -> bytes:
    return hashlib.sha256(scan_id.encode("utf-8")).digest()[:4]


def _associated_data(header: bytes, scan_id: str) -> bytes:
    return PREFIX.encode("ascii") + header + scan_id.encode("utf-8")


class TokenOpener(Protocol):
    """An opener of sealed tokens: a `KeyRing`, or a `WatchedKeyRing` over its file."""

    def open(
        self,
        token: str,
        scan_id: str,
        *,
        now: float,
        max_age: float,
        max_skew: float = DEFAULT_MAX_SKEW,
    ) -> OpenedToken: ...


class KeyRing:
    """Keys for sealing (the active one) and opening (all of them)."""

    def __init__(self, keys: Sequence[Key], active: str) -> None:
        by_id = {key.key_id: key for key in keys}
        if len(by_id) != len(keys):
            raise KeyringError("key ring lists a key id twice")
        if active not in by_id:
            raise KeyringError(f"key ring's active key {active!r} is not in keys")
        for key in keys:
            if not _KEY_ID.fullmatch(key.key_id) or len(key.secret) != KEY_BYTES:
                raise KeyringError(
                    f"key {key.key_id!r} is invalid: ids are 8 lowercase hex"
                    f" digits and secrets {KEY_BYTES} bytes"
                )
        self._keys = by_id
        self._aeads = {key_id: AESGCM(key.secret) for key_id, key in by_id.items()}
        self.active = active

    @property
    def keys(self) -> tuple[Key, ...]:
        return tuple(self._keys.values())

    def __repr__(self) -> str:
        return f"<KeyRing {len(self._keys)} keys, active {self.active!r}>"

    # -- making and changing rings --

    @classmethod
    def generate(cls, now: float) -> KeyRing:
        """Build a ring with one new random key, active."""
        key = _new_key(now, ())
        return cls([key], key.key_id)

    def rotated(self, now: float, keep: int | None = None) -> KeyRing:
        """Return a ring with a new active key; keep the newest `keep` old ones."""
        key = _new_key(now, self._keys)
        old = sorted(self._keys.values(), key=lambda k: k.created, reverse=True)
        if keep is not None:
            old = old[:keep]
        return KeyRing([key, *old], key.key_id)

    # -- sealing and opening --

    def seal(self, scan_id: str, context: str = "", *, now: float) -> str:
        """Seal a token for `scan_id` carrying `context`.

        Raise `ValueError` for an invalid scan id and `TokenTooLong` when
        the token would exceed Copyleaks' 512-character limit.
        """
        if not is_valid_id(scan_id):
            raise ValueError(
                f"scan id {scan_id!r} is invalid: use letters, digits, '-', '_'"
                " and '.', at most 100 characters"
            )
        plaintext = context.encode("utf-8")
        if len(plaintext) > max_context_bytes():
            raise TokenTooLong(
                f"the context is {len(plaintext)} bytes; at most"
                f" {max_context_bytes()} fit Copyleaks' {MAX_TOKEN_CHARS}-character"
                " developerPayload limit"
            )
        key_id = bytes.fromhex(self.active)
        header = _HEADER.pack(key_id, int(now), _fingerprint(scan_id))
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aeads[self.active].encrypt(
            nonce, plaintext, _associated_data(header, scan_id)
        )
        text = base64.urlsafe_b64encode(header + nonce + sealed).rstrip(b"=")
        token = PREFIX + text.decode("ascii")
        assert len(token) <= MAX_TOKEN_CHARS
        return token

    def open(
        self,
        token: str,
        scan_id: str,
        *,
        now: float,
        max_age: float,
        max_skew: float = DEFAULT_MAX_SKEW,
    ) -> OpenedToken:
        """Open and check a token for `scan_id`; raise a `TokenError` otherwise.

        The checks run in order: format, key id, tag (tampered or wrong
        scan), issue time (future, expired). Times are only trusted after
        the tag verified.
        """
        raw = _decode(token)
        header = raw[: _HEADER.size]
        key_bytes, issued_at, fingerprint = _HEADER.unpack(header)
        key_id = key_bytes.hex()
        aead = self._aeads.get(key_id)
        if aead is None:
            raise TokenUnknownKey(f"key id {key_id} is not in the key ring")
        nonce = raw[_HEADER.size : _HEADER.size + NONCE_BYTES]
        try:
            plaintext = aead.decrypt(
                nonce,
                raw[_HEADER.size + NONCE_BYTES :],
                _associated_data(header, scan_id),
            )
        except InvalidTag:
            if fingerprint != _fingerprint(scan_id):
                raise TokenWrongScan("sealed for another scan id") from None
            raise TokenTampered("authentication tag does not verify") from None
        if issued_at > now + max_skew:
            raise TokenFuture("issued in the future")
        if now - issued_at > max_age:
            raise TokenExpired("older than the maximum age")
        try:
            context = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise TokenMalformed("context is not UTF-8") from None
        return OpenedToken(key_id, issued_at, scan_id, context)

    # -- the key ring file --

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        """Read a key ring file; raise `KeyringError` naming the fix."""
        try:
            # O_NONBLOCK: a FIFO at this path must fail the check below, not
            # block the opening thread until a writer appears.
            descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
            with os.fdopen(descriptor, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise KeyringError(
                        f"key ring {str(path)!r} is not a regular file: point"
                        " developer_payload.keys_file at the key ring JSON file"
                    )
                data = handle.read(_MAX_KEYRING_BYTES + 1)
        except FileNotFoundError:
            raise KeyringError(
                f"key ring {str(path)!r} not found: create it with"
                f" `hookbouncer token keygen --keys-file {path}`"
            ) from None
        except OSError as error:
            raise KeyringError(
                f"key ring {str(path)!r} cannot be read ({error.strerror});"
                " check the path and its permissions"
            ) from None
        if len(data) > _MAX_KEYRING_BYTES:
            raise KeyringError(
                f"key ring {str(path)!r} is over {_MAX_KEYRING_BYTES} bytes, so it"
                " is not a key ring file: check developer_payload.keys_file"
            )
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyringError(
                f"key ring {str(path)!r} has mode {stat.S_IMODE(mode):04o}, so"
                f" other users can read the keys: run `chmod 600 {path}`"
            )
        return cls.from_json(data, str(path))

    @classmethod
    def from_json(cls, data: bytes, origin: str) -> KeyRing:
        """Build a ring from the key ring file's JSON text."""
        try:
            document = json.loads(data)
        except (ValueError, RecursionError):
            raise KeyringError(f"key ring {origin!r} is not valid JSON") from None
        if (
            not isinstance(document, dict)
            or document.get("format") != KEYRING_FORMAT
            or document.get("version") != KEYRING_VERSION
        ):
            raise KeyringError(
                f"key ring {origin!r} is not a version {KEYRING_VERSION}"
                f" {KEYRING_FORMAT} file"
            )
        entries = document.get("keys")
        active = document.get("active")
        if not isinstance(entries, list) or not entries or not isinstance(active, str):
            raise KeyringError(f"key ring {origin!r} needs 'active' and 'keys'")
        return cls([_key_from_json(entry, origin) for entry in entries], active)

    def to_json(self) -> bytes:
        document: dict[str, Any] = {
            "format": KEYRING_FORMAT,
            "version": KEYRING_VERSION,
            "active": self.active,
            "keys": [
                {
                    "id": key.key_id,
                    "created": key.created,
                    "secret": base64.urlsafe_b64encode(key.secret).decode("ascii"),
                }
                for key in self._keys.values()
            ],
        }
        return (json.dumps(document, indent=2) + "\n").encode("utf-8")

    def save(self, path: Path, *, replace: bool = True) -> None:
        """Write the ring atomically with mode 0600.

        With `replace=False` an existing file raises `KeyringError`.
        """
        if not replace and path.exists():
            raise KeyringError(
                f"key ring {str(path)!r} already exists: use `token rotate` to"
                " add a key, or choose another path"
            )
        directory = path.parent if str(path.parent) else Path(".")
        try:
            descriptor, temporary = tempfile.mkstemp(
                prefix=f".{path.name}.", dir=directory
            )
        except OSError as error:
            raise KeyringError(
                f"key ring {str(path)!r} cannot be written ({error.strerror});"
                " check that its folder exists and is writable"
            ) from None
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(self.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            if replace:
                os.replace(temporary, path)
            else:
                os.link(temporary, path)
                os.unlink(temporary)
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise KeyringError(
                f"key ring {str(path)!r} cannot be written ({error.strerror})"
            ) from None


def _new_key(now: float, taken: Any) -> Key:
    while True:
        key_id = secrets.token_hex(KEY_ID_BYTES)
        if key_id not in taken:
            return Key(key_id, AESGCM.generate_key(bit_length=256), int(now))


def _key_from_json(entry: object, origin: str) -> Key:
    if not isinstance(entry, dict):
        raise KeyringError(f"key ring {origin!r} has a key that is not an object")
    key_id = entry.get("id")
    secret = entry.get("secret")
    created = entry.get("created")
    if (
        not isinstance(key_id, str)
        or not isinstance(secret, str)
        or isinstance(created, bool)
        or not isinstance(created, int)
    ):
        raise KeyringError(
            f"key ring {origin!r}: each key needs 'id', 'secret' and 'created'"
        )
    try:
        raw = base64.urlsafe_b64decode(secret.encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise KeyringError(
            f"key ring {origin!r}: key {key_id!r} secret is not base64"
        ) from None
    return Key(key_id, raw, created)


def _decode(token: str) -> bytes:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
        raise TokenMalformed("not a token string of at most 512 characters")
    if not token.startswith(PREFIX):
        raise TokenMalformed("missing version prefix")
    body = token[len(PREFIX) :]
    if not _BASE64URL.fullmatch(body) or len(body) % 4 == 1:
        raise TokenMalformed("not URL-safe base64")
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    # Reject non-canonical text (stray low bits), so each token has one
    # spelling and cannot be varied to slip past a replay record.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != body:
        raise TokenMalformed("non-canonical base64")
    if len(raw) < _MIN_RAW:
        raise TokenMalformed("too short")
    return raw
