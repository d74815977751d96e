"""The `hookbouncer demo` command: the whole path on loopback, judged."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run emulator, gateway and an application; send genuine and forged"
        " webhooks; exit 0 only if every outcome was right",
        description="Start an emulated Copyleaks, the gateway and a receiving"
        " application on loopback with throwaway keys, send genuine and forged"
        " webhooks and print each outcome with its reason.",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temporary folder (config, certificates, logs, inbox)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `hookbouncer --help` stays fast.
    from hookbouncer.demo import run_demo

    folder = Path(tempfile.mkdtemp(prefix="hookbouncer-demo-"))
    try:
        passed = run_demo(folder)
    finally:
        if args.keep:
            print(f"files kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return 0 if passed else 1
