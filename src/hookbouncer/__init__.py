"""hookbouncer: prove a webhook really comes from Copyleaks before acting on it."""

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet
from hookbouncer.config import Config, load_config
from hookbouncer.errors import (
    BodyTooLarge,
    ConfigError,
    FeedError,
    HookbouncerError,
    InboxUnavailable,
    KeyringError,
    MalformedBody,
    RequestError,
)
from hookbouncer.policy import (
    ConnectionFacts,
    Decision,
    Failure,
    Reason,
    Verdict,
    Verifier,
    check_startup,
)
from hookbouncer.routes import MethodNotAllowed, NotFound, RouteMatch, match_route
from hookbouncer.submission import submission_properties, webhook_urls
from hookbouncer.tokens import KeyRing, OpenedToken, TokenError
from hookbouncer.trust import TrustSnapshot

__all__ = [
    "Allowlist",
    "BodyTooLarge",
    "Config",
    "ConfigError",
    "ConnectionFacts",
    "Decision",
    "Failure",
    "FeedError",
    "HookbouncerError",
    "InboxUnavailable",
    "KeyRing",
    "KeyringError",
    "MalformedBody",
    "MethodNotAllowed",
    "NotFound",
    "OpenedToken",
    "PinSet",
    "Reason",
    "RequestError",
    "RouteMatch",
    "TokenError",
    "TrustSnapshot",
    "Verdict",
    "Verifier",
    "check_startup",
    "load_config",
    "match_route",
    "submission_properties",
    "webhook_urls",
]
