"""The `hookbouncer token` commands: key ring management, seal and open.

- `token keygen --keys-file FILE` creates a key ring with one key.
- `token rotate --keys-file FILE [--keep N]` adds a new active key; old
  keys keep opening the tokens they sealed.
- `token seal --scan-id ID [--context TEXT] --keys-file FILE` prints a
  sealed developerPayload for one scan.
- `token open TOKEN --scan-id ID --keys-file FILE` checks a token and
  prints what it carries as JSON.

`--config FILE` can stand in for `--keys-file`, using
`developer_payload.keys_file` (and `max_age` for `open`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from hookbouncer.config import DeveloperPayloadConfig, load_config, parse_duration
from hookbouncer.errors import ConfigError
from hookbouncer.tokens import KeyRing, TokenError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token",
        help="make and read sealed developerPayload values",
        description="Manage the developerPayload key ring and seal or open tokens.",
    )
    commands = parser.add_subparsers(dest="token_command", required=True)

    keygen = commands.add_parser("keygen", help="create a key ring with one key")
    _add_keys_arguments(keygen)
    keygen.set_defaults(handler=_keygen)

    rotate = commands.add_parser("rotate", help="add a new active key")
    _add_keys_arguments(rotate)
    rotate.add_argument(
        "--keep",
        type=int,
        metavar="N",
        help="keep only the N newest old keys (default: keep all)",
    )
    rotate.set_defaults(handler=_rotate)

    seal = commands.add_parser("seal", help="print a sealed token for a scan")
    _add_keys_arguments(seal)
    seal.add_argument("--scan-id", required=True, help="the Copyleaks scan id")
    seal.add_argument(
        "--context",
        default="",
        help="text handed to the application when the webhook verifies",
    )
    seal.set_defaults(handler=_seal)

    opener = commands.add_parser("open", help="check a token and print its content")
    _add_keys_arguments(opener)
    opener.add_argument("token", help="the token, or - to read it from stdin")
    opener.add_argument("--scan-id", required=True, help="the scan id in the URL")
    opener.add_argument(
        "--max-age",
        help="maximum token age such as 30d (default: developer_payload.max_age)",
    )
    opener.set_defaults(handler=_open)


def _add_keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys-file", type=Path, help="the key ring JSON file")
    parser.add_argument(
        "--config", type=Path, help="read developer_payload.keys_file from this config"
    )


def _keys_file(args: argparse.Namespace) -> Path:
    if args.keys_file is not None:
        return Path(args.keys_file)
    if args.config is not None:
        keys_file = load_config(args.config).developer_payload.keys_file
        if keys_file is not None:
            return keys_file
        raise ConfigError(
            f"{args.config}: developer_payload.keys_file is not set; set it or"
            " pass --keys-file"
        )
    raise ConfigError("no key ring given: pass --keys-file FILE or --config FILE")


def _keygen(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    ring = KeyRing.generate(time.time())
    ring.save(path, replace=False)
    print(f"created key ring {path} with active key {ring.active}")
    return 0


def _rotate(args: argparse.Namespace) -> int:
    path = _keys_file(args)
    if args.keep is not None and args.keep < 0:
        raise ConfigError(f"--keep {args.keep} is invalid: use 0 or more")
    ring = KeyRing.load(path).rotated(time.time(), keep=args.keep)
    ring.save(path)
    print(f"key ring {path}: active key {ring.active}, {len(ring.keys)} keys in all")
    return 0


def _seal(args: argparse.Namespace) -> int:
    ring = KeyRing.load(_keys_file(args))
    try:
        token = ring.seal(args.scan_id, args.context, now=time.time())
    except ValueError as error:
        raise ConfigError(str(error)) from None
    print(token)
    return 0


def _open(args: argparse.Namespace) -> int:
    ring = KeyRing.load(_keys_file(args))
    if args.max_age is not None:
        try:
            max_age = parse_duration(args.max_age)
        except ValueError as error:
            raise ConfigError(f"--max-age: {error}") from None
    elif args.config is not None:
        max_age = load_config(args.config).developer_payload.max_age
    else:
        max_age = DeveloperPayloadConfig().max_age
    token: str = args.token
    if token == "-":  # noqa: S105 - "-" means standard input, not a password
        token = sys.stdin.readline().strip()
    try:
        opened = ring.open(token, args.scan_id, now=time.time(), max_age=max_age)
    except TokenError as error:
        print(f"hookbouncer: token rejected: {error.reason}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "key_id": opened.key_id,
                "issued_at": opened.issued_at,
                "scan_id": opened.scan_id,
                "context": opened.context,
            }
        )
    )
    return 0
