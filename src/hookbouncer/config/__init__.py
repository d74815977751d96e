"""Configuration: one TOML file, every value overridable by environment.

See `loader` for the rules and docs/configuration.md for every key.
"""

from hookbouncer.config.fields import parse_duration
from hookbouncer.config.loader import (
    ENV_PREFIX,
    load_config,
    parse_listen_address,
    validate_trusted_proxy,
    validate_trusted_union,
)
from hookbouncer.config.model import (
    CHECKS,
    ROUTE_CLASSES,
    AdminConfig,
    Check,
    Config,
    DeveloperPayloadConfig,
    FeedsConfig,
    HeaderSecretConfig,
    InboxConfig,
    LoginConfig,
    RelayConfig,
    RouteClass,
    RouteConfig,
    Secret,
    ServerConfig,
)

__all__ = [
    "CHECKS",
    "ENV_PREFIX",
    "ROUTE_CLASSES",
    "AdminConfig",
    "Check",
    "Config",
    "DeveloperPayloadConfig",
    "FeedsConfig",
    "HeaderSecretConfig",
    "InboxConfig",
    "LoginConfig",
    "RelayConfig",
    "RouteClass",
    "RouteConfig",
    "Secret",
    "ServerConfig",
    "load_config",
    "parse_duration",
    "parse_listen_address",
    "validate_trusted_proxy",
    "validate_trusted_union",
]
