"""The gateway as one object: listeners, thread pool, admin, graceful stop.

`Gateway` owns the listening ports and the thread pool that runs body
checks and inbox commits. It does not own the feeds, the inbox or the
relay: `serve` builds those, passes them in and stops them after the
gateway has drained.

Stopping: listeners close first, idle keep-alive connections close at
once, requests in flight get their response with `Connection: close`, and
whatever is still open after `grace` seconds is aborted.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet import defer, task

from hookbouncer.config import Config
from hookbouncer.gateway import metrics
from hookbouncer.gateway.admin import AdminApplication, Readiness
from hookbouncer.gateway.app import WebhookApplication
from hookbouncer.gateway.http import HTTPProtocol, Limits
from hookbouncer.gateway.listeners import HTTPFactory, bind, bound_address, listen
from hookbouncer.gateway.pool import WorkerPool
from hookbouncer.gateway.tls import ServerConnectionCreator, build_context
from hookbouncer.inbox import Inbox
from hookbouncer.policy import Verifier

log = logging.getLogger("hookbouncer.gateway")

# Threads for blocking work: rejection records, readiness probes, and the
# checks and commit of a body over `app.REACTOR_BODY_BYTES` (or of every
# body when the inbox has no `record_accepted_later`). Commits block until
# durable, and concurrent ones share a group commit, so more threads than
# cores turn into larger batches rather than more CPU.
POOL_THREADS = 16

ADMIN_LIMITS = Limits(
    max_body_bytes=1024, header_timeout=5.0, body_timeout=5.0, idle_timeout=30.0
)


class Gateway:
    def __init__(
        self,
        config: Config,
        *,
        verifier: Verifier,
        inbox: Inbox,
        readiness: Callable[[], Readiness],
        request_early_refresh: Callable[[], object],
        reactor: Any,
        on_accepted: Callable[[], object] = lambda: None,
    ) -> None:
        self.config = config
        self.reactor = reactor
        self.pool = WorkerPool(reactor, POOL_THREADS)
        server = config.server
        self.limits = Limits(
            max_body_bytes=server.max_body_bytes,
            header_timeout=server.header_timeout,
            body_timeout=server.body_timeout,
            idle_timeout=server.idle_timeout,
            linger=min(2.0, server.body_timeout),
        )
        self.application = WebhookApplication(
            config,
            verifier,
            inbox,
            self.pool,
            reactor,
            request_early_refresh,
            on_accepted,
        )
        self.admin = AdminApplication(readiness, self.pool, reactor)
        self.factory = HTTPFactory(self._build_webhook_protocol)
        self.admin_factory = HTTPFactory(self._build_admin_protocol)
        self.ports: list[Any] = []
        self.admin_ports: list[Any] = []
        self.addresses: list[str] = []
        self.admin_address: str | None = None
        self.tls: ServerConnectionCreator | None = None
        if server.mode == "tls":
            assert server.certificate is not None and server.private_key is not None
            context = build_context(
                server.certificate, server.private_key, server.client_certificate
            )
            self.tls = ServerConnectionCreator(context)

    def _build_webhook_protocol(self) -> HTTPProtocol:
        kind = "tls" if self.tls is not None else "plain"
        metrics.TLS_CONNECTIONS.labels(listener=kind).inc()
        return HTTPProtocol(self.application, self.limits, self.reactor)

    def _build_admin_protocol(self) -> HTTPProtocol:
        return HTTPProtocol(self.admin, ADMIN_LIMITS, self.reactor)

    def start(
        self,
        bound: Mapping[str, socket.socket] | None = None,
        *,
        admin: bool = True,
    ) -> None:
        """Start the pool and every listener; raise OSError when one fails.

        `bound` maps listen entries to sockets bound beforehand (by the
        parent of worker processes); other entries are bound here. With
        `admin` False the admin listener is left to another process.
        """
        server = self.config.server
        scheme = "https" if self.tls is not None else "http"
        for address in server.listen:
            port = self._serve(
                address,
                bound,
                self.factory,
                tls=self.tls,
                proxy_protocol=server.proxy_protocol,
                proxy_timeout=server.header_timeout,
            )
            self.ports.append(port)
            self.addresses.append(bound_address(port))
            log.info(
                "listening on %s://%s",
                scheme,
                self.addresses[-1],
                extra={"address": self.addresses[-1], "pid": os.getpid()},
            )
        if admin and self.config.admin.listen:
            port = self._serve(
                self.config.admin.listen,
                bound,
                self.admin_factory,
                tls=None,
                proxy_protocol=False,
                proxy_timeout=0.0,
            )
            self.admin_ports.append(port)
            self.admin_address = bound_address(port)
            log.info(
                "admin listening on http://%s",
                self.admin_address,
                extra={"address": self.admin_address},
            )

    def _serve(
        self,
        address: str,
        bound: Mapping[str, socket.socket] | None,
        factory: HTTPFactory,
        **options: Any,
    ) -> Any:
        if bound is not None and address in bound:
            return listen(self.reactor, bound[address], factory, **options)
        sock = bind(address)
        try:
            return listen(self.reactor, sock, factory, **options)
        finally:
            sock.close()

    @defer.inlineCallbacks
    def stop(self, grace: float = 10.0) -> Any:
        """Stop listening, drain connections for up to `grace` seconds."""
        log.info("draining: no new connections, finishing requests in flight")
        for port in self.ports:
            yield port.stopListening()
        for protocol in list(self.factory.open):
            protocol.drain()
        waited = 0.0
        step = 0.05
        while self.factory.open and waited < grace:
            yield task.deferLater(self.reactor, step, lambda: None)
            waited += step
        for protocol in list(self.factory.open):
            protocol.io.abortConnection()
        for port in self.admin_ports:
            yield port.stopListening()
        for protocol in list(self.admin_factory.open):
            protocol.io.abortConnection()
        self.pool.stop()
