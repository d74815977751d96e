"""PROXY protocol (v1 and v2): read the header, then hand over the stream.

A load balancer in TCP mode writes one PROXY header before anything else,
carrying the client's address. `ProxyProtocolWrapper` buffers the first
bytes, parses them with the verification core's parser, strips the header
and starts the wrapped protocol (TLS or HTTP) with the rest. The header's
source address replaces the socket peer for the HTTP layer. A connection
that sends no complete header within the timeout, or an invalid one, is
aborted before anything else reads from it.

Whether that address is believed is still the policy's decision: the
header is only read on listeners configured for it, which should be
reachable from the load balancer alone.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from hookbouncer.errors import RequestError
from hookbouncer.gateway.http import Clock, HTTPProtocol, Timer, Transport
from hookbouncer.proxy_protocol import parse_proxy_header

log = logging.getLogger("hookbouncer.gateway")

# The parser rejects longer headers itself; this bounds the buffer anyway.
MAX_HEADER_BYTES = 4096 + 16


def innermost(protocol: Protocol) -> Protocol:
    """Follow `wrappedProtocol` links down to the application protocol."""
    while True:
        inner = getattr(protocol, "wrappedProtocol", None)
        if inner is None:
            return protocol
        protocol = inner


class ProxyProtocolWrapper(Protocol):
    def __init__(self, wrapped: Any, clock: Clock, timeout: float) -> None:
        self.wrappedProtocol = wrapped
        self.clock = clock
        self.timeout = timeout
        self.buffer = b""
        self.started = False
        self.timer: Timer | None = None

    def connectionMade(self) -> None:
        self.timer = self.clock.callLater(self.timeout, self._give_up, "timeout")

    def dataReceived(self, data: bytes) -> None:
        if self.started:
            self.wrappedProtocol.dataReceived(data)
            return
        self.buffer += data
        try:
            header = parse_proxy_header(self.buffer)
        except RequestError as error:
            self._give_up(error.reason)
            return
        if header is None:
            if len(self.buffer) > MAX_HEADER_BYTES:
                self._give_up("proxy_header_too_long")
            return
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        rest = self.buffer[header.length :]
        self.buffer = b""
        self.started = True
        inner = innermost(self.wrappedProtocol)
        if isinstance(inner, HTTPProtocol) and header.source is not None:
            inner.proxy_source = str(header.source)
        self.wrappedProtocol.makeConnection(self.transport)
        if rest:
            self.wrappedProtocol.dataReceived(rest)

    def _give_up(self, reason: str) -> None:
        peer = cast(Transport, self.transport).getPeer()
        log.info(
            "PROXY header rejected from %s: %s", getattr(peer, "host", "?"), reason
        )
        cast(Transport, self.transport).abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        if self.started:
            self.wrappedProtocol.connectionLost(reason)


class ProxyProtocolFactory(Factory):
    def __init__(self, wrapped: Any, clock: Any, timeout: float) -> None:
        self.wrappedFactory = wrapped
        self.clock = clock
        self.timeout = timeout

    def buildProtocol(self, addr: Any) -> Any:
        inner = self.wrappedFactory.buildProtocol(addr)
        if inner is None:
            return None
        return ProxyProtocolWrapper(inner, self.clock, self.timeout)
