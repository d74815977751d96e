"""Constant-time matching of a presented value against configured secrets.

Both sides are compared as SHA-256 digests with `hmac.compare_digest`, so
the comparison takes the same time whatever the lengths, and every
configured secret is compared, so the time does not show which one
matched. Presented text is encoded without ever raising, so non-ASCII
input is a mismatch and never a server error.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from hookbouncer.config import Secret
from hookbouncer.errors import RequestError


class HeaderSecretError(RequestError):
    """The secret header is missing, repeated or has the wrong scheme (403)."""

    status = 403


class SecretMatcher:
    """A set of accepted secrets, several at once during a rotation."""

    __slots__ = ("_digests",)

    def __init__(self, secrets: Sequence[Secret]) -> None:
        self._digests = tuple(
            hashlib.sha256(secret.reveal()).digest() for secret in secrets
        )

    def __len__(self) -> int:
        return len(self._digests)

    def matches(self, presented: str | bytes) -> bool:
        """Tell whether `presented` equals any secret; str is UTF-8 encoded."""
        if isinstance(presented, str):
            # Lone surrogates can come from JSON escapes; surrogatepass
            # encodes them to bytes no valid secret contains.
            presented = presented.encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(presented).digest()
        found = False
        for expected in self._digests:
            found |= hmac.compare_digest(digest, expected)
        return found


def header_credential(
    headers: Sequence[tuple[str, str]], name: str, scheme: str
) -> bytes:
    """Return the credential in header `name` after the `scheme` word.

    `headers` are (lowercase name, Latin-1 value) pairs; the value is
    encoded back to the bytes that arrived. The scheme matches in any
    letter case; an empty scheme takes the whole value. Raise
    `HeaderSecretError` when the header is missing, repeated or has
    another scheme.
    """
    wanted = name.lower()
    values = [value for key, value in headers if key == wanted]
    if not values:
        raise HeaderSecretError("header_missing", f"no {name} header")
    if len(values) > 1:
        raise HeaderSecretError("header_repeated", f"{name} header repeated")
    value = values[0].strip(" \t")
    if scheme:
        word, space, credential = value.partition(" ")
        if not space or word.lower() != scheme.lower():
            raise HeaderSecretError("header_scheme", f"{name} scheme is not {scheme}")
        value = credential.strip(" \t")
    if not value:
        raise HeaderSecretError("header_missing", f"{name} header is empty")
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        # A framework that decoded the header as UTF-8 gave us text that
        # Latin-1 cannot hold; its UTF-8 bytes are what arrived.
        return value.encode("utf-8", "surrogatepass")
