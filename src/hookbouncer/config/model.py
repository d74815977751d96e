"""The frozen configuration objects and the `Secret` wrapper.

Defaults here are the product's defaults; `hookbouncer.config.loader`
fills these objects from TOML and the environment and validates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

RouteClass = Literal["status", "new_result", "export"]
ROUTE_CLASSES: tuple[RouteClass, ...] = ("status", "new_result", "export")

Check = Literal["source_ip", "client_certificate", "developer_payload", "header_secret"]
CHECKS: tuple[Check, ...] = (
    "source_ip",
    "client_certificate",
    "developer_payload",
    "header_secret",
)


class Secret:
    """A secret value as bytes; its repr and str never show the value."""

    __slots__ = ("_value", "origin")

    def __init__(self, value: bytes, origin: str) -> None:
        self._value = value
        self.origin = origin

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(origin={self.origin!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return NotImplemented

    __hash__ = object.__hash__


@dataclass(frozen=True)
class ServerConfig:
    mode: Literal["tls", "plain"] = "tls"
    listen: tuple[str, ...] = ("0.0.0.0:8443", "[::]:8443")
    certificate: Path | None = None
    private_key: Path | None = None
    client_certificate: Literal["off", "request", "require"] = "require"
    expired_certificate: Literal["accept", "warn", "reject"] = "warn"
    trusted_proxies: tuple[str, ...] = ()
    proxy_protocol: bool = False
    forwarded_certificate: Literal["off", "nginx", "haproxy", "envoy"] = "off"
    forwarded_certificate_header: str = ""
    prefix: str = "/copyleaks"
    max_body_bytes: int = 16 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    idle_timeout: float = 75.0


@dataclass(frozen=True)
class AdminConfig:
    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True)
class LoginConfig:
    email: str
    api_key: Secret
    url: str = "https://id.copyleaks.com/v3/account/login/api"


@dataclass(frozen=True)
class FeedsConfig:
    api_base: str = "https://api.copyleaks.com"
    ips_path: str = "/v1/security/servers/ips"
    certificates_path: str = "/v2/security/client-certificates"
    ca_bundle: Path | None = None
    refresh_every: float = 24 * 3600.0
    refresh_jitter: float = 3600.0
    stale_after: float = 48 * 3600.0
    fail_closed_after: float | None = None
    early_refresh_interval: float = 300.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_response_bytes: int = 16 * 1024 * 1024
    follow_redirects: bool = False
    retries: int = 3
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    min_prefix_ipv4: int = 16
    min_prefix_ipv6: int = 32
    history: int = 10
    extra_ranges: tuple[str, ...] = ()
    extra_thumbprints: tuple[str, ...] = ()
    login: LoginConfig | None = None


@dataclass(frozen=True)
class RouteConfig:
    checks: tuple[Check, ...]


@dataclass(frozen=True)
class DeveloperPayloadConfig:
    mode: Literal["plain", "sealed"] = "sealed"
    secrets: tuple[Secret, ...] = ()
    keys_file: Path | None = None
    max_age: float = 30 * 24 * 3600.0


@dataclass(frozen=True)
class HeaderSecretConfig:
    name: str = "Authorization"
    scheme: str = "Bearer"
    secrets: tuple[Secret, ...] = ()


@dataclass(frozen=True)
class InboxConfig:
    url: str = ""
    synchronous: Literal["full", "normal"] = "full"
    max_rejections: int = 100_000


@dataclass(frozen=True)
class RelayConfig:
    url: str | None = None
    signing_secret: Secret | None = None
    max_attempts: int = 10
    timeout: float = 10.0
    backoff_initial: float = 5.0
    backoff_max: float = 3600.0
    ca_bundle: Path | None = None


def default_routes() -> dict[RouteClass, RouteConfig]:
    base: tuple[Check, ...] = ("source_ip", "client_certificate", "developer_payload")
    return {
        "status": RouteConfig(base),
        "new_result": RouteConfig(base),
        "export": RouteConfig(("source_ip", "client_certificate", "header_secret")),
    }


@dataclass(frozen=True)
class Config:
    state_dir: Path = Path("/var/lib/hookbouncer")
    log_level: str = "INFO"
    server: ServerConfig = field(default_factory=ServerConfig)
    admin: AdminConfig = field(default_factory=AdminConfig)
    feeds: FeedsConfig = field(default_factory=FeedsConfig)
    routes: Mapping[RouteClass, RouteConfig] = field(default_factory=default_routes)
    developer_payload: DeveloperPayloadConfig = field(
        default_factory=DeveloperPayloadConfig
    )
    header_secret: HeaderSecretConfig = field(default_factory=HeaderSecretConfig)
    inbox: InboxConfig = field(default_factory=InboxConfig)
    relay: RelayConfig = field(default_factory=RelayConfig)
    source: str = "<defaults>"

    @property
    def inbox_url(self) -> str:
        """The inbox URL, defaulting to SQLite in the state directory."""
        return self.inbox.url or f"sqlite:///{self.state_dir / 'inbox.db'}"

    def checks_in_use(self) -> set[Check]:
        return {check for route in self.routes.values() for check in route.checks}
