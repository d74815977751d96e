"""Prometheus metrics of the relay, in prometheus-client.

Metrics are created on a `CollectorRegistry`: the process default for the
gateway's `/metrics` page, or a fresh registry in tests so counts start at
zero. `relay_metrics()` returns the one set on the default registry, because
prometheus-client rejects a second metric of the same name there.
"""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

# Outcomes of one relay attempt, the values of the `outcome` label.
RELAY_OUTCOMES = (
    "delivered",
    "http_error",
    "redirect",
    "timeout",
    "connection_error",
    "callback_error",
)

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
_ATTEMPT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RelayMetrics:
    """Counters and histograms of deliveries to the application."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.attempts = Counter(
            "hookbouncer_relay_attempts",
            "Relay delivery attempts by outcome.",
            ["outcome"],
            registry=registry,
        )
        for outcome in RELAY_OUTCOMES:
            self.attempts.labels(outcome)
        self.dead = Counter(
            "hookbouncer_relay_dead",
            "Webhooks given up after relay.max_attempts failed attempts.",
            registry=registry,
        )
        self.attempt_duration = Histogram(
            "hookbouncer_relay_attempt_duration_seconds",
            "Time one delivery attempt took, success or not.",
            buckets=_ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.delivery_latency = Histogram(
            "hookbouncer_relay_delivery_latency_seconds",
            "Time from receiving a webhook to delivering it to the application.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )


_default_lock = threading.Lock()
_default: RelayMetrics | None = None


def relay_metrics() -> RelayMetrics:
    """Return the relay metrics on the default registry, creating them once."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RelayMetrics(REGISTRY)
        return _default
