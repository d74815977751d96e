"""The `hookbouncer emulate` command: act as Copyleaks on loopback.

- `hookbouncer emulate [--range CIDR] [--thumbprint HEX] ...` runs the
  security API (sender ranges, certificate thumbprints) over HTTPS until
  SIGINT or SIGTERM, and writes the CA that signed its certificate so the
  gateway's `feeds.ca_bundle` can trust it.
- `hookbouncer emulate send ...` posts one webhook, genuine or forged.
- `hookbouncer emulate certs ...` makes a self-signed client or server
  certificate and prints its thumbprints.
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from hookbouncer.config import parse_listen_address
from hookbouncer.emulator.certs import (
    certificate_der,
    make_self_signed,
    sha1_thumbprint,
)
from hookbouncer.emulator.sender import EVENTS, Sender
from hookbouncer.errors import ConfigError, HookbouncerError
from hookbouncer.tokens import KeyRing


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "emulate",
        help="run the Copyleaks emulator: security API, webhook sender, certificates",
        description="Run the emulated Copyleaks security API until interrupted,"
        " or use a subcommand to send a webhook or make a certificate.",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1:0",
        help="HOST:PORT of the security API (default: 127.0.0.1, a free port)",
    )
    parser.add_argument(
        "--range",
        action="append",
        default=[],
        metavar="CIDR",
        help="a sender range to serve; repeat for more",
    )
    parser.add_argument(
        "--thumbprint",
        action="append",
        default=[],
        metavar="HEX",
        help="a certificate thumbprint to serve; repeat for more",
    )
    parser.add_argument(
        "--thumbprint-of",
        action="append",
        default=[],
        type=Path,
        metavar="PEM",
        help="serve the SHA-1 thumbprint of this certificate file; repeat for more",
    )
    parser.add_argument(
        "--ca-out",
        type=Path,
        help="write the CA certificate that signed the API's certificate here",
    )
    parser.set_defaults(handler=run_api)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    _register_send(actions)
    _register_certs(actions)


def _register_send(actions: Any) -> None:
    send = actions.add_parser(
        "send",
        help="post one webhook to a gateway",
        description="Post one webhook and print the status and body of the response."
        " Exit 0 on a 2xx answer, 1 otherwise.",
    )
    send.add_argument(
        "--url", required=True, help="gateway base URL, https://HOST:PORT"
    )
    send.add_argument("--event", choices=EVENTS, default="completed")
    send.add_argument(
        "--scan-id", required=True, help="scan id (export id for exports)"
    )
    send.add_argument(
        "--prefix", default="/copyleaks", help="route prefix on the gateway"
    )
    send.add_argument(
        "--client-cert", type=Path, help="client certificate PEM to present"
    )
    send.add_argument(
        "--client-key",
        type=Path,
        help="its private key (default: .key next to the cert)",
    )
    send.add_argument(
        "--server-cert",
        type=Path,
        help="trust this gateway certificate or CA (default: the system store)",
    )
    send.add_argument("--source", help="local source address, such as 127.0.0.2")
    payload = send.add_mutually_exclusive_group()
    payload.add_argument("--payload", help="developerPayload value to send")
    payload.add_argument(
        "--seal-with",
        type=Path,
        metavar="KEYS_FILE",
        help="seal a developerPayload token for --scan-id with this key ring",
    )
    send.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra header; repeat for more",
    )
    send.add_argument(
        "--body-file",
        type=Path,
        help="send this file's bytes as the body instead of the generated JSON",
    )
    send.add_argument("--method", default="POST", help="HTTP method (default: POST)")
    send.add_argument("--path", help="request path instead of the event's route")
    send.set_defaults(handler=run_send)


def _register_certs(actions: Any) -> None:
    certs = actions.add_parser(
        "certs",
        help="make a self-signed certificate and print its thumbprints",
        description="Write NAME.pem and NAME.key into --dir and print the SHA-1"
        " and SHA-256 thumbprints of the certificate.",
    )
    certs.add_argument("--dir", type=Path, required=True, help="output directory")
    certs.add_argument(
        "--name", default="client", help="file name stem (default: client)"
    )
    certs.add_argument(
        "--server",
        action="store_true",
        help="make a server certificate for localhost, 127.0.0.1 and ::1",
    )
    certs.add_argument(
        "--days", type=int, default=30, help="validity in days (default: 30)"
    )
    certs.set_defaults(handler=run_certs)


def run_api(args: argparse.Namespace) -> int:
    from hookbouncer.emulator.security_api import SecurityAPI

    parsed = parse_listen_address(args.listen, "--listen", "command line")
    if isinstance(parsed, Path):
        raise ConfigError(
            "--listen: the security API needs HOST:PORT, not a unix socket"
        )
    host, port = parsed
    thumbprints = list(args.thumbprint)
    for path in args.thumbprint_of:
        try:
            thumbprints.append(sha1_thumbprint(certificate_der(path)))
        except (OSError, ValueError) as error:
            raise ConfigError(
                f"--thumbprint-of {path}: cannot read a PEM certificate: {error}"
            ) from None
    try:
        api = SecurityAPI(host, port)
    except OSError as error:
        raise HookbouncerError(
            f"cannot listen on {args.listen}: {(error.strerror or str(error)).lower()};"
            " stop the other process or choose another --listen"
        ) from None
    api.set_ranges(list(args.range))
    api.set_thumbprints(thumbprints)
    if args.ca_out is not None:
        args.ca_out.write_bytes(api.ca_pem)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    api.start()
    print(f"security API at {api.url}", flush=True)
    print(f"  {len(args.range)} ranges, {len(thumbprints)} thumbprints", flush=True)
    if args.ca_out is not None:
        print(f"  CA certificate in {args.ca_out} (use as feeds.ca_bundle)", flush=True)
    try:
        stop.wait()
    finally:
        api.stop()
    return 0


def _headers(entries: list[str]) -> list[tuple[str, str]]:
    headers = []
    for entry in entries:
        name, separator, value = entry.partition(":")
        if not separator or not name.strip():
            raise ConfigError(
                f"--header {entry!r} is invalid: write it as 'Name: value'"
            )
        headers.append((name.strip(), value.strip()))
    return headers


def run_send(args: argparse.Namespace) -> int:
    for flag, value in (("--prefix", args.prefix), ("--path", args.path)):
        if value and not value.startswith("/"):
            raise ConfigError(f"{flag} {value!r} is invalid: start it with /")
    payload = args.payload
    if args.seal_with is not None:
        try:
            payload = KeyRing.load(args.seal_with).seal(args.scan_id, now=time.time())
        except ValueError as error:
            raise ConfigError(f"--scan-id {args.scan_id!r}: {error}") from None
    client_key = args.client_key
    if args.client_cert is not None and client_key is None:
        client_key = args.client_cert.with_suffix(".key")
    body = None
    if args.body_file is not None:
        try:
            body = args.body_file.read_bytes()
        except OSError as error:
            raise ConfigError(
                f"--body-file {str(args.body_file)!r} cannot be read: {error.strerror}"
            ) from None
    try:
        sender = Sender(
            args.url,
            server_certificate=args.server_cert,
            client_certificate=args.client_cert,
            client_key=client_key,
            source=args.source,
            prefix=args.prefix,
        )
    except OSError as error:
        raise ConfigError(f"cannot load the certificates: {error}") from None
    with sender:
        try:
            response = sender.send(
                args.event,
                args.scan_id,
                developer_payload=payload,
                headers=_headers(args.header),
                body=body,
                method=args.method,
                path=args.path,
            )
        except httpx.TransportError as error:
            raise HookbouncerError(f"sending to {args.url} failed: {error}") from None
        except (httpx.HTTPError, UnicodeError, ValueError) as error:
            # For example a header value that is not ASCII, or a bad URL.
            raise ConfigError(f"the request cannot be built: {error}") from None
    print(response.status_code, response.text)
    return 0 if 200 <= response.status_code < 300 else 1


def run_certs(args: argparse.Namespace) -> int:
    files = make_self_signed(
        args.dir, args.name, server=args.server, valid_days=args.days
    )
    print(f"certificate {files.certificate}")
    print(f"private key {files.private_key}")
    print(f"sha1   {files.sha1}")
    print(f"sha256 {files.sha256}")
    return 0
