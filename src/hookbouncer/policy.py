"""Policy: run each route's configured checks and decide.

Every check listed for a route must pass; a check left out of the list is
the only way to skip it. The decision lists every failed check with a
typed reason for logs, metrics and the rejection record. The caller only
gets the status code. The policy does no I/O: trust comes from a
snapshot function, time from an injectable clock.

Checks run in two steps so the gateway can reject before reading a body:
`check_connection` (source_ip, client_certificate) and `check_body`
(developer_payload, header_secret).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from hookbouncer.addresses import (
    AddressError,
    IPAddress,
    client_address,
    parse_address,
)
from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import (
    CertificateError,
    forwarded_certificate,
    validity_at,
)
from hookbouncer.config import (
    CHECKS,
    Check,
    Config,
    validate_trusted_proxy,
    validate_trusted_union,
)
from hookbouncer.errors import ConfigError, MalformedBody
from hookbouncer.payload import developer_payload, parse_body
from hookbouncer.routes import RouteMatch
from hookbouncer.secretmatch import HeaderSecretError, SecretMatcher, header_credential
from hookbouncer.tokens import TokenError, TokenOpener
from hookbouncer.trust import TrustSnapshot

Headers = Sequence[tuple[str, str]]


class Reason(StrEnum):
    """Reason code for a failed check, or for a warning on a passed one."""

    # source_ip
    ADDRESS_INVALID = "address_invalid"
    FORWARDED_INVALID = "forwarded_invalid"
    UNKNOWN_HOP = "unknown_hop"
    RANGES_NOT_LOADED = "ranges_not_loaded"
    NOT_IN_ALLOWLIST = "not_in_allowlist"
    # source_ip and client_certificate
    FEEDS_FAIL_CLOSED = "feeds_fail_closed"
    # client_certificate
    CERTIFICATE_MISSING = "certificate_missing"
    CERTIFICATE_INVALID = "certificate_invalid"
    CERTIFICATE_HEADER_INVALID = "certificate_header_invalid"
    PINS_NOT_LOADED = "pins_not_loaded"
    CERTIFICATE_NOT_PINNED = "certificate_not_pinned"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
    # developer_payload
    PAYLOAD_MISSING = "payload_missing"
    PAYLOAD_MISMATCH = "payload_mismatch"
    TOKEN_MALFORMED = "token_malformed"  # noqa: S105
    TOKEN_UNKNOWN_KEY = "token_unknown_key"  # noqa: S105
    TOKEN_TAMPERED = "token_tampered"  # noqa: S105
    TOKEN_WRONG_SCAN = "token_wrong_scan"  # noqa: S105
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    TOKEN_FUTURE = "token_future"  # noqa: S105
    # header_secret
    HEADER_MISSING = "header_missing"
    HEADER_REPEATED = "header_repeated"
    HEADER_SCHEME = "header_scheme"
    HEADER_MISMATCH = "header_mismatch"
    # a malformed body on a request that had already failed
    BODY_MALFORMED = "body_malformed"


_ADDRESS_REASONS = {
    "invalid_address": Reason.ADDRESS_INVALID,
    "invalid_forwarded": Reason.FORWARDED_INVALID,
    "unknown_hop": Reason.UNKNOWN_HOP,
}
_REFRESH_REASONS = {Reason.NOT_IN_ALLOWLIST, Reason.CERTIFICATE_NOT_PINNED}


# Failures that say the lists are not usable yet, not that the request is
# forged: the gateway answers 503 so that Copyleaks retries later.
_UNAVAILABLE_REASONS = frozenset(
    {Reason.RANGES_NOT_LOADED, Reason.PINS_NOT_LOADED, Reason.FEEDS_FAIL_CLOSED}
)


def _only_lists_unavailable(failures: tuple[Failure, ...]) -> bool:
    return bool(failures) and all(
        failure.reason in _UNAVAILABLE_REASONS for failure in failures
    )


def _only_list_misses(failures: tuple[Failure, ...]) -> bool:
    return bool(failures) and all(
        failure.reason in _REFRESH_REASONS for failure in failures
    )


@dataclass(frozen=True)
class Failure:
    """One failed check (or warning) with its reason."""

    check: str
    reason: Reason


@dataclass(frozen=True)
class ConnectionFacts:
    """Facts about a request that are known before its body is read.

    `headers` are (lowercase name, Latin-1 value) pairs in arrival order.
    `certificate_der` is the leaf certificate from the TLS handshake, None
    on plain HTTP. `proxy_source` is the client address from a PROXY
    protocol header; when set it replaces the socket peer.
    """

    peer: str
    headers: Headers
    certificate_der: bytes | None
    proxy_source: str | None = None


@dataclass(frozen=True)
class Verdict:
    """The outcome of `check_connection`, handed on to `check_body`."""

    route: RouteMatch
    client_address: IPAddress | None
    thumbprint: str | None = None
    failures: tuple[Failure, ...] = ()
    warnings: tuple[Failure, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def needs_feed_refresh(self) -> bool:
        """Whether a newer feed could fix every failure, as on `Decision`."""
        return _only_list_misses(self.failures)

    @property
    def lists_unavailable(self) -> bool:
        """True when every failure is a list not loaded or past fail_closed_after."""
        return _only_lists_unavailable(self.failures)


@dataclass(frozen=True)
class Decision:
    """The final outcome for one request.

    `failures` and `warnings` are for logs, metrics and the rejection
    record, never for the caller. `context` is the opened sealed token's
    context. `needs_feed_refresh` is True when every failure is an address
    or certificate missing from the lists, which a newer feed could fix.
    """

    accepted: bool
    status: int
    route: RouteMatch
    client_address: IPAddress | None
    thumbprint: str | None
    context: str | None
    failures: tuple[Failure, ...] = ()
    warnings: tuple[Failure, ...] = field(default=())

    @property
    def event(self) -> str:
        return self.route.event

    @property
    def scan_id(self) -> str | None:
        return self.route.scan_id

    @property
    def needs_feed_refresh(self) -> bool:
        return _only_list_misses(self.failures)


def check_startup(
    config: Config, keyring: TokenOpener | None, *, tls: bool | None = None
) -> None:
    """Raise `ConfigError` if a configured check cannot work.

    `tls` is whether the listener receives the TLS client certificate,
    and defaults to `server.mode == "tls"`. Framework middleware behind
    another server passes its own value. The config loader already checked the
    gateway's own listener.
    """
    in_use = config.checks_in_use()
    server = config.server
    listener_tls = server.mode == "tls" if tls is None else tls
    if (
        "client_certificate" in in_use
        and not listener_tls
        and server.forwarded_certificate == "off"
    ):
        raise ConfigError(
            f"{config.source}: server.forwarded_certificate = 'off' is invalid"
            " for a listener without TLS: a route checks client_certificate, so"
            " set the TLS terminator's format (nginx, haproxy or envoy) or drop"
            " the check"
        )
    payload = config.developer_payload
    if "developer_payload" in in_use and payload.mode == "sealed" and keyring is None:
        raise ConfigError(
            f"{config.source}: developer_payload.mode = 'sealed' needs a key ring,"
            " but none was loaded: set developer_payload.keys_file"
        )


class Verifier:
    """Run the configured checks for each request."""

    def __init__(
        self,
        config: Config,
        trust: Callable[[], TrustSnapshot],
        keyring: TokenOpener | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        check_startup(config, keyring)
        self._config = config
        self._trust = trust
        self._keyring = keyring
        self._clock = clock
        for entry in config.server.trusted_proxies:
            validate_trusted_proxy(entry, config.source)
        validate_trusted_union(config.server.trusted_proxies, config.source)
        self._trusted_proxies = Allowlist(
            ipaddress.ip_network(entry) for entry in config.server.trusted_proxies
        )
        self._payload_secrets = SecretMatcher(config.developer_payload.secrets)
        self._header_secrets = SecretMatcher(config.header_secret.secrets)

    def _checks(self, route: RouteMatch) -> tuple[Check, ...]:
        configured = self._config.routes.get(route.route_class)
        # The loader fills every route class; a hand-built Config that
        # leaves one out gets every check, never none.
        return CHECKS if configured is None else configured.checks

    def _is_trusted_proxy(self, address: IPAddress) -> bool:
        return address in self._trusted_proxies

    def _effective_peer(self, facts: ConnectionFacts) -> str:
        """Return the PROXY protocol source if a trusted proxy sent it, else the peer.

        Anyone who reaches the port can write a PROXY header, so, as with
        forwarding headers, only a trusted proxy's header is believed.
        """
        if facts.proxy_source is None:
            return facts.peer
        try:
            socket_peer = parse_address(facts.peer)
        except AddressError:
            return facts.peer
        if self._is_trusted_proxy(socket_peer):
            return facts.proxy_source
        return facts.peer

    # -- connection --

    def check_connection(self, route: RouteMatch, facts: ConnectionFacts) -> Verdict:
        """Run source_ip and client_certificate, as far as the route lists them."""
        checks = self._checks(route)
        snapshot = self._trust()
        failures: list[Failure] = []
        warnings: list[Failure] = []
        peer = self._effective_peer(facts)

        address: IPAddress | None = None
        try:
            address = client_address(peer, facts.headers, self._is_trusted_proxy)
        except AddressError as error:
            if "source_ip" in checks:
                failures.append(
                    Failure(
                        "source_ip",
                        _ADDRESS_REASONS.get(error.reason, Reason.ADDRESS_INVALID),
                    )
                )
        if "source_ip" in checks and address is not None:
            reason = self._source_ip_reason(address, snapshot)
            if reason is not None:
                failures.append(Failure("source_ip", reason))

        thumbprint: str | None = None
        if "client_certificate" in checks:
            thumbprint, failure, warning = self._check_certificate(
                peer, facts, snapshot
            )
            failures.extend(failure)
            warnings.extend(warning)
        return Verdict(route, address, thumbprint, tuple(failures), tuple(warnings))

    def _source_ip_reason(
        self, address: IPAddress, snapshot: TrustSnapshot
    ) -> Reason | None:
        if snapshot.fail_closed:
            return Reason.FEEDS_FAIL_CLOSED
        if not snapshot.ranges_loaded:
            return Reason.RANGES_NOT_LOADED
        if address not in snapshot.allowlist:
            return Reason.NOT_IN_ALLOWLIST
        return None

    def _check_certificate(
        self, peer: str, facts: ConnectionFacts, snapshot: TrustSnapshot
    ) -> tuple[str | None, list[Failure], list[Failure]]:
        def fail(reason: Reason) -> tuple[None, list[Failure], list[Failure]]:
            return None, [Failure("client_certificate", reason)], []

        try:
            der = self._certificate_der(peer, facts)
        except CertificateError:
            return fail(Reason.CERTIFICATE_HEADER_INVALID)
        if der is None:
            return fail(Reason.CERTIFICATE_MISSING)
        try:
            # Parses the certificate (cached per DER) and checks its dates
            # before any pin is looked at, so a malformed one is "invalid".
            dates = validity_at(der, self._clock())
        except CertificateError:
            return fail(Reason.CERTIFICATE_INVALID)
        if snapshot.fail_closed:
            return fail(Reason.FEEDS_FAIL_CLOSED)
        if not snapshot.pins_loaded:
            return fail(Reason.PINS_NOT_LOADED)
        thumbprint = snapshot.pins.matches(der)
        if thumbprint is None:
            return fail(Reason.CERTIFICATE_NOT_PINNED)
        if dates is None:
            return thumbprint, [], []
        reason = (
            Reason.CERTIFICATE_EXPIRED
            if dates == "expired"
            else Reason.CERTIFICATE_NOT_YET_VALID
        )
        setting = self._config.server.expired_certificate
        if setting == "reject":
            return None, [Failure("client_certificate", reason)], []
        if setting == "warn":
            return thumbprint, [], [Failure("client_certificate", reason)]
        return thumbprint, [], []

    def _certificate_der(self, peer: str, facts: ConnectionFacts) -> bytes | None:
        """Pick the handshake certificate, or a trusted terminator's header."""
        server = self._config.server
        if server.forwarded_certificate == "off":
            return facts.certificate_der
        try:
            peer_address = parse_address(peer)
        except AddressError:
            return facts.certificate_der
        if not self._is_trusted_proxy(peer_address):
            return facts.certificate_der
        return forwarded_certificate(
            server.forwarded_certificate,
            server.forwarded_certificate_header,
            facts.headers,
        )

    # -- body --

    def check_body(self, verdict: Verdict, headers: Headers, body: bytes) -> Decision:
        """Parse the body and run developer_payload and header_secret.

        Raise `MalformedBody` (400) for a malformed body, but only when the
        connection checks passed. A request that already failed gets 403
        with `body_malformed` recorded, so a forger learns nothing more.
        """
        checks = self._checks(verdict.route)
        failures = list(verdict.failures)
        context: str | None = None
        try:
            document = parse_body(body, max_bytes=self._config.server.max_body_bytes)
            # A non-string developerPayload is malformed on every route,
            # checked or not, so the application never receives one.
            payload = developer_payload(document)
        except MalformedBody:
            if verdict.passed:
                raise
            failures.append(Failure("body", Reason.BODY_MALFORMED))
            return self._decide(verdict, failures, None)

        if "developer_payload" in checks:
            reason, context = self._check_payload(payload, verdict.route)
            if reason is not None:
                failures.append(Failure("developer_payload", reason))
        if "header_secret" in checks:
            reason = self._check_header_secret(headers)
            if reason is not None:
                failures.append(Failure("header_secret", reason))
        return self._decide(verdict, failures, context)

    def verify(
        self, route: RouteMatch, facts: ConnectionFacts, body: bytes
    ) -> Decision:
        """Run every check for one request; raise `MalformedBody` as `check_body`."""
        return self.check_body(self.check_connection(route, facts), facts.headers, body)

    def _check_payload(
        self, payload: str | None, route: RouteMatch
    ) -> tuple[Reason | None, str | None]:
        if payload is None:
            return Reason.PAYLOAD_MISSING, None
        settings = self._config.developer_payload
        if settings.mode == "plain":
            if self._payload_secrets.matches(payload):
                return None, None
            return Reason.PAYLOAD_MISMATCH, None
        assert self._keyring is not None
        try:
            opened = self._keyring.open(
                payload,
                route.subject_id,
                now=self._clock(),
                max_age=settings.max_age,
            )
        except TokenError as error:
            return Reason(error.reason), None
        return None, opened.context

    def _check_header_secret(self, headers: Headers) -> Reason | None:
        settings = self._config.header_secret
        try:
            credential = header_credential(headers, settings.name, settings.scheme)
        except HeaderSecretError as error:
            return Reason(error.reason)
        if self._header_secrets.matches(credential):
            return None
        return Reason.HEADER_MISMATCH

    def _decide(
        self, verdict: Verdict, failures: list[Failure], context: str | None
    ) -> Decision:
        accepted = not failures
        if accepted:
            status = 200
        elif _only_lists_unavailable(tuple(failures)):
            status = 503
        else:
            status = 403
        return Decision(
            accepted=accepted,
            status=status,
            route=verdict.route,
            client_address=verdict.client_address,
            thumbprint=verdict.thumbprint,
            context=context if accepted else None,
            failures=tuple(failures),
            warnings=verdict.warnings,
        )


__all__ = [
    "ConnectionFacts",
    "Decision",
    "Failure",
    "Reason",
    "Verdict",
    "Verifier",
    "check_startup",
]
