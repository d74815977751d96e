"""Webhook routes: request path to route class, event and scan id.

Three shapes are served under the configured prefix, each for POST only:

- `{prefix}/{status}/{scan_id}`, status one of `completed`, `error`,
  `creditsChecked`, `indexed` in any letter case;
- `{prefix}/new-result/{scan_id}`;
- `{prefix}/export/{export_id}/completed`.

Matching is strict. The path is split on `/` before percent-decoding, so
`%2F` never becomes a separator. Empty, `.` and `..` segments, a `#`,
invalid escapes and ids outside Copyleaks' charset fail with `NotFound`.
A query string is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from hookbouncer.config import RouteClass
from hookbouncer.errors import RequestError

# Copyleaks scan and export ids: letters, digits, "-", "_" and ".".
MAX_ID_CHARS = 100
_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_ID_CHARS}}}")
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_MAX_PATH_CHARS = 2048

STATUS_EVENTS = {
    "completed": "completed",
    "error": "error",
    "creditschecked": "creditsChecked",
    "indexed": "indexed",
}
NEW_RESULT_EVENT = "newResult"
EXPORT_EVENT = "exportCompleted"


class NotFound(RequestError):
    """The path is not a webhook route (404)."""

    status = 404


class MethodNotAllowed(RequestError):
    """The path is a webhook route but the method is not POST (405)."""

    status = 405
    allow = "POST"


@dataclass(frozen=True)
class RouteMatch:
    """A matched webhook route.

    `subject_id` is the id a sealed developerPayload is bound to: the scan
    id for status and new-result routes, the export id for export routes.
    """

    route_class: RouteClass
    event: str
    scan_id: str | None
    export_id: str | None = None

    @property
    def subject_id(self) -> str:
        if self.scan_id is not None:
            return self.scan_id
        assert self.export_id is not None
        return self.export_id


def match_route(prefix: str, method: str, path: str) -> RouteMatch:
    """Match a request target against the webhook routes.

    `prefix` is the configured path prefix such as `/copyleaks` (or "").
    `path` is the raw request target; a query string is ignored. Raise
    `NotFound` (404) or `MethodNotAllowed` (405).
    """
    route = _match_path(prefix, path)
    if method != "POST":
        raise MethodNotAllowed("method_not_allowed", "only POST is served")
    return route


def _match_path(prefix: str, path: str) -> RouteMatch:
    if len(path) > _MAX_PATH_CHARS or not path.isascii():
        raise NotFound("not_found", "path too long or not ASCII")
    target = path.partition("?")[0]
    if "#" in target or not target.startswith(prefix + "/"):
        raise NotFound("not_found", "outside the prefix")
    segments = [_decode(segment) for segment in target[len(prefix) + 1 :].split("/")]
    if len(segments) == 2:
        first, identifier = segments
        _check_id(identifier)
        if first == "new-result":
            return RouteMatch("new_result", NEW_RESULT_EVENT, identifier)
        event = STATUS_EVENTS.get(first.lower())
        if event is not None:
            return RouteMatch("status", event, identifier)
    elif len(segments) == 3 and segments[0] == "export" and segments[2] == "completed":
        _check_id(segments[1])
        return RouteMatch("export", EXPORT_EVENT, None, segments[1])
    raise NotFound("not_found", "no route for this path")


def _decode(segment: str) -> str:
    if "%" not in segment:
        return segment
    # Every "%" must start a valid escape; a stray one is not a route.
    if segment.count("%") != len(_PERCENT.findall(segment)):
        raise NotFound("not_found", "invalid percent-encoding")
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        raise NotFound("not_found", "percent-encoding is not UTF-8") from None
    if "/" in decoded or "%" in decoded:
        raise NotFound("not_found", "encoded separator")
    return decoded


def is_valid_id(identifier: str) -> bool:
    """Tell whether `identifier` is a well-formed Copyleaks scan or export id."""
    return _ID.fullmatch(identifier) is not None and identifier not in {".", ".."}


def _check_id(identifier: str) -> None:
    if not is_valid_id(identifier):
        raise NotFound("not_found", "id outside the allowed charset")
