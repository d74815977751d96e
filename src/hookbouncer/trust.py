"""The trust snapshot: the allowlist and pin set in force, with feed health.

The feeds code builds a new `TrustSnapshot` whenever a feed changes and
swaps it in with one assignment. The policy reads one whole snapshot per
request, so a request is never checked against an allowlist from one
feed version and pins from another.
"""

from __future__ import annotations

from dataclasses import dataclass

from hookbouncer.allowlist import Allowlist
from hookbouncer.certificates import PinSet


@dataclass(frozen=True)
class TrustSnapshot:
    """The allowlist and pin set in force, and whether they can be used.

    `ranges_loaded` and `pins_loaded` stay False until a feed or the
    configured extras gave a list. `fail_closed` is set once the feeds are
    older than `feeds.fail_closed_after`: every source_ip and
    client_certificate check then fails.
    """

    allowlist: Allowlist
    pins: PinSet
    ranges_loaded: bool
    pins_loaded: bool
    fail_closed: bool = False

    @classmethod
    def empty(cls) -> TrustSnapshot:
        """Build a snapshot with nothing loaded, so every list check fails."""
        return cls(
            allowlist=Allowlist(()),
            pins=PinSet(()),
            ranges_loaded=False,
            pins_loaded=False,
            fail_closed=False,
        )
