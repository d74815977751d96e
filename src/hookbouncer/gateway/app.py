"""The webhook application: what the gateway does with each request.

Order of work, cheapest and least trusting first:

1. route (`match_route`): 404 for an unknown path, 405 with `Allow`;
2. connection checks (`Verifier.check_connection`): source address and
   client certificate, before any body byte is read, 403 on failure (503
   while the lists are not loaded or past `fail_closed_after`, so the
   sender retries). A request whose only failure is a list miss while the
   other connection check passed is read on, so its body checks can show
   that the feeds need an early refresh;
3. the body, read by the HTTP layer under `max_body_bytes` (413);
4. body checks (`Verifier.check_body`): JSON shape (400), developerPayload
   and header secret (403);
5. the commit (`Inbox.record_accepted`), then 200. A repeat of a stored
   webhook is also 200. An unavailable inbox is 503, so the sender retries.

A body of up to `REACTOR_BODY_BYTES` is checked on the reactor thread,
and its commit goes straight to the SQLite or PostgreSQL inbox's writer
thread, which hands the outcome back through the pool's batched wake-up.
The reactor never waits for the commit. A larger body, or an inbox without
`record_accepted_later`, is checked and committed in a pool thread, so
parsing a large body never stalls other connections. Every path commits
before the 200.

The caller learns only the status and a generic body. The typed reasons go
to the access log, the metrics and the inbox's rejection record. Anything
unexpected is logged at ERROR with its traceback and gets a 403, so an
untrusted request never gets a 500.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

from hookbouncer.config import Config
from hookbouncer.errors import InboxUnavailable, RequestError
from hookbouncer.gateway import metrics
from hookbouncer.gateway.http import ConnectionInfo, RequestHead, Response
from hookbouncer.gateway.pool import WorkerPool
from hookbouncer.inbox import (
    AcceptedWebhook,
    Inbox,
    RecordOutcome,
    Rejection,
    safe_headers,
)
from hookbouncer.inbox.sql import SqlInbox
from hookbouncer.policy import ConnectionFacts, Verdict, Verifier
from hookbouncer.routes import MethodNotAllowed, RouteMatch, match_route

log = logging.getLogger("hookbouncer.gateway")
access = logging.getLogger("hookbouncer.access")


def _json(document: dict[str, str]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


ACCEPTED = Response(200, _json({"status": "accepted"}))
FORBIDDEN = Response(403, _json({"error": "forbidden"}))
BAD_REQUEST = Response(400, _json({"error": "bad request"}), close=True)
NOT_FOUND = Response(404, _json({"error": "not found"}), close=True)
METHOD_NOT_ALLOWED = Response(
    405, _json({"error": "method not allowed"}), ((b"allow", b"POST"),), close=True
)
TOO_LARGE = Response(413, _json({"error": "payload too large"}), close=True)
TIMEOUT = Response(408, _json({"error": "request timeout"}), close=True)
UNAVAILABLE = Response(
    503, _json({"error": "unavailable"}), ((b"retry-after", b"5"),), close=True
)
BY_STATUS = {400: BAD_REQUEST, 408: TIMEOUT, 413: TOO_LARGE}

# Rejections waiting for a pool thread beyond this are dropped and counted,
# so a flood of forgeries cannot queue unbounded work.
MAX_PENDING_REJECTIONS = 1000

# Bodies up to this size are checked on the reactor thread, which is
# blocked meanwhile. Parsing and hashing a dense 64 KiB JSON body took
# about 0.9 ms on a 2-vCPU VM, so 16 KiB bounds the stall near 0.25 ms,
# while the pool hand-off it saves costs about 50 µs per request.
REACTOR_BODY_BYTES = 16 * 1024


@dataclass(frozen=True)
class Outcome:
    """The result of one request: its response and what the log and metrics get."""

    response: Response
    decision: str
    reasons: tuple[str, ...] = ()
    thumbprint: str | None = None


def client_text(verdict: Verdict, connection: ConnectionInfo) -> str:
    """Return the client address the policy settled on, or the raw peer."""
    if verdict.client_address is not None:
        return str(verdict.client_address)
    return connection.peer


class WebhookApplication:
    """Decide on webhook requests; see the module docstring for the order."""

    def __init__(
        self,
        config: Config,
        verifier: Verifier,
        inbox: Inbox,
        pool: WorkerPool,
        reactor: object,
        request_early_refresh: Callable[[], object],
        on_accepted: Callable[[], object] = lambda: None,
    ) -> None:
        self.config = config
        self.verifier = verifier
        self.inbox = inbox
        self.pool = pool
        self.reactor = reactor
        self.request_early_refresh = request_early_refresh
        self.on_accepted = on_accepted
        self.secret_header = config.header_secret.name
        self.pending_rejections = 0
        self.lock = threading.Lock()
        self.direct_inbox = inbox if isinstance(inbox, SqlInbox) else None

    # -- the HTTP layer's entry points --

    def begin(
        self, connection: ConnectionInfo, head: RequestHead
    ) -> Response | Exchange:
        started = time.perf_counter()
        try:
            route = match_route(self.config.server.prefix, head.method, head.path)
        except MethodNotAllowed:
            return self.finish_log(
                connection, head, None, started, Outcome(METHOD_NOT_ALLOWED, "method")
            )
        except RequestError:
            return self.finish_log(
                connection, head, None, started, Outcome(NOT_FOUND, "not_found")
            )
        try:
            facts = ConnectionFacts(
                peer=connection.peer,
                headers=head.headers,
                certificate_der=connection.certificate_der(),
                proxy_source=connection.proxy_source,
            )
            verdict = self.verifier.check_connection(route, facts)
        except Exception:
            log.exception("connection checks failed unexpectedly")
            outcome = Outcome(FORBIDDEN, "rejected", ("internal_error",))
            self.reject_later(route, connection.peer, outcome, None)
            return self.finish_log(connection, head, route, started, outcome)
        client = client_text(verdict, connection)
        if not verdict.passed and not self.worth_reading(route, verdict):
            outcome = Outcome(
                UNAVAILABLE if verdict.lists_unavailable else FORBIDDEN,
                "unavailable" if verdict.lists_unavailable else "rejected",
                tuple(str(failure.reason) for failure in verdict.failures),
                verdict.thumbprint or connection.thumbprint(),
            )
            self.reject_later(route, client, outcome, None)
            return self.finish_log(connection, head, route, started, outcome, client)
        return Exchange(self, connection, head, route, verdict, started)

    def worth_reading(self, route: RouteMatch, verdict: Verdict) -> bool:
        """Tell whether a failed request may still show a feed is out of date.

        That is so when the only failure is an address or certificate
        missing from its list while the other connection check passed: the
        body checks then decide whether to ask for an early refresh, and the
        answer is 403 either way. A request that passed no connection check
        is not read, so an anonymous client cannot make the gateway read
        bodies or fetch feeds. Nor is one on a route without a body check,
        where any certificate from a listed address would otherwise count.
        """
        if not verdict.needs_feed_refresh:
            return False
        checks = set(self.config.routes[route.route_class].checks)
        if not checks & {"developer_payload", "header_secret"}:
            return False
        connection_checks = checks & {"source_ip", "client_certificate"}
        failed = {failure.check for failure in verdict.failures}
        return len(failed) < len(connection_checks)

    def malformed(self, connection: ConnectionInfo, reason: str) -> Response:
        metrics.REQUESTS.labels(route="unknown", decision="malformed").inc()
        access.info(
            "- - 400 malformed %s from %s",
            reason,
            connection.peer,
            extra={
                "status": 400,
                "decision": "malformed",
                "reasons": [reason],
                "client": connection.peer,
            },
        )
        return BAD_REQUEST

    # -- helpers shared with Exchange --

    def finish_log(
        self,
        connection: ConnectionInfo,
        head: RequestHead,
        route: RouteMatch | None,
        started: float,
        outcome: Outcome,
        client: str | None = None,
    ) -> Response:
        route_class = route.route_class if route is not None else "unknown"
        duration = time.perf_counter() - started
        metrics.REQUESTS.labels(route=route_class, decision=outcome.decision).inc()
        metrics.DURATION.labels(route=route_class).observe(duration)
        for reason in outcome.reasons:
            metrics.REJECTIONS.labels(reason=reason).inc()
        if not access.isEnabledFor(logging.INFO):
            # Building the line's arguments costs more than the check.
            return outcome.response
        client = client or connection.peer
        prefix = outcome.thumbprint[:12] if outcome.thumbprint else "-"
        access.info(
            "%s %s %d %s %s client=%s cert=%s %.1fms",
            head.method,
            route_class if route is None else f"{route_class}/{route.event}",
            outcome.response.status,
            outcome.decision,
            ",".join(outcome.reasons) or "-",
            client,
            prefix,
            duration * 1000,
            extra={
                "method": head.method,
                "route": route_class,
                "status": outcome.response.status,
                "decision": outcome.decision,
                "reasons": list(outcome.reasons),
                "client": client,
                "thumbprint": prefix,
                "duration_ms": round(duration * 1000, 3),
            },
        )
        return outcome.response

    def reject_later(
        self,
        route: RouteMatch | None,
        client: str,
        outcome: Outcome,
        received_at: float | None,
    ) -> None:
        """Record a rejection from a pool thread, dropping it when backed up."""
        rejection = Rejection(
            received_at=received_at or time.time(),
            route=route.route_class if route is not None else None,
            client_address=client,
            reasons=outcome.reasons,
            thumbprint=outcome.thumbprint,
        )
        with self.lock:
            if self.pending_rejections >= MAX_PENDING_REJECTIONS:
                metrics.REJECTIONS_DROPPED.inc()
                return
            self.pending_rejections += 1
        self.pool.call(self._record_rejection, rejection)

    def _record_rejection(self, rejection: Rejection) -> None:
        try:
            self.inbox.record_rejection(rejection)
        except Exception as error:
            metrics.REJECTIONS_DROPPED.inc()
            log.warning("cannot record a rejection: %s", error)
        finally:
            with self.lock:
                self.pending_rejections -= 1

    def decide_and_record(
        self,
        route: RouteMatch,
        verdict: Verdict,
        client: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        presented: str | None = None,
    ) -> Outcome:
        """Run the body checks and commit; runs in a pool thread.

        `presented` is the thumbprint of the client certificate, pinned or
        not, for the rejection record.
        """
        decided = self.decide(route, verdict, client, headers, body, presented)
        if isinstance(decided, Outcome):
            return decided
        try:
            recorded = self.inbox.record_accepted(decided)
        except InboxUnavailable as error:
            return self.inbox_unavailable(error)
        return self.recorded(recorded, verdict)

    def decide(
        self,
        route: RouteMatch,
        verdict: Verdict,
        client: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        presented: str | None = None,
    ) -> Outcome | AcceptedWebhook:
        """Run the body checks; return the webhook to commit or the rejection.

        A rejection is queued for the inbox's rejection record here.
        """
        received_at = time.time()
        try:
            decision = self.verifier.check_body(verdict, headers, body)
        except RequestError as error:
            outcome = Outcome(
                BY_STATUS.get(error.status, FORBIDDEN),
                "malformed" if error.status == 400 else "rejected",
                (error.reason,),
                verdict.thumbprint or presented,
            )
            self.reject_later(route, client, outcome, received_at)
            return outcome
        if decision.needs_feed_refresh:
            self.reactor.callFromThread(self.request_early_refresh)  # type: ignore[attr-defined]
        if not decision.accepted:
            outcome = Outcome(
                UNAVAILABLE if decision.status == 503 else FORBIDDEN,
                "unavailable" if decision.status == 503 else "rejected",
                tuple(str(failure.reason) for failure in decision.failures),
                verdict.thumbprint or presented,
            )
            self.reject_later(route, client, outcome, received_at)
            return outcome
        return AcceptedWebhook(
            route_class=route.route_class,
            event=route.event,
            scan_id=route.subject_id,
            received_at=received_at,
            client_address=client,
            body=body,
            headers=safe_headers(headers, self.secret_header),
            checks=self.config.routes[route.route_class].checks,
            thumbprint=decision.thumbprint,
            token_context=decision.context,
        )

    def inbox_unavailable(self, error: object) -> Outcome:
        log.error("inbox unavailable, responding 503: %s", error)
        return Outcome(UNAVAILABLE, "unavailable", ("inbox_unavailable",))

    def recorded(self, recorded: RecordOutcome, verdict: Verdict) -> Outcome:
        """Return the outcome of a committed webhook and wake the relay."""
        if not recorded.duplicate:
            self.on_accepted()
        decision_name = "duplicate" if recorded.duplicate else "accepted"
        return Outcome(ACCEPTED, decision_name, (), verdict.thumbprint)


class Exchange:
    """One request past the connection checks, waiting for its body."""

    def __init__(
        self,
        application: WebhookApplication,
        connection: ConnectionInfo,
        head: RequestHead,
        route: RouteMatch,
        verdict: Verdict,
        started: float,
    ) -> None:
        self.application = application
        self.connection = connection
        self.head = head
        self.route = route
        self.verdict = verdict
        self.started = started
        self.client = client_text(verdict, connection)

    def finish(self, body: bytes) -> defer.Deferred[Response]:
        app = self.application
        arguments = (
            self.route,
            self.verdict,
            self.client,
            self.head.headers,
            body,
            self.verdict.thumbprint or self.connection.thumbprint(),
        )
        deferred: defer.Deferred[Outcome]
        if app.direct_inbox is None or len(body) > REACTOR_BODY_BYTES:
            deferred = app.pool.run(app.decide_and_record, *arguments)
        else:
            try:
                deferred = self._decide_here(app.direct_inbox, arguments)
            except Exception:
                deferred = defer.fail()
        return deferred.addErrback(self._unexpected).addCallback(self._respond)

    def _decide_here(
        self, inbox: SqlInbox, arguments: tuple[Any, ...]
    ) -> defer.Deferred[Outcome]:
        """Check the body on the reactor thread and hand the commit to the writer."""
        app = self.application
        decided = app.decide(*arguments)
        if isinstance(decided, Outcome):
            return defer.succeed(decided)
        committed: defer.Deferred[RecordOutcome] = defer.Deferred()

        def hand_back(
            outcome: RecordOutcome | None, error: BaseException | None
        ) -> None:
            # Runs on the writer thread, after the commit.
            app.pool.hand_back(committed, error is None, error or outcome)

        try:
            inbox.record_accepted_later(decided, hand_back)
        except InboxUnavailable as error:
            return defer.succeed(app.inbox_unavailable(error))
        # After `write_timeout` the request gets a 503, as with
        # `record_accepted`. A commit that lands later is then reported as
        # a duplicate when the sender retries.
        committed.addTimeout(inbox.write_timeout, app.reactor)  # type: ignore[arg-type]
        return committed.addCallbacks(
            app.recorded,
            self._not_committed,
            callbackArgs=(self.verdict,),
        )

    def _not_committed(self, failure: Failure) -> Outcome:
        failure.trap(InboxUnavailable, defer.TimeoutError)  # type: ignore[no-untyped-call]
        return self.application.inbox_unavailable(failure.value)

    def _unexpected(self, failure: Failure) -> Outcome:
        log.error(
            "deciding on a request failed unexpectedly",
            exc_info=failure.value,
        )
        return Outcome(FORBIDDEN, "rejected", ("internal_error",), None)

    def _respond(self, outcome: Outcome) -> Response:
        return self.application.finish_log(
            self.connection,
            self.head,
            self.route,
            self.started,
            outcome,
            self.client,
        )

    def fail(self, status: int, reason: str) -> Response:
        outcome = Outcome(
            BY_STATUS.get(status, BAD_REQUEST),
            {413: "too_large", 408: "timeout"}.get(status, "malformed"),
            (reason,),
            self.verdict.thumbprint,
        )
        return self.application.finish_log(
            self.connection,
            self.head,
            self.route,
            self.started,
            outcome,
            self.client,
        )
