"""The admin listener: `/healthz`, `/readyz` and `/metrics`, plain HTTP.

It listens on loopback by default and serves no webhook. `/healthz` is 200
while the process runs. `/readyz` is 200 when the feeds are loaded and not
past `feeds.fail_closed_after` and the inbox is writable. It adds
`"degraded": true` while a feed is stale, and is 503 with the parts that
failed otherwise. `/metrics` is the Prometheus text format of the default
registry. Readiness and metrics may touch the database, so they are
computed in a pool thread.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from twisted.internet import defer
from twisted.python.failure import Failure

from hookbouncer.gateway.http import ConnectionInfo, RequestHead, Response
from hookbouncer.gateway.pool import WorkerPool

log = logging.getLogger("hookbouncer.gateway")


@dataclass(frozen=True)
class Readiness:
    """Whether the gateway can accept webhooks, and why not."""

    ready: bool
    degraded: bool = False
    failed: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)

    def document(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "degraded": self.degraded,
            "failed": list(self.failed),
            **self.details,
        }


def _json_response(status: int, document: dict[str, object]) -> Response:
    return Response(status, json.dumps(document, separators=(",", ":")).encode())


NOT_FOUND = _json_response(404, {"error": "not found"})
METHOD_NOT_ALLOWED = Response(
    405, b'{"error":"method not allowed"}', ((b"allow", b"GET, HEAD"),), close=True
)


class AdminExchange:
    def __init__(self, application: AdminApplication, path: str) -> None:
        self.application = application
        self.path = path

    def finish(self, body: bytes) -> defer.Deferred[Response]:
        app = self.application
        deferred: defer.Deferred[Response] = app.pool.run(
            app.render,
            self.path,
        )
        return deferred.addErrback(self._unexpected)

    def _unexpected(self, failure: Failure) -> Response:
        log.error(
            "admin page %s failed",
            self.path,
            exc_info=failure.value,
        )
        return _json_response(500, {"error": "internal error"})

    def fail(self, status: int, reason: str) -> Response:
        return _json_response(status, {"error": reason})


class AdminApplication:
    def __init__(
        self,
        readiness: Callable[[], Readiness],
        pool: WorkerPool,
        reactor: object,
    ) -> None:
        self.readiness = readiness
        self.pool = pool
        self.reactor = reactor

    def begin(
        self, connection: ConnectionInfo, head: RequestHead
    ) -> Response | AdminExchange:
        if head.path not in {"/healthz", "/readyz", "/metrics"}:
            return NOT_FOUND
        if head.method not in {"GET", "HEAD"}:
            return METHOD_NOT_ALLOWED
        return AdminExchange(self, head.path)

    def malformed(self, connection: ConnectionInfo, reason: str) -> Response:
        return _json_response(400, {"error": "bad request"})

    def render(self, path: str) -> Response:
        if path == "/healthz":
            return _json_response(200, {"status": "alive"})
        if path == "/readyz":
            readiness = self.readiness()
            return _json_response(200 if readiness.ready else 503, readiness.document())
        return Response(
            200,
            generate_latest(REGISTRY),
            content_type=CONTENT_TYPE_LATEST.encode(),
        )
