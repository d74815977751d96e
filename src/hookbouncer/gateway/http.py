"""HTTP/1.1 on h11 under Twisted, with the caps a webhook endpoint needs.

Why h11 and not `twisted.web.server.Site`: every limit here must hold on
bytes actually received, and must be visible to the code that decides.
twisted.web (26.10) buffers the body before the resource gets the request,
so a cap needs overrides of `Request.gotLength` and `handleContentChunk`.
Its `HTTPChannel` has one inactivity timeout (`timeOut`) and a header-size
limit (`totalHeadersSize`), but no separate header and body deadlines.
With h11 the protocol gets each event as it is parsed, so it can:

- answer 404, 405, 403 or 413 right after the header block, before any
  body byte is read (the application decides in `Application.begin`);
- count body bytes as they arrive and stop at `max_body_bytes`, answering
  413 and closing, whatever Content-Length or chunking claimed;
- run three deadlines: `header_timeout` from the first byte of a request
  (for the first request, from the TCP accept, so it also bounds the TLS
  handshake) to the end of its header block, `body_timeout` from the end
  of the header block to the end of the body, and `idle_timeout` between
  requests on a keep-alive connection;
- stop reading when a client sends more than 64 KiB ahead while a request
  is decided and committed, so a pipelining client cannot make the
  gateway buffer without bound.

A connection that must close after its response is "lingered": the
response is written, further input is discarded without parsing, and the
connection is aborted after `linger` seconds or once the peer closes.
Without that, a client still sending a large body gets a reset instead of
the 413.

Speed: h11 parsed a request and wrote its response in 50 to 80 µs on the
2-vCPU development VM (an estimate from a loop over one request; the VM
was shared). That is a small part of a request's cost next to TLS,
the thread hand-off and the commit, so the stricter parser wins.
twisted.web, also pure Python, was not measured.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol
from typing import cast

import h11
from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener, ISSLTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from hookbouncer.gateway import metrics
from hookbouncer.gateway.tls import peer_certificate_der

log = logging.getLogger("hookbouncer.gateway")

JSON = b"application/json"

# Bytes a client may send ahead while its previous request is decided.
MAX_HELD_BYTES = 64 * 1024


# At most one handshake failure line per this many seconds; the metric
# counts every one.
HANDSHAKE_LOG_INTERVAL = 10.0
_handshake_log = {"last": float("-inf"), "suppressed": 0}


def _log_handshake_failure(peer: str, reason: str) -> None:
    """Count a failed TLS handshake and log it, rate limited."""
    metrics.TLS_HANDSHAKE_FAILURES.inc()
    now = time.monotonic()
    if now - _handshake_log["last"] < HANDSHAKE_LOG_INTERVAL:
        _handshake_log["suppressed"] += 1
        return
    suppressed = int(_handshake_log["suppressed"])
    _handshake_log.update(last=now, suppressed=0)
    log.warning(
        "TLS handshake failed from %s: %s%s",
        peer,
        reason,
        f" ({suppressed} more since the last line)" if suppressed else "",
        extra={"client": peer},
    )


def _ssl_reason(error: BaseException) -> str:
    """Return OpenSSL's reason strings, such as 'peer did not return a certificate'."""
    details = error.args[0] if error.args else None
    if isinstance(details, list):
        reasons = [str(entry[-1]) for entry in details if isinstance(entry, tuple)]
        if reasons:
            return "; ".join(reasons)
    return type(error).__name__


@dataclass(frozen=True)
class Limits:
    """Per-connection limits; times in seconds, sizes in bytes."""

    max_body_bytes: int
    header_timeout: float
    body_timeout: float
    idle_timeout: float
    max_header_bytes: int = 16 * 1024
    linger: float = 2.0


@dataclass(frozen=True)
class RequestHead:
    """A request line and header block as the core expects them.

    Header names are lowercase, values decoded as Latin-1, in arrival order.
    `path` is the target without its query string.
    """

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    content_length: int | None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    close: bool = False
    content_type: bytes = JSON


FORBIDDEN = Response(403, b'{"error":"forbidden"}', close=True)


