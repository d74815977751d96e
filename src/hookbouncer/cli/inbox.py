"""The `hookbouncer inbox` commands: list, show and redeliver webhooks.

They open the configured inbox directly, so they work while the gateway
runs. A redelivered webhook is sent by the gateway's relay at its next
poll of the inbox, or at once by this process with `redeliver --now`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from hookbouncer.config import Config, load_config
from hookbouncer.errors import HookbouncerError
from hookbouncer.inbox import DELIVERY_STATES, Inbox, StoredWebhook, open_inbox
from hookbouncer.inbox.sqlite import sqlite_path
from hookbouncer.relay import Relay

PAGE_SIZE = 500
RELAY_BATCH = 32


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inbox",
        help="list, show and redeliver recorded webhooks",
        description="Inspect recorded webhooks and send them to the application again.",
    )
    commands = parser.add_subparsers(
        dest="inbox_command", required=True, metavar="ACTION"
    )

    listing = commands.add_parser("list", help="list recorded webhooks, newest first")
    _add_config(listing)
    listing.add_argument(
        "--state", choices=DELIVERY_STATES, help="only this delivery state"
    )
    listing.add_argument(
        "--limit", type=_positive, default=50, help="how many to list (default 50)"
    )
    listing.add_argument("--json", action="store_true", help="print one JSON array")
    listing.set_defaults(handler=_list)

    show = commands.add_parser("show", help="show one webhook's metadata and headers")
    _add_config(show)
    show.add_argument("id", type=_positive, help="inbox id, as shown by `inbox list`")
    show.add_argument(
        "--body",
        action="store_true",
        help="write the raw body bytes to stdout instead of the metadata",
    )
    show.set_defaults(handler=_show)

    redeliver = commands.add_parser(
        "redeliver", help="make webhooks pending again, with attempts reset"
    )
    _add_config(redeliver)
    redeliver.add_argument(
        "ids", type=_positive, nargs="*", metavar="ID", help="inbox ids to send again"
    )
    redeliver.add_argument(
        "--dead", action="store_true", help="also every webhook in the dead state"
    )
    redeliver.add_argument(
        "--now",
        action="store_true",
        help="deliver the due webhooks from this process instead of waiting for"
        " the gateway's relay",
    )
    redeliver.set_defaults(handler=_redeliver)


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="hookbouncer TOML config file"
    )


# Ids and limits are stored as signed 64-bit integers in both databases.
MAX_ID = 2**63 - 1


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    if value > MAX_ID:
        raise argparse.ArgumentTypeError(f"{value} is larger than any inbox id")
    return value


def _open(args: argparse.Namespace) -> tuple[Inbox, Config]:
    """Open an existing inbox; never create one, which would hide a wrong path."""
    config = load_config(args.config, gateway=False)
    url = config.inbox_url
    if url.startswith("sqlite:"):
        path = sqlite_path(url)
        if not path.exists():
            raise HookbouncerError(
                f"no inbox database at {path}: check state_dir and inbox.url"
                f" in {config.source}, or start the gateway once to create it"
            )
    return open_inbox(config), config


# -- list ---------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    inbox, _ = _open(args)
    try:
        webhooks = inbox.list(args.state, args.limit)
    finally:
        inbox.close()
    if args.json:
        json.dump([_summary(webhook) for webhook in webhooks], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    if not webhooks:
        print(
            "no webhooks recorded" + (f" in state {args.state}" if args.state else "")
        )
        return 0
    columns = (
        "ID",
        "STATE",
        "TRIES",
        "RECEIVED (UTC)",
        "ROUTE",
        "EVENT",
        "SCAN ID",
        "BYTES",
    )
    rows = [
        (
            str(webhook.id),
            webhook.state,
            str(webhook.attempts),
            _time(webhook.received_at),
            webhook.route_class,
            webhook.event,
            webhook.scan_id or "-",
            str(webhook.body_size),
        )
        for webhook in webhooks
    ]
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    for row in [columns, *rows]:
        print(
            "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
        )
    return 0


def _summary(webhook: StoredWebhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "state": webhook.state,
        "attempts": webhook.attempts,
        "received_at": webhook.received_at,
        "route_class": webhook.route_class,
        "event": webhook.event,
        "scan_id": webhook.scan_id,
        "client_address": webhook.client_address,
        "thumbprint": webhook.thumbprint,
        "checks": list(webhook.checks),
        "body_sha256": webhook.body_sha256,
        "body_size": webhook.body_size,
        "next_attempt_at": webhook.next_attempt_at,
        "last_error": webhook.last_error,
        "delivered_at": webhook.delivered_at,
    }


def _time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


# -- show ---------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    inbox, _ = _open(args)
    try:
        webhook = inbox.get(args.id)
    finally:
        inbox.close()
    if webhook is None:
        print(f"hookbouncer inbox: no webhook with id {args.id}", file=sys.stderr)
        return 1
    if args.body:
        sys.stdout.flush()
        sys.stdout.buffer.write(webhook.body or b"")
        sys.stdout.buffer.flush()
        return 0
    summary = _summary(webhook)
    for key in ("received_at", "next_attempt_at", "delivered_at"):
        if summary[key] is not None:
            summary[key] = _time(summary[key]) + " UTC"
    summary["checks"] = ", ".join(webhook.checks) or "-"
    summary["token_context"] = webhook.token_context
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        print(f"{key.ljust(width)}  {'-' if value is None else value}")
    print("headers:")
    for name, value in webhook.headers:
        print(f"  {name}: {value}")
    return 0


# -- redeliver ----------------------------------------------------------------


def _redeliver(args: argparse.Namespace) -> int:
    if not args.ids and not args.dead:
        print(
            "hookbouncer inbox redeliver: give one or more IDs, or --dead",
            file=sys.stderr,
        )
        return 2
    inbox, config = _open(args)
    try:
        ids = list(args.ids)
        if args.dead:
            ids.extend(_all_dead(inbox))
        missing = [webhook_id for webhook_id in ids if not inbox.redeliver(webhook_id)]
        done = len(ids) - len(missing)
        print(f"{done} webhook(s) pending again")
        for webhook_id in missing:
            print(
                f"hookbouncer inbox: no webhook with id {webhook_id}", file=sys.stderr
            )
        if args.now and done:
            attempted = _deliver_now(inbox, config)
            print(f"{attempted} due webhook(s) attempted; see `inbox list` for results")
    finally:
        inbox.close()
    return 1 if missing else 0


def _deliver_now(inbox: Inbox, config: Config) -> int:
    """Run relay passes until one finds fewer than a full batch due."""
    relay = Relay(inbox, config, batch_size=RELAY_BATCH)
    attempted = 0
    try:
        while True:
            count = relay.deliver_due_once()
            attempted += count
            if count < RELAY_BATCH:
                return attempted
    finally:
        relay.stop()


def _all_dead(inbox: Inbox) -> list[int]:
    ids: list[int] = []
    before: int | None = None
    while True:
        page = inbox.list("dead", PAGE_SIZE, before_id=before)
        ids.extend(webhook.id for webhook in page)
        if len(page) < PAGE_SIZE:
            return ids
        before = page[-1].id
