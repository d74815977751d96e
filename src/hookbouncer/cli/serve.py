"""The `hookbouncer serve` command: run the gateway until SIGTERM or SIGINT.

Startup order: config, logging, feeds from disk (and the refresher), the
inbox, the relay, the listeners; then "ready" is logged. A configuration
error exits 2 before anything listens. On SIGTERM or SIGINT the gateway
drains (see `Gateway.stop`), then the relay and the feeds stop and the
inbox closes.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Mapping
from typing import Any

from hookbouncer.config import Config, load_config
from hookbouncer.errors import ConfigError, HookbouncerError, KeyringError
from hookbouncer.gateway.logs import configure

log = logging.getLogger("hookbouncer.gateway")

# Seconds that requests in flight get to finish after SIGTERM.
DRAIN_SECONDS = 10.0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the gateway: HTTPS listener, feed refresh, inbox, relay, admin",
        description="Run the gateway until SIGTERM or SIGINT.",
    )
    parser.add_argument("--config", required=True, help="path of the TOML config file")
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="log line format on stderr (default: text)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes accepting on the same sockets; one uses about one core"
        " (default: 1)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure(config.log_level, args.log_format)
    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers} is invalid: use 1 or more")
    server = config.server
    if server.mode == "tls":
        # Checked once, before any worker forks or anything starts, so a bad
        # file is one configuration message.
        from hookbouncer.gateway.tls import validate_server_files

        assert server.certificate is not None and server.private_key is not None
        validate_server_files(server.certificate, server.private_key, config.source)
    if args.workers == 1:
        return run_worker(config, None, 0)
    from hookbouncer.gateway.workers import supervise

    try:
        return supervise(config, args.workers, run_worker)
    except OSError as error:
        raise HookbouncerError(error.strerror or str(error)) from None


def run_worker(
    config: Config, bound: Mapping[str, socket.socket] | None, index: int
) -> int:
    """Run one gateway process until SIGTERM or SIGINT; return the exit code."""
    # Imported here: `hookbouncer --help` should not load Twisted, and a
    # reactor must not exist before `--workers` forks.
    from twisted.internet import reactor as installed

    from hookbouncer.gateway.runtime import Runtime

    reactor: Any = installed
    try:
        runtime = Runtime(config, reactor)
    except KeyringError as error:
        raise ConfigError(str(error)) from None
    log.info(
        "starting hookbouncer pid %d with config %s",
        os.getpid(),
        config.source,
        extra={"pid": os.getpid()},
    )
    try:
        runtime.start(bound, primary=index == 0)
    except OSError as error:
        runtime.close()
        raise HookbouncerError(error.strerror or str(error)) from None
    if bound is not None:
        for sock in bound.values():
            sock.close()
    reactor.addSystemEventTrigger("before", "shutdown", runtime.stop, DRAIN_SECONDS)
    log.info("ready", extra={"pid": os.getpid()})
    reactor.run()
    log.info("stopped", extra={"pid": os.getpid()})
    return 0