@functools.lru_cache(maxsize=64)
def _response_event(response: Response, close: bool) -> h11.Response:
    """Build the h11 event for `response`, once per distinct response.

    Most answers are a handful of constants, and h11 validates every
    header of a new event, so the events are kept; h11 never changes one.
    """
    headers = [
        (b"content-type", response.content_type),
        (b"content-length", str(len(response.body)).encode()),
        *response.headers,
    ]
    if close:
        headers.append((b"connection", b"close"))
    return h11.Response(status_code=response.status, headers=headers)


class Exchange(TypingProtocol):
    """One request whose head the application let through."""

    def finish(self, body: bytes) -> defer.Deferred[Response]:
        """Decide on the complete body; the Deferred must never errback."""

    def fail(self, status: int, reason: str) -> Response:
        """Answer a request that broke a limit while its body was read."""


class Application(TypingProtocol):
    def begin(
        self, connection: ConnectionInfo, head: RequestHead
    ) -> Response | Exchange:
        """Route the request and run the checks that need no body."""

    def malformed(self, connection: ConnectionInfo, reason: str) -> Response:
        """Answer a request whose head h11 could not parse."""


class Transport(TypingProtocol):
    """The transport methods used here; Twisted's interfaces lack `self`."""

    def write(self, data: bytes) -> None: ...
    def loseConnection(self) -> None: ...
    def abortConnection(self) -> None: ...
    def pauseProducing(self) -> None: ...
    def resumeProducing(self) -> None: ...
    def getPeer(self) -> object: ...


class Timer(TypingProtocol):
    def active(self) -> bool: ...
    def cancel(self) -> None: ...
    def reset(self, seconds: float) -> None: ...


class Clock(TypingProtocol):
    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object
    ) -> Timer: ...


class ConnectionInfo:
    """The connection a request came on, as the application may query it.

    `peer` is the socket peer's address text; a unix socket peer counts as
    127.0.0.1, the local TLS terminator. `proxy_source` is the source address
    from a PROXY protocol header, None without one. The
    client certificate is read once, lazily: renegotiation is disabled, so
    it cannot change during the connection, but each request must still
    compare it with the pins in force.
    """

    __slots__ = (
        "_certificate",
        "_certificate_read",
        "_thumbprint",
        "peer",
        "proxy_source",
        "transport",
    )

    def __init__(
        self, transport: Transport, peer: str, proxy_source: str | None = None
    ) -> None:
        self.transport = transport
        self.peer = peer
        self.proxy_source = proxy_source
        self._certificate: bytes | None = None
        self._certificate_read = False
        self._thumbprint: str | None = None

    def certificate_der(self) -> bytes | None:
        if not self._certificate_read:
            self._certificate = peer_certificate_der(self.transport)
            self._certificate_read = True
        return self._certificate

    def thumbprint(self) -> str | None:
        """Return the SHA-1 of the presented certificate, pinned or not.

        It identifies a certificate in logs and rejection records; only
        the policy decides whether it is trusted.
        """
        if self._thumbprint is None:
            der = self.certificate_der()
            if der is not None:
                self._thumbprint = hashlib.sha1(der, usedforsecurity=False).hexdigest()
        return self._thumbprint


def peer_text(transport: Transport) -> str:
    address = transport.getPeer()
    host = getattr(address, "host", None)
    return host if isinstance(host, str) else "127.0.0.1"


