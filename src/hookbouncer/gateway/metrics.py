"""Request metrics and the gauges read at scrape time, in prometheus-client.

Counters live in the default registry, so `/metrics` shows them next to
the relay's and the inbox's. Feed and inbox gauges are computed when the
page is scraped (`StateCollector`), from callables the server passes in,
because their sources are the feed manager and the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("hookbouncer.gateway")

REQUESTS = Counter(
    "hookbouncer_requests",
    "Webhook requests by route class and decision.",
    ["route", "decision"],
)
REJECTIONS = Counter(
    "hookbouncer_rejections",
    "Rejection reasons; one request can count several.",
    ["reason"],
)
REJECTIONS_DROPPED = Counter(
    "hookbouncer_rejection_records_dropped",
    "Rejections not written to the inbox because its queue was full or it failed.",
)
DURATION = Histogram(
    "hookbouncer_request_duration_seconds",
    "Time from the end of the header block to the response.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
TLS_HANDSHAKE_FAILURES = Counter(
    "hookbouncer_tls_handshake_failures",
    "TLS connections that failed before a request, such as a client without"
    " a certificate under client_certificate = require.",
)
TLS_CONNECTIONS = Counter(
    "hookbouncer_connections",
    "Accepted connections by listener kind.",
    ["listener"],
)

# name -> (help, value source); a source returning None leaves the gauge out.
GaugeSources = dict[str, tuple[str, Callable[[], float | None]]]


class StateCollector(Collector):
    """Gauges read from live objects when `/metrics` is scraped."""

    def __init__(self, sources: GaugeSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, source) in self.sources.items():
            try:
                value = source()
            except Exception as error:
                log.warning("metric %s cannot be read: %s", name, error)
                continue
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)


def register_state(sources: GaugeSources) -> StateCollector:
    collector = StateCollector(sources)
    REGISTRY.register(collector)
    return collector
