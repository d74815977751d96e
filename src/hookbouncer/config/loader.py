"""Load the configuration: one TOML file, every value overridable by environment.

`load_config` reads the file, applies `HOOKBOUNCER_…` environment
overrides, validates every value and returns a frozen `Config`. Any problem
raises `ConfigError` naming the key, the value and the fix, so startup stops
before anything listens. Secrets are never written in the TOML file itself:
they come from files (`*_file`) or environment variables (`*_env`) and are
held as `Secret`, whose repr hides the value.

Environment overrides use `__` between nesting levels, for example
`HOOKBOUNCER_SERVER__MAX_BODY_BYTES=1048576` or
`HOOKBOUNCER_ROUTES__STATUS__CHECKS='["source_ip"]'`. The value is read as
a TOML value when it parses as one, and as a plain string otherwise.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from hookbouncer.config.fields import MISSING, TableReader
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
    ServerConfig,
    default_routes,
)
from hookbouncer.errors import ConfigError

ENV_PREFIX = "HOOKBOUNCER_"


def load_config(
    path: str | os.PathLike[str] | None,
    environ: Mapping[str, str] | None = None,
    *,
    gateway: bool = True,
) -> Config:
    """Read, override from the environment, validate and return the config.

    `gateway=False` drops the requirements that only the gateway has (a
    server certificate, a secret for each configured check, a signing
    secret for the relay URL), so `sync` and `status` run from a
    feeds-only config. Values that are present are still validated.
    """
    environ = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(
                f"config file {source!r} not found: pass an existing file with --config"
            ) from None
        except OSError as error:
            raise ConfigError(
                f"config file {source!r} cannot be read: {error.strerror}"
            ) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"config file {source!r} is not valid TOML: {error}"
            ) from None
    overrides = _apply_environment(raw, environ)
    base_dir = Path(source).resolve().parent if path is not None else Path.cwd()
    reader = _Reader(raw, source, base_dir, environ)
    reader.overrides = overrides
    return reader.config(gateway=gateway)


def _apply_environment(
    raw: dict[str, Any], environ: Mapping[str, str]
) -> dict[str, str]:
    """Merge `HOOKBOUNCER_…` overrides into `raw`; return key -> variable."""
    overrides: dict[str, str] = {}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        if not all(keys):
            raise ConfigError(f"environment variable {name} has an empty key part")
        try:
            value: Any = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        table = raw
        for key in keys[:-1]:
            child = table.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {name} overrides {key!r},"
                    " which is not a table"
                )
            table = child
        table[keys[-1]] = value
        overrides[".".join(keys)] = name
    return overrides


class _Reader(TableReader):
    """Reads each section of the config into its frozen object."""

    # -- sections --

    def config(self, *, gateway: bool) -> Config:
        known_top = {
            "state_dir",
            "log_level",
            "server",
            "admin",
            "feeds",
            "routes",
            "developer_payload",
            "header_secret",
            "inbox",
            "relay",
        }
        self.check_keys("", self.raw, known_top)
        state_dir = self.path(self.raw, "state_dir", "state_dir") or Config.state_dir
        log_level = self.choice(
            self.raw,
            "log_level",
            "log_level",
            "INFO",
            ("DEBUG", "INFO", "WARNING", "ERROR"),
        )
        config = Config(
            state_dir=state_dir,
            log_level=log_level,
            server=self.server(),
            admin=self.admin(),
            feeds=self.feeds(),
            routes=self.routes(),
            developer_payload=self.developer_payload(),
            header_secret=self.header_secret(),
            inbox=self.inbox(),
            relay=self.relay(),
            source=self.source,
        )
        admin = config.admin.listen
        if admin and not admin.endswith(":0") and admin in config.server.listen:
            raise self.fail(
                "admin.listen",
                admin,
                "it is also in server.listen: give the admin endpoints their own"
                " address",
            )
        if gateway:
            self.cross_check(config)
        return config

    def server(self) -> ServerConfig:
        d = ServerConfig()
        t = self.table("server", set(ServerConfig.__dataclass_fields__))
        listen = self.strings(t, "listen", "server.listen", d.listen)
        if not listen:
            raise self.fail("server.listen", [], "list at least one HOST:PORT")
        # Port 0 requests any free port, so it may appear more than once.
        fixed = [address for address in listen if not address.endswith(":0")]
        if len(set(fixed)) != len(fixed):
            raise self.fail("server.listen", list(listen), "list each address once")
        for address in listen:
            parse_listen_address(address, "server.listen", self.origin("server.listen"))
        trusted = self.strings(t, "trusted_proxies", "server.trusted_proxies", ())
        origin = self.origin("server.trusted_proxies")
        for entry in trusted:
            validate_trusted_proxy(entry, origin)
        validate_trusted_union(trusted, origin)
        prefix = self.text(t, "prefix", "server.prefix", d.prefix)
        if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)*", prefix):
            raise self.fail(
                "server.prefix", prefix, 'use a path such as "/copyleaks" or ""'
            )
        return ServerConfig(
            mode=cast(
                Any, self.choice(t, "mode", "server.mode", d.mode, ("tls", "plain"))
            ),
            listen=listen,
            certificate=self.path(t, "certificate", "server.certificate"),
            private_key=self.path(t, "private_key", "server.private_key"),
            client_certificate=cast(
                Any,
                self.choice(
                    t,
                    "client_certificate",
                    "server.client_certificate",
                    d.client_certificate,
                    ("off", "request", "require"),
                ),
            ),
            expired_certificate=cast(
                Any,
                self.choice(
                    t,
                    "expired_certificate",
                    "server.expired_certificate",
                    d.expired_certificate,
                    ("accept", "warn", "reject"),
                ),
            ),
            trusted_proxies=trusted,
            proxy_protocol=self.boolean(
                t, "proxy_protocol", "server.proxy_protocol", False
            ),
            forwarded_certificate=cast(
                Any,
                self.choice(
                    t,
                    "forwarded_certificate",
                    "server.forwarded_certificate",
                    d.forwarded_certificate,
                    ("off", "nginx", "haproxy", "envoy"),
                ),
            ),
            forwarded_certificate_header=self.text(
                t,
                "forwarded_certificate_header",
                "server.forwarded_certificate_header",
                "",
            ).lower(),
            prefix=prefix,
            max_body_bytes=self.integer(
                t, "max_body_bytes", "server.max_body_bytes", d.max_body_bytes, 1024
            ),
            header_timeout=self.required_duration(
                t, "header_timeout", "server.header_timeout", d.header_timeout, 0.1
            ),
            body_timeout=self.required_duration(
                t, "body_timeout", "server.body_timeout", d.body_timeout, 0.1
            ),
            idle_timeout=self.required_duration(
                t, "idle_timeout", "server.idle_timeout", d.idle_timeout, 0.1
            ),
        )

    def admin(self) -> AdminConfig:
        t = self.table("admin", {"listen"})
        listen = self.text(t, "listen", "admin.listen", AdminConfig.listen)
        if listen:
            parse_listen_address(listen, "admin.listen", self.source)
        return AdminConfig(listen=listen)

    def feeds(self) -> FeedsConfig:
        d = FeedsConfig()
        t = self.table("feeds", set(FeedsConfig.__dataclass_fields__))
        login_table = t.get("login")
        login = None
        if login_table is not None:
            if not isinstance(login_table, dict):
                raise self.fail("feeds.login", login_table, "it must be a table")
            self.check_keys(
                "feeds.login",
                login_table,
                {"email", "api_key_file", "api_key_env", "api_key", "url"},
            )
            email = self.text(login_table, "email", "feeds.login.email", "")
            if "@" not in email:
                raise self.fail("feeds.login.email", email, "use the account's email")
            key = self.one_secret(login_table, "api_key", "feeds.login")
            if key is None:
                raise self.fail(
                    "feeds.login.api_key_file",
                    MISSING,
                    "set api_key_file or api_key_env",
                )
            login = LoginConfig(
                email=email,
                api_key=key,
                url=self.https_url(
                    login_table, "url", "feeds.login.url", LoginConfig.url
                ),
            )
        fail_closed_after = self.duration(
            t, "fail_closed_after", "feeds.fail_closed_after", None, 60.0
        )
        stale_after = self.required_duration(
            t, "stale_after", "feeds.stale_after", d.stale_after, 60.0
        )
        if fail_closed_after is not None and fail_closed_after < stale_after:
            raise self.fail(
                "feeds.fail_closed_after",
                t.get("fail_closed_after"),
                "it must be at least feeds.stale_after",
            )
        refresh_every = self.required_duration(
            t, "refresh_every", "feeds.refresh_every", d.refresh_every, 60.0
        )
        refresh_jitter = self.required_duration(
            t, "refresh_jitter", "feeds.refresh_jitter", d.refresh_jitter
        )
        if (
            fail_closed_after is not None
            and fail_closed_after < 2 * refresh_every + refresh_jitter
        ):
            # One failed refresh must not close the gateway: the list must
            # outlive at least two scheduled refreshes.
            raise self.fail(
                "feeds.fail_closed_after",
                t.get("fail_closed_after"),
                "it must be at least twice feeds.refresh_every plus"
                " feeds.refresh_jitter, or the gateway closes after one failed"
                " refresh",
            )
        api_base = self.https_url(t, "api_base", "feeds.api_base", d.api_base)
        if not api_base:
            raise self.fail("feeds.api_base", api_base, "set the Copyleaks API URL")
        return FeedsConfig(
            api_base=api_base,
            ips_path=self.text(t, "ips_path", "feeds.ips_path", d.ips_path),
            certificates_path=self.text(
                t, "certificates_path", "feeds.certificates_path", d.certificates_path
            ),
            ca_bundle=self.path(t, "ca_bundle", "feeds.ca_bundle"),
            refresh_every=refresh_every,
            refresh_jitter=refresh_jitter,
            stale_after=stale_after,
            fail_closed_after=fail_closed_after,
            early_refresh_interval=self.required_duration(
                t,
                "early_refresh_interval",
                "feeds.early_refresh_interval",
                d.early_refresh_interval,
                1.0,
            ),
            connect_timeout=self.required_duration(
                t, "connect_timeout", "feeds.connect_timeout", d.connect_timeout, 0.1
            ),
            read_timeout=self.required_duration(
                t, "read_timeout", "feeds.read_timeout", d.read_timeout, 0.1
            ),
            max_response_bytes=self.integer(
                t,
                "max_response_bytes",
                "feeds.max_response_bytes",
                d.max_response_bytes,
                1024,
            ),
            follow_redirects=self.boolean(
                t, "follow_redirects", "feeds.follow_redirects", False
            ),
            retries=self.integer(t, "retries", "feeds.retries", d.retries, 0, 20),
            backoff_initial=self.required_duration(
                t, "backoff_initial", "feeds.backoff_initial", d.backoff_initial
            ),
            backoff_max=self.required_duration(
                t, "backoff_max", "feeds.backoff_max", d.backoff_max
            ),
            min_prefix_ipv4=self.integer(
                t, "min_prefix_ipv4", "feeds.min_prefix_ipv4", d.min_prefix_ipv4, 1, 32
            ),
            min_prefix_ipv6=self.integer(
                t, "min_prefix_ipv6", "feeds.min_prefix_ipv6", d.min_prefix_ipv6, 1, 128
            ),
            history=self.integer(t, "history", "feeds.history", d.history, 1, 1000),
            extra_ranges=self.strings(t, "extra_ranges", "feeds.extra_ranges", ()),
            extra_thumbprints=self.strings(
                t, "extra_thumbprints", "feeds.extra_thumbprints", ()
            ),
            login=login,
        )

    def routes(self) -> dict[RouteClass, RouteConfig]:
        t = self.table("routes", set(ROUTE_CLASSES))
        routes = default_routes()
        for route_class in ROUTE_CLASSES:
            if route_class not in t:
                continue
            entry = t[route_class]
            if not isinstance(entry, dict):
                raise self.fail(f"routes.{route_class}", entry, "it must be a table")
            self.check_keys(f"routes.{route_class}", entry, {"checks"})
            name = f"routes.{route_class}.checks"
            checks = self.strings(entry, "checks", name, routes[route_class].checks)
            for check in checks:
                if check not in CHECKS:
                    raise self.fail(name, check, f"use checks from {', '.join(CHECKS)}")
            if len(set(checks)) != len(checks):
                raise self.fail(name, list(checks), "list each check once")
            if not checks:
                raise self.fail(
                    name,
                    [],
                    "an empty list would accept any request; list at least one check",
                )
            routes[route_class] = RouteConfig(cast(tuple[Check, ...], checks))
        return routes

    def developer_payload(self) -> DeveloperPayloadConfig:
        d = DeveloperPayloadConfig()
        t = self.table(
            "developer_payload",
            {"mode", "secrets", "secrets_file", "secrets_env", "keys_file", "max_age"},
        )
        return DeveloperPayloadConfig(
            mode=cast(
                Any,
                self.choice(
                    t, "mode", "developer_payload.mode", d.mode, ("plain", "sealed")
                ),
            ),
            secrets=self.secrets(t, "developer_payload"),
            keys_file=self.path(t, "keys_file", "developer_payload.keys_file"),
            max_age=self.required_duration(
                t, "max_age", "developer_payload.max_age", d.max_age, 1.0
            ),
        )

    def header_secret(self) -> HeaderSecretConfig:
        d = HeaderSecretConfig()
        t = self.table(
            "header_secret",
            {"name", "scheme", "secrets", "secrets_file", "secrets_env"},
        )
        name = self.text(t, "name", "header_secret.name", d.name)
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise self.fail("header_secret.name", name, "use an HTTP header name")
        scheme = self.text(t, "scheme", "header_secret.scheme", d.scheme)
        if scheme and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", scheme):
            raise self.fail(
                "header_secret.scheme", scheme, 'use one word such as "Bearer", or ""'
            )
        return HeaderSecretConfig(
            name=name, scheme=scheme, secrets=self.secrets(t, "header_secret")
        )

    def inbox(self) -> InboxConfig:
        d = InboxConfig()
        t = self.table("inbox", set(InboxConfig.__dataclass_fields__))
        url = self.text(t, "url", "inbox.url", "")
        if url and not re.match(r"^(sqlite:///|postgres(ql)?://)", url):
            raise self.fail(
                "inbox.url",
                url,
                'use "sqlite:///PATH" or "postgresql://USER@HOST/DATABASE"',
            )
        return InboxConfig(
            url=url,
            synchronous=cast(
                Any,
                self.choice(
                    t,
                    "synchronous",
                    "inbox.synchronous",
                    d.synchronous,
                    ("full", "normal"),
                ),
            ),
            max_rejections=self.integer(
                t, "max_rejections", "inbox.max_rejections", d.max_rejections, 0
            ),
        )

    def relay(self) -> RelayConfig:
        d = RelayConfig()
        known = set(RelayConfig.__dataclass_fields__) | {
            "signing_secret_file",
            "signing_secret_env",
        }
        t = self.table("relay", known)
        url = self.url(t, "url", "relay.url", "") or None
        signing_secret = self.one_secret(t, "signing_secret", "relay")
        if signing_secret is not None:
            # Imported here: the relay module imports this package.
            from hookbouncer.relay import signing_key

            signing_key(signing_secret)
        return RelayConfig(
            url=url,
            signing_secret=signing_secret,
            max_attempts=self.integer(
                t, "max_attempts", "relay.max_attempts", d.max_attempts, 1
            ),
            timeout=self.required_duration(
                t, "timeout", "relay.timeout", d.timeout, 0.1
            ),
            backoff_initial=self.required_duration(
                t, "backoff_initial", "relay.backoff_initial", d.backoff_initial, 0.0
            ),
            backoff_max=self.required_duration(
                t, "backoff_max", "relay.backoff_max", d.backoff_max, 0.0
            ),
            ca_bundle=self.path(t, "ca_bundle", "relay.ca_bundle"),
        )

    def cross_check(self, config: Config) -> None:
        """Reject combinations that would leave a configured check unusable."""
        in_use = config.checks_in_use()
        server = config.server
        if server.mode == "tls" and (not server.certificate or not server.private_key):
            raise self.fail(
                "server.certificate",
                str(server.certificate or ""),
                "tls mode needs server.certificate and server.private_key",
            )
        if server.proxy_protocol and not server.trusted_proxies:
            raise self.fail(
                "server.proxy_protocol",
                True,
                "a PROXY protocol header is only believed from a trusted proxy:"
                " list the load balancer's address in server.trusted_proxies",
            )
        if "client_certificate" in in_use:
            if server.mode == "tls" and server.client_certificate == "off":
                raise self.fail(
                    "server.client_certificate",
                    "off",
                    "a route checks client_certificate: set request or require,"
                    " or drop the check from the routes",
                )
            if server.mode == "plain" and server.forwarded_certificate == "off":
                raise self.fail(
                    "server.forwarded_certificate",
                    "off",
                    "plain HTTP carries no client certificate: set the TLS"
                    " terminator's format (nginx, haproxy or envoy) or drop"
                    " the client_certificate check",
                )
        if (
            server.mode == "plain"
            and server.forwarded_certificate != "off"
            and not server.trusted_proxies
        ):
            raise self.fail(
                "server.trusted_proxies",
                [],
                "a forwarded certificate is only believed from a trusted"
                " proxy: list the TLS terminator's address",
            )
        if "developer_payload" in in_use:
            payload = config.developer_payload
            if payload.mode == "plain" and not payload.secrets:
                raise self.fail(
                    "developer_payload.secrets_file",
                    MISSING,
                    "plain mode needs at least one secret in secrets_file"
                    " or secrets_env",
                )
            if payload.mode == "sealed" and payload.keys_file is None:
                raise self.fail(
                    "developer_payload.keys_file",
                    MISSING,
                    "sealed mode needs a key ring: create one with"
                    " `hookbouncer token keygen --keys-file FILE`",
                )
        if "header_secret" in in_use and not config.header_secret.secrets:
            raise self.fail(
                "header_secret.secrets_file",
                MISSING,
                "a route checks header_secret: set secrets_file or secrets_env",
            )
        if config.relay.url is not None and config.relay.signing_secret is None:
            raise self.fail(
                "relay.signing_secret_file",
                MISSING,
                "deliveries are signed: set signing_secret_file or"
                " signing_secret_env (a whsec_… Standard Webhooks secret)",
            )


def parse_listen_address(text: str, key: str, source: str) -> tuple[str, int] | Path:
    """Parse `HOST:PORT`, `[IPV6]:PORT` or `unix:/path` into its parts."""
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if not path.startswith("/"):
            raise ConfigError(
                f"{source}: {key} = {text!r} is invalid: use unix:/ABSOLUTE/PATH"
            )
        return Path(path)
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)|([^:\[\]]+):(\d+)", text)
    if match is None:
        raise ConfigError(
            f"{source}: {key} = {text!r} is invalid: use HOST:PORT,"
            " [IPV6]:PORT or unix:/PATH"
        )
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ConfigError(
            f"{source}: {key} = {text!r} is invalid: port must be 0-65535"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(
                f"{source}: {key} = {text!r} is invalid: use an IP address"
                " or localhost as the host"
            ) from None
    return host, port


_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def validate_trusted_union(entries: tuple[str, ...], source: str) -> None:
    """Reject trusted proxies that together cover every IPv4 or IPv6 address."""
    by_version: dict[int, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
    for entry in entries:
        network = ipaddress.ip_network(entry)
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(
            _IPV4_MAPPED
        ):
            mapped = network.network_address.ipv4_mapped
            assert mapped is not None
            network = ipaddress.IPv4Network(
                (mapped, network.prefixlen - _IPV4_MAPPED.prefixlen)
            )
        by_version.setdefault(network.version, []).append(network)
    for networks in by_version.values():
        for merged in ipaddress.collapse_addresses(networks):  # type: ignore[type-var]
            if merged.prefixlen == 0:
                raise ConfigError(
                    f"{source}: server.trusted_proxies together cover every"
                    f" IPv{merged.version} address ({merged}), which would trust"
                    " every peer's forwarding headers: list the proxies' addresses"
                )


def validate_trusted_proxy(entry: str, source: str) -> None:
    """Reject trusted-proxy entries that are malformed or trust everyone."""
    if entry.strip() in {"*", "all"}:
        raise ConfigError(
            f"{source}: server.trusted_proxies contains {entry!r}, which would"
            " trust every peer's forwarding headers: list the proxies' addresses"
        )
    try:
        network = ipaddress.ip_network(entry, strict=True)
    except ValueError as error:
        raise ConfigError(
            f"{source}: server.trusted_proxies contains {entry!r}, which is not"
            f" a CIDR ({error}): write it as 10.0.0.5/32 or 2001:db8::/64"
        ) from None
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        # ::ffff:0:0/96 is every IPv4 address in IPv6 form, and peers are
        # compared after unmapping, so judge the IPv4 prefix it stands for.
        mapped_prefix = network.prefixlen - _IPV4_MAPPED.prefixlen
    else:
        mapped_prefix = network.prefixlen
    if mapped_prefix == 0:
        raise ConfigError(
            f"{source}: server.trusted_proxies contains {entry!r}, which would"
            " trust every peer's forwarding headers: list the proxies' addresses"
        )