@implementer(IHandshakeListener)
class HTTPProtocol(Protocol):
    """Serve HTTP/1.1 requests one at a time on one connection."""

    def __init__(
        self,
        application: Application,
        limits: Limits,
        clock: Clock,
        on_open: Callable[[HTTPProtocol], None] = lambda protocol: None,
        on_close: Callable[[HTTPProtocol], None] = lambda protocol: None,
    ) -> None:
        self.application = application
        self.limits = limits
        self.clock = clock
        self.on_open = on_open
        self.on_close = on_close
        self.proxy_source: str | None = None
        self.info: ConnectionInfo | None = None
        self.parser = h11.Connection(
            h11.SERVER, max_incomplete_event_size=limits.max_header_bytes
        )
        self.exchange: Exchange | None = None
        self.body = bytearray()
        self.busy = False
        self.paused = False
        self.held = 0
        self.closing = False
        self.draining = False
        self.timer: Timer | None = None
        self.io: Transport = cast(Transport, None)
        self.waiting_for = "header"
        # The method of the request being answered: a response to HEAD
        # carries the headers of the response it stands for, but no body.
        self.method: bytes | None = None
        self.requests = 0
        # Set in connectionMade and by Twisted's TLS layer, which calls
        # handshakeCompleted on protocols that provide IHandshakeListener.
        self.tls = False
        self.handshake_done = False
        self.handshake_timed_out = False

    # -- connection lifecycle --

    def connectionMade(self) -> None:
        self.io = cast(Transport, self.transport)
        self.tls = ISSLTransport.providedBy(self.transport)
        self.info = ConnectionInfo(self.io, peer_text(self.io), self.proxy_source)
        self.on_open(self)
        self._arm(self.limits.header_timeout, "header")

    def handshakeCompleted(self) -> None:
        """Note the end of the TLS handshake (`IHandshakeListener`)."""
        self.handshake_done = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        if self.tls and not self.handshake_done:
            peer = self.info.peer if self.info else "?"
            error = reason.value
            if isinstance(error, SSL.Error):
                _log_handshake_failure(peer, _ssl_reason(error))
            elif self.handshake_timed_out:
                _log_handshake_failure(peer, "not finished within header_timeout")
        self.closing = True
        self.on_close(self)

    @property
    def idle(self) -> bool:
        return not self.busy and self.waiting_for == "idle"

    def drain(self) -> None:
        """Close now when idle, or after the response in progress."""
        self.draining = True
        if self.idle:
            self._lose()

    # -- timers --

    def _arm(self, seconds: float, phase: str) -> None:
        self.waiting_for = phase
        timer = self.timer
        if timer is not None and timer.active() and not self.closing:
            # Moving the pending call is cheaper than cancelling it and
            # scheduling a new one, which a request did three times.
            timer.reset(seconds)
            return
        self._disarm()
        self.timer = self.clock.callLater(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        phase = self.waiting_for
        if self.closing:
            self._abort()
            return
        if phase == "body" and self.exchange is not None:
            # A slow body gets a 408 response: the client may be honest but slow.
            response = self.exchange.fail(408, "body_timeout")
            self.exchange = None
            self._send(response, close=True)
            return
        if phase == "header":
            self.handshake_timed_out = self.tls and not self.handshake_done
            log.debug("header timeout from %s", self.info.peer if self.info else "?")
        self._abort()

    # -- input --

    def dataReceived(self, data: bytes) -> None:
        try:
            self._received(data)
        except Exception:
            # A bug here must not leave the connection half-handled: answer
            # 403 when a response can still be sent, and close.
            log.exception("handling a request failed unexpectedly")
            self.exchange = None
            if self.closing or self.parser.our_state not in {
                h11.IDLE,
                h11.SEND_RESPONSE,
            }:
                self._abort()
            else:
                self._send(FORBIDDEN, close=True)

    def _received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.busy:
            # Pipelined input waits in h11's buffer; past a bound, stop
            # reading until the decision is made. Pausing only then saves
            # two epoll calls per request on the usual connection.
            self.held += len(data)
            if self.held > MAX_HELD_BYTES and not self.paused:
                self.paused = True
                self.io.pauseProducing()
        elif self.waiting_for == "idle":
            self._arm(self.limits.header_timeout, "header")
        try:
            self.parser.receive_data(data)
        except h11.RemoteProtocolError:
            self._reject_malformed("bad_framing")
            return
        if not self.busy:
            self._process()

    def _process(self) -> None:
        while not self.closing and not self.busy:
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError as error:
                reason = (
                    "header_too_large" if error.error_status_hint == 431 else "bad_http"
                )
                self._reject_malformed(reason, error.error_status_hint)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._on_request(event)
            elif isinstance(event, h11.Data):
                self._on_data(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._on_end()
            elif isinstance(event, h11.ConnectionClosed):
                self._lose()
                return

    def _on_request(self, event: h11.Request) -> None:
        assert self.info is not None
        self.method = event.method
        self.requests += 1
        # h11 bounds only a header block that is still incomplete, and TLS
        # hands it up to 16 KiB records at a time, so a block that arrived
        # whole is measured here: request line, names, values, separators.
        size = len(event.method) + len(event.target) + 12
        size += sum(len(name) + len(value) + 4 for name, value in event.headers)
        if size > self.limits.max_header_bytes:
            self._reject_malformed("header_too_large", 431)
            return
        self._arm(self.limits.body_timeout, "body")
        headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in event.headers
        )
        target = event.target.decode("latin-1")
        length: int | None = None
        for name, value in headers:
            if name == "content-length":
                length = int(value)  # h11 has checked it is one decimal number
        head = RequestHead(
            method=event.method.decode("latin-1"),
            path=target.split("?", 1)[0],
            headers=headers,
            content_length=length,
        )
        outcome = self.application.begin(self.info, head)
        if isinstance(outcome, Response):
            self._send(outcome, close=True)
            return
        if length is not None and length > self.limits.max_body_bytes:
            self._send(outcome.fail(413, "body_too_large"), close=True)
            return
        self.exchange = outcome
        self.body = bytearray()
        if self.parser.they_are_waiting_for_100_continue:
            self.io.write(
                self.parser.send(h11.InformationalResponse(status_code=100, headers=[]))
                or b""
            )

    def _on_data(self, chunk: bytes) -> None:
        if self.exchange is None:
            return
        if len(self.body) + len(chunk) > self.limits.max_body_bytes:
            response = self.exchange.fail(413, "body_too_large")
            self.exchange = None
            self._send(response, close=True)
            return
        self.body += chunk

    def _on_end(self) -> None:
        exchange = self.exchange
        if exchange is None:
            return
        self.exchange = None
        self._disarm()
        self.waiting_for = "decision"
        self.busy = True
        self.held = 0
        body = bytes(self.body)
        self.body = bytearray()
        exchange.finish(body).addCallback(self._decided)

    def _decided(self, response: Response) -> None:
        self.busy = False
        if self.closing:
            return
        self._send(response, close=response.close or self.draining)
        if self.closing:
            return
        if self.paused:
            self.paused = False
            self.io.resumeProducing()
        self._process()
        if self.waiting_for == "idle" and self.parser.trailing_data[0]:
            # Part of the next request arrived while this one was decided:
            # its header deadline runs from now, not the idle one.
            self._arm(self.limits.header_timeout, "header")

    def _reject_malformed(self, reason: str, status: int = 400) -> None:
        assert self.info is not None
        self.exchange = None
        if self.parser.our_state not in {h11.IDLE, h11.SEND_RESPONSE}:
            self._abort()
            return
        response = self.application.malformed(self.info, reason)
        self._send(Response(status, response.body, response.headers), close=True)

    # -- output --

    def _send(self, response: Response, *, close: bool) -> None:
        try:
            data = self.parser.send(_response_event(response, close)) or b""
            if self.method != b"HEAD":
                data += self.parser.send(h11.Data(data=response.body)) or b""
            data += self.parser.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            log.exception("cannot write a %d response", response.status)
            self._abort()
            return
        self.io.write(data)
        if close or self.parser.our_state is h11.MUST_CLOSE:
            self._lose()
            return
        try:
            self.parser.start_next_cycle()
        except h11.LocalProtocolError:
            self._lose()
            return
        self.method = None
        self._arm(self.limits.idle_timeout, "idle")

    def _lose(self) -> None:
        """Flush, close, and abort after the linger time at the latest."""
        if self.closing:
            return
        self.closing = True
        self._disarm()
        if self.paused:
            # Read on, so the peer's close or close_notify is seen.
            self.paused = False
            self.io.resumeProducing()
        self.io.loseConnection()
        self.timer = self.clock.callLater(self.limits.linger, self._abort)

    def _abort(self) -> None:
        self.closing = True
        self._disarm()
        self.io.abortConnection()
