"""Everything `serve` runs, built from one config and stopped in order.

`Runtime` builds the feed manager, the inbox, the relay, the verifier and
the gateway, starts them in that order and stops them in reverse: the
gateway drains first, so no request is committed after the inbox closes.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Mapping
from typing import Any

from twisted.internet import defer, threads

from hookbouncer.config import Config
from hookbouncer.feeds.manager import FeedManager
from hookbouncer.gateway import metrics
from hookbouncer.gateway.admin import Readiness
from hookbouncer.gateway.server import Gateway
from hookbouncer.inbox import Inbox, open_inbox
from hookbouncer.keyfile import WatchedKeyRing
from hookbouncer.policy import Verifier

log = logging.getLogger("hookbouncer.gateway")


def readiness(feeds: FeedManager, inbox: Inbox) -> Readiness:
    """Combine feed health and inbox writability for `/readyz`."""
    health = feeds.health()
    failed: list[str] = []
    if not health.loaded:
        failed.append("feeds_not_loaded")
    if health.fail_closed:
        failed.append("feeds_fail_closed")
    try:
        writable = inbox.writable()
    except Exception as error:
        log.warning("inbox writability check failed: %s", error)
        writable = False
    if not writable:
        failed.append("inbox_not_writable")
    return Readiness(
        ready=not failed,
        degraded=health.stale,
        failed=tuple(failed),
        details={"feeds": list(health.detail)},
    )


class Runtime:
    def __init__(self, config: Config, reactor: Any) -> None:
        self.config = config
        self.reactor = reactor
        keys_file = config.developer_payload.keys_file
        # Follows the file, so `token rotate` takes effect without a restart.
        self.keyring = WatchedKeyRing(keys_file) if keys_file is not None else None
        self.feeds = FeedManager(config)
        self.verifier = Verifier(config, self.feeds.snapshot, self.keyring)
        self.inbox: Inbox | None = None
        self.relay: Any = None
        self.gateway: Gateway | None = None

    def start(
        self, bound: Mapping[str, socket.socket] | None = None, *, primary: bool = True
    ) -> None:
        """Load feeds, open the inbox, start the relay and the listeners.

        Only the primary process of `serve --workers N` runs the relay and
        the admin listener; `bound` contains the sockets its parent bound.
        """
        self.feeds.load_from_disk()
        snapshot = self.feeds.snapshot()
        log.info(
            "feeds in force: %d ranges, %d pins",
            len(snapshot.allowlist),
            len(snapshot.pins),
            extra={"ranges": len(snapshot.allowlist), "pins": len(snapshot.pins)},
        )
        self.feeds.start()
        self.inbox = open_inbox(self.config)
        if primary and self.config.relay.url is not None:
            from hookbouncer.relay import Relay

            self.relay = Relay(self.inbox, self.config)
            self.relay.start()
        inbox = self.inbox
        feeds = self.feeds
        self.gateway = Gateway(
            self.config,
            verifier=self.verifier,
            inbox=inbox,
            readiness=lambda: readiness(feeds, inbox),
            request_early_refresh=self.feeds.request_early_refresh,
            on_accepted=self._wake_relay,
            reactor=self.reactor,
        )
        self._register_gauges(inbox)
        self.gateway.start(bound, admin=primary)

    def _wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    def _register_gauges(self, inbox: Inbox) -> None:
        feeds = self.feeds

        def ranges() -> float:
            return float(len(feeds.snapshot().allowlist))

        def pins() -> float:
            return float(len(feeds.snapshot().pins))

        def oldest_feed_age() -> float | None:
            status = feeds.status()
            ages = [s.age for s in (status.ranges, status.thumbprints) if s.age]
            return max(ages) if ages else None

        def pending() -> float:
            return float(inbox.stats(time.time()).pending)

        metrics.register_state(
            {
                "hookbouncer_feed_ranges": ("Sender ranges in force.", ranges),
                "hookbouncer_feed_pins": ("Certificate thumbprints in force.", pins),
                "hookbouncer_feed_age_seconds": (
                    "Age of the oldest feed list in force.",
                    oldest_feed_age,
                ),
                "hookbouncer_inbox_pending": (
                    "Accepted webhooks not yet delivered.",
                    pending,
                ),
            }
        )

    @defer.inlineCallbacks
    def stop(self, grace: float) -> Any:
        """Drain the gateway, then stop the relay and feeds, close the inbox."""
        if self.gateway is not None:
            yield self.gateway.stop(grace)
        yield threads.deferToThread(self.close)
        log.info("stopped relay, feeds and inbox")

    def close(self) -> None:
        """Stop the relay and the feeds and close the inbox; blocking."""
        if self.relay is not None:
            self.relay.stop()
        self.feeds.stop()
        self.feeds.close()
        if self.inbox is not None:
            self.inbox.close()
