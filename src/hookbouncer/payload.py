"""Strict reading of a webhook body and its `developerPayload`.

Two layers that read the same JSON differently are a way around any check,
so the body is read once, strictly: UTF-8 only, one top-level object, no
duplicate key at any depth, no NaN or Infinity, bounded size and nesting.
Anything else raises `MalformedBody` (400). A missing `developerPayload`
is not malformed: it is a failed check, decided by the policy.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hookbouncer.errors import MalformedBody

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

# JSON strings, so that brackets inside them are not counted as nesting.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")


class _DuplicateKey(Exception):
    pass


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateKey
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(
    body: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> dict[str, Any]:
    """Parse a webhook body into a dict; raise `MalformedBody` otherwise."""
    if len(body) > max_bytes:
        raise MalformedBody("body_too_large", f"over {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedBody("invalid_utf8", "body is not UTF-8") from None
    try:
        document = json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
    except _DuplicateKey:
        raise MalformedBody("duplicate_key", "a JSON object repeats a key") from None
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers longer than
        # Python's digit limit.
        raise MalformedBody("invalid_json", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedBody("not_an_object", "top level is not a JSON object")
    # Measured only on valid JSON, where the string pattern runs in linear
    # time; deeper bodies than the interpreter's recursion limit were
    # already rejected by json.loads with RecursionError.
    if _nesting_exceeds(body, max_depth):
        raise MalformedBody("too_deep", f"nested deeper than {max_depth}")
    return document


def developer_payload(document: dict[str, Any]) -> str | None:
    """Return the `developerPayload` string, or None when it is missing.

    A present `null` counts as missing; any other non-string value raises
    `MalformedBody`, because Copyleaks only sends strings.
    """
    value = document.get("developerPayload")
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedBody("invalid_developer_payload", "not a string")
    return value


def _nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Tell whether brackets nest deeper than `max_depth`.

    Strings are removed first, then every round deletes the innermost
    bracket pairs, so the loop runs once per level of nesting. The body
    must already be valid JSON.
    """
    brackets = _NOT_BRACKET.sub(b"", _STRING.sub(b"", body))
    for _ in range(max_depth):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if shorter == brackets:
            return False
        brackets = shorter
    return bool(brackets)
