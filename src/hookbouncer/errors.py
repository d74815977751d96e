"""Exceptions, in two registers.

Operator errors (`ConfigError`, `FeedError`, `KeyringError`) name the value,
where it came from and the fix, because an operator reads them. Errors about
an untrusted request (`RequestError` and its subclasses) carry the HTTP status
to answer and a short reason code for logs; their text never goes back to
the caller.
"""

from __future__ import annotations


class HookbouncerError(Exception):
    """Root of every exception that hookbouncer raises on purpose."""


class ConfigError(HookbouncerError):
    """A configuration value is missing or invalid; startup must stop."""


class FeedError(HookbouncerError):
    """A security feed could not be fetched, parsed or validated."""


class KeyringError(HookbouncerError):
    """A developerPayload key ring is missing, unreadable or invalid."""


class InboxUnavailable(HookbouncerError):
    """The inbox could not record a webhook; the sender should retry (503)."""

    status = 503


class RequestError(HookbouncerError):
    """An untrusted request is malformed; answer `status`, log `reason`."""

    status = 400

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MalformedBody(RequestError):
    """The body is not one JSON object of the expected shape (400)."""


class BodyTooLarge(RequestError):
    """The body is longer than `max_body_bytes` (413)."""

    status = 413
