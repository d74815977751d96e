"""The `hookbouncer sync` command: refresh both security feeds once.

Meant for cron, systemd timers and Kubernetes CronJobs. It loads the last
good snapshot, fetches both feeds, stores what validates and exits 0 when
both feeds were confirmed or updated. Otherwise it prints the reason and
exits 1; the previous lists stay in force in either case.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from hookbouncer.config import load_config
from hookbouncer.feeds.manager import FeedManager
from hookbouncer.feeds.model import FeedOutcome, RefreshOutcome


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="fetch, validate and store both security feeds once",
        description="Fetch, validate and store both Copyleaks security feeds"
        " once. Exit 0 on success, 1 when a feed could not be updated"
        " (the previous list stays in force), 2 on a configuration error.",
    )
    parser.add_argument(
        "--config", required=True, metavar="FILE", help="the TOML configuration file"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the outcome as one JSON object"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing unless a feed was not updated, and log only errors"
        " (for cron, which mails any output)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, gateway=False)
    configure_logging("ERROR" if args.quiet else config.log_level)
    manager = FeedManager(config)
    try:
        manager.load_from_disk()
        outcome = manager.refresh()
    finally:
        manager.close()
    if args.json:
        print(json.dumps(outcome_to_json(outcome), indent=2))
    elif not (args.quiet and outcome.ok):
        for feed in outcome.feeds:
            print(describe(feed))
    if outcome.ok:
        return 0
    for feed in outcome.feeds:
        if not feed.ok:
            print(
                f"hookbouncer sync: the {feed.feed} feed was not updated"
                f" ({feed.reason}): {feed.error}; the previous list stays"
                " in force",
                file=sys.stderr,
            )
    return 1


def describe(feed: FeedOutcome) -> str:
    """Return one line about one feed's outcome."""
    if feed.outcome == "failed":
        return (
            f"{feed.feed}: failed ({feed.reason}); still serving {feed.count} entries"
        )
    if feed.outcome == "updated":
        return (
            f"{feed.feed}: updated, {feed.count} entries"
            f" ({len(feed.added)} added, {len(feed.removed)} removed)"
        )
    return f"{feed.feed}: {feed.outcome.replace('_', ' ')}, {feed.count} entries"


def outcome_to_json(outcome: RefreshOutcome) -> dict[str, Any]:
    return {
        "ok": outcome.ok,
        "feeds": {
            feed.feed: {
                "outcome": feed.outcome,
                "count": feed.count,
                "added": list(feed.added),
                "removed": list(feed.removed),
                "reason": feed.reason,
                "error": feed.error,
            }
            for feed in outcome.feeds
        },
    }


def configure_logging(level: str) -> None:
    """Send log records to stderr unless the process already set logging up."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(
            level=level,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
    # httpx logs every request at INFO; the feed lines already cover them.
    logging.getLogger("httpx").setLevel(logging.WARNING)
