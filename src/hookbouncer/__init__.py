"""hookbouncer: prove a webhook really comes from Copyleaks before acting on it."""

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

__all__ = [
    "BodyTooLarge",
    "Config",
    "ConfigError",
    "FeedError",
    "HookbouncerError",
    "InboxUnavailable",
    "KeyringError",
    "MalformedBody",
    "RequestError",
    "load_config",
]
