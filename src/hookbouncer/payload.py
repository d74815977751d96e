"""Strict reading of a webhook body and its `developerPayload`.

Two layers that read the same JSON differently are a way around any check,
so the body is read once and strictly. It must be UTF-8 and one top-level
object, with no duplicate key at any depth, no NaN or Infinity (also not
as an overflowing number such as 1e400), and bounded size and nesting.
Anything else raises `MalformedBody` (400). A missing `developerPayload`
is not malformed: it is a failed check, decided by the policy.

Duplicate keys are found by counting rather than by a Python hook per
key pair: `json.loads` counts the distinct keys of every object it built,
and a byte-level pass counts the key separators (`:` outside strings) in
the raw text. The two differ exactly when some object repeated a key.
The same pass measures the nesting depth.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from hookbouncer.errors import MalformedBody

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH = 64

# Every JSON escape is a backslash and one more character (\uXXXX leaves
# four hex digits behind, which are not structural).
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_STRUCTURAL = bytes(byte for byte in range(256) if byte not in b'"[]{}:')


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # json.loads turns 1e400 into inf, which other parsers reject.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


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
    distinct_keys = 0

    def count_keys(obj: dict[str, Any]) -> dict[str, Any]:
        nonlocal distinct_keys
        distinct_keys += len(obj)
        return obj

    try:
        document = json.loads(
            text,
            object_hook=count_keys,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
        )
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and integers longer than
        # Python's digit limit; RecursionError covers nesting deeper than
        # the interpreter's recursion limit.
        raise MalformedBody("invalid_json", "body is not valid JSON") from None
    if not isinstance(document, dict):
        raise MalformedBody("not_an_object", "top level is not a JSON object")
    structure = _structure(body)
    if structure.count(b":") != distinct_keys:
        raise MalformedBody("duplicate_key", "a JSON object repeats a key")
    if _nesting_exceeds(structure.replace(b":", b""), max_depth):
        raise MalformedBody("too_deep", f"nested deeper than {max_depth}")
    return document


_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")


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


def _structure(body: bytes) -> bytes:
    """Return the brackets and key colons of valid JSON, strings removed.

    Only correct for text `json.loads` accepted: there every backslash
    starts an escape, so dropping escapes leaves each remaining quote a
    string delimiter, and every other quote-delimited part is a string.
    """
    if b"\\" in body:
        body = _ESCAPE.sub(b"", body)
    kept = body.translate(None, _NOT_STRUCTURAL)
    return b"".join(kept.split(b'"')[::2])


def _nesting_exceeds(brackets: bytes, max_depth: int) -> bool:
    """Tell whether balanced brackets nest deeper than `max_depth`.

    Every round deletes the innermost pairs of both kinds in one regex pass,
    which never rescans what it produced, so a round removes exactly one
    level, and the loop runs at most `max_depth` rounds.
    """
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = _INNERMOST_PAIR.sub(b"", brackets)
    return bool(brackets)
