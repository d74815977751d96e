"""Entry point: build the argument parser from the command modules.

Each command module provides `register(subparsers)`, which adds its parser
and sets `handler` to a function taking the parsed arguments and returning
the exit code. Exit codes: 0 success, 1 the job failed (the reason is
printed), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hookbouncer.errors import ConfigError, HookbouncerError

COMMAND_MODULES = (
    "hookbouncer.cli.serve",
    "hookbouncer.cli.sync",
    "hookbouncer.cli.status",
    "hookbouncer.cli.emulate",
    "hookbouncer.cli.demo",
    "hookbouncer.cli.token",
    "hookbouncer.cli.inbox",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hookbouncer",
        description="Verify that webhooks really come from Copyleaks.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except ConfigError as error:
        print(f"hookbouncer: configuration error: {error}", file=sys.stderr)
        return 2
    except HookbouncerError as error:
        print(f"hookbouncer: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
