"""Turn a feed response body into validated entries, or reject it whole.

Copyleaks does not publish the response format of its security endpoints.
The accepted JSON shapes are listed in `LIST_KEYS`, `VALUE_FIELDS` and
docs/feeds.md. Any other shape is rejected with a message that names what
arrived. This module decides only whether a body is a good list. It does
no I/O and never decides whether a request is accepted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hookbouncer.feeds.model import FeedName, FeedUpdateError
from hookbouncer.feeds.validate import (
    IPNetwork,
    normalize_thumbprints,
    parse_networks,
)

# Object keys that may hold the list when the object has several keys.
LIST_KEYS: dict[FeedName, tuple[str, ...]] = {
    "ranges": ("ips", "ranges", "cidrs", "data", "items"),
    "thumbprints": ("thumbprints", "certificates", "data", "items"),
}

# Fields of an object element that carry the value.
VALUE_FIELDS: dict[FeedName, tuple[str, ...]] = {
    "ranges": ("ip", "cidr", "range", "address"),
    "thumbprints": ("thumbprint", "fingerprint", "sha1", "sha256"),
}

PREVIEW_BYTES = 32


@dataclass(frozen=True)
class ParsedRanges:
    networks: tuple[IPNetwork, ...]
    raw_count: int


@dataclass(frozen=True)
class ParsedThumbprints:
    thumbprints: tuple[str, ...]
    raw_count: int


def parse_ranges(
    body: bytes,
    *,
    content_type: str = "application/json",
    status: int = 200,
    min_v4: int = 16,
    min_v6: int = 32,
) -> ParsedRanges:
    """Parse and validate a sender-range feed body.

    Raise `FeedUpdateError` when the body is not one of the accepted
    shapes, the list is empty or any entry is invalid.
    """
    entries = extract_entries(
        body, feed="ranges", content_type=content_type, status=status
    )
    networks = _validate(
        entries, lambda items: parse_networks(items, min_v4, min_v6), "ranges"
    )
    return ParsedRanges(networks, len(entries))


def parse_thumbprints(
    body: bytes, *, content_type: str = "application/json", status: int = 200
) -> ParsedThumbprints:
    """Parse and validate a client-certificate thumbprint feed body."""
    entries = extract_entries(
        body, feed="thumbprints", content_type=content_type, status=status
    )
    thumbprints = _validate(entries, normalize_thumbprints, "thumbprints")
    return ParsedThumbprints(thumbprints, len(entries))


def _validate(
    entries: list[str],
    check: Callable[[list[str]], tuple[Any, ...]],
    feed: FeedName,
) -> tuple[Any, ...]:
    try:
        return check(entries)
    except ValueError as error:
        raise FeedUpdateError(
            "invalid_entry", f"the {feed} feed was rejected because {error}"
        ) from None


def extract_entries(
    body: bytes, *, feed: FeedName, content_type: str = "", status: int = 200
) -> list[str]:
    """Return the entry strings of an accepted shape, not yet validated."""
    facts = _Arrival(body, content_type, status)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in ("text/html", "application/xhtml+xml") or _looks_like_html(body):
        raise facts.reject("html", f"the {feed} feed returned an HTML page")
    document = _decode_json(facts, feed)

    items = _find_list(document, feed)
    if items is None:
        raise facts.reject(
            "shape",
            f"the {feed} feed has an unsupported JSON shape: {describe(document)}",
        )
    if not items:
        raise facts.reject("empty", f"the {feed} feed list is empty")
    entries = _entries_from_items(items, feed)
    if entries is None:
        raise facts.reject(
            "shape",
            f"the {feed} feed has unsupported list elements: {describe(items)}",
        )
    return entries


def _decode_json(facts: _Arrival, feed: FeedName) -> Any:
    """Decode exactly one strict JSON document from UTF-8 text."""
    try:
        text = facts.body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise facts.reject("not_json", f"the {feed} feed is not UTF-8 text") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicate_keys,
            parse_constant=_reject_constant,
        )
    except (json.JSONDecodeError, _DuplicateKey, _BadConstant) as error:
        raise facts.reject(
            "not_json", f"the {feed} feed is not one JSON document ({error})"
        ) from None
    except RecursionError:
        raise facts.reject(
            "not_json", f"the {feed} feed nests JSON arrays or objects too deeply"
        ) from None


def _find_list(document: Any, feed: FeedName) -> list[Any] | None:
    if isinstance(document, list):
        return document
    if not isinstance(document, dict):
        return None
    if len(document) == 1:
        (value,) = document.values()
        return value if isinstance(value, list) else None
    known = set(LIST_KEYS[feed])
    lists = [
        value
        for key, value in document.items()
        if key.lower() in known and isinstance(value, list)
    ]
    return lists[0] if len(lists) == 1 else None


def _entries_from_items(items: list[Any], feed: FeedName) -> list[str] | None:
    if all(isinstance(item, str) for item in items):
        return list(items)
    if not all(isinstance(item, dict) for item in items):
        return None
    fields = set(VALUE_FIELDS[feed])
    entries: list[str] = []
    for item in items:
        values = [v for k, v in item.items() if k.lower() in fields]
        if not values or not all(isinstance(v, str) for v in values):
            return None
        entries.extend(values)
    return entries


def describe(value: Any) -> str:
    """Describe the shape of a JSON value without echoing its contents."""
    if isinstance(value, dict):
        keys = ", ".join(repr(_preview_text(k)) for k in list(value)[:5])
        more = ", …" if len(value) > 5 else ""
        return f"an object with keys [{keys}{more}]"
    if isinstance(value, list):
        kinds = sorted({_json_type(item) for item in value})
        return f"an array of {len(value)} ({', '.join(kinds) or 'no'} elements)"
    return f"a JSON {_json_type(value)}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _looks_like_html(body: bytes) -> bool:
    start = body.lstrip()[:64].lower()
    return start.startswith((b"<!doctype", b"<html", b"<head", b"<body"))


@dataclass(frozen=True)
class _Arrival:
    body: bytes
    content_type: str
    status: int

    def reject(self, reason: Any, message: str) -> FeedUpdateError:
        return FeedUpdateError(reason, f"{message}; received {self.summary()}")

    def summary(self) -> str:
        return summarize_response(self.status, self.content_type, self.body)


def summarize_response(status: int, content_type: str, body: bytes) -> str:
    """Describe a response for an error message: status, type, first bytes."""
    kind = _preview_text(content_type) if content_type else "no content type"
    return f"status {status}, {kind}, {len(body)} bytes starting {preview(body)!r}"


def preview(body: bytes, limit: int = PREVIEW_BYTES) -> str:
    """Return the first bytes of a body as printable ASCII for messages."""
    head = body[:limit].decode("ascii", errors="replace")
    text = "".join(c if c.isprintable() and c.isascii() else "?" for c in head)
    return text + ("…" if len(body) > limit else "")


def _preview_text(text: str, limit: int = 40) -> str:
    return preview(text.encode("utf-8", errors="replace"), limit)


class _DuplicateKey(ValueError):
    pass


class _BadConstant(ValueError):
    pass


def _reject_duplicate_keys(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(f"duplicate key {_preview_text(key)!r}")
        result[key] = value
    return result


def _reject_constant(name: str) -> Any:
    raise _BadConstant(f"{name} is not valid JSON")
