"""The `hookbouncer status` command: feed ages, counts and inbox state.

It reads only the state directory and the inbox; it never fetches. The
exit code is 0 when every list that a route's checks need is loaded and
not past `feeds.fail_closed_after`, and 1 otherwise, so a probe can use
it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from datetime import UTC, datetime
from typing import Any

from hookbouncer.config import Config, load_config
from hookbouncer.errors import InboxUnavailable
from hookbouncer.feeds.manager import FeedManager
from hookbouncer.feeds.model import FeedHealth, FeedState, format_age
from hookbouncer.inbox import open_inbox
from hookbouncer.inbox.sqlite import sqlite_path


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="show feed age, entry counts, last refresh and inbox state",
        description="Show the security feeds in force (age, entry counts"
        " from the feed and from extra entries, last refresh outcome and"
        " error) and the inbox depth and delivery state. Exit 0 when the"
        " lists the routes need are loaded and usable, 1 otherwise.",
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="the TOML configuration file"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, gateway=False)
    manager = FeedManager(config)
    manager.load_from_disk()
    status = manager.status()
    health = manager.health()
    inbox = inbox_stats(config)
    if args.json:
        document = {
            "feeds": {state.feed: dataclasses.asdict(state) for state in status},
            "health": {
                **dataclasses.asdict(health),
                "ready": health.ready,
                "degraded": health.degraded,
            },
            "inbox": inbox,
        }
        print(json.dumps(document, indent=2))
    else:
        for state in status:
            print("\n".join(describe_feed(state)))
        print(describe_health(health))
        print(describe_inbox(inbox))
    return 0 if health.ready else 1


def describe_feed(state: FeedState) -> list[str]:
    """Return the lines that describe one feed."""
    lines = [
        f"{state.feed}: {state.total_count} in force"
        f" ({state.feed_count} from the feed, {state.extra_count} extra)"
    ]
    lines.append(f"  source:       {state.source_url}")
    if state.fetched_at is None or state.age is None:
        lines.append("  fetched:      never")
    else:
        flags = " STALE" if state.stale else ""
        flags += " FAIL-CLOSED" if state.fail_closed else ""
        lines.append(
            f"  fetched:      {_when(state.fetched_at)}"
            f" ({format_age(state.age)} ago){flags}"
        )
        if state.changed_at is not None:
            lines.append(
                f"  changed:      {_when(state.changed_at)}"
                f" (generation {state.generation})"
            )
    if state.last_attempt_at is None:
        lines.append("  last refresh: none recorded")
    else:
        lines.append(
            f"  last refresh: {_when(state.last_attempt_at)} {state.last_outcome}"
        )
    if state.last_error:
        when = "" if state.last_error_at is None else _when(state.last_error_at) + " "
        lines.append(f"  last error:   {when}{state.last_error}")
    return lines


def describe_health(health: FeedHealth) -> str:
    if health.fail_closed:
        word = "fail-closed"
    elif health.degraded:
        word = "degraded"
    else:
        word = "ok"
    detail = "; ".join(health.detail)
    return f"health: {word}" + (f" ({detail})" if detail else "")


def inbox_stats(config: Config) -> dict[str, Any]:
    """Return the inbox counts, or an `error` entry saying why there are none."""
    url = config.inbox_url
    if url.startswith("sqlite:"):
        try:
            path = sqlite_path(url)
        except ValueError as error:
            return {"error": str(error)}
        if not path.exists():
            return {"error": f"no inbox database at {path} yet"}
    try:
        inbox = open_inbox(config)
        try:
            stats = inbox.stats(time.time())
        finally:
            inbox.close()
    except InboxUnavailable as error:
        # Status must still show the feeds when the inbox is down.
        return {"error": f"the inbox cannot be opened: {error}"}
    return dataclasses.asdict(stats)


def describe_inbox(stats: dict[str, Any]) -> str:
    if "error" in stats:
        return f"inbox: {stats['error']}"
    counts = ", ".join(
        f"{key} {stats[key]}"
        for key in ("accepted", "pending", "delivered", "dead", "rejections")
    )
    age = stats["oldest_pending_age"]
    oldest = f"; oldest pending {format_age(age)}" if age is not None else ""
    return f"inbox ({stats['backend']}): {counts}{oldest}"


def _when(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
