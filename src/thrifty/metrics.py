"""Prometheus metrics, one registry per ``Gateway`` (no module-level globals).

Label children are cached in dicts so the hot path does one dict lookup per observation.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "thrifty_requests_total",
            "Requests by endpoint, requested model, served model and HTTP status.",
            ("endpoint", "model", "served_model", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "thrifty_request_latency_seconds",
            "End-to-end request latency seen by the gateway.",
            ("endpoint", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "thrifty_time_to_first_byte_seconds",
            "Time to the first byte of the answer (first chunk for streams).",
            ("endpoint", "model"),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "thrifty_tokens_total",
            "Tokens by served model and kind (prompt, completion, cached).",
            ("model", "kind"),
            registry=r,
        )
        self.cost = Counter(
            "thrifty_cost_usd_total",
            "Spend in USD by served model and status.",
            ("model", "status"),
            registry=r,
        )
        self.upstream_errors = Counter(
            "thrifty_upstream_errors_total",
            "Upstream failures by provider and error code.",
            ("provider", "code"),
            registry=r,
        )
        self.unpriced = Counter(
            "thrifty_unpriced_requests_total",
            "Requests answered by a model with no known price (cost unknown, not zero).",
            ("model",),
            registry=r,
        )
        self.breaker_state = Gauge(
            "thrifty_circuit_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open.",
            ("deployment",),
            registry=r,
        )
        self.breaker_transitions = Counter(
            "thrifty_circuit_transitions_total",
            "Circuit breaker transitions per deployment and new state.",
            ("deployment", "state"),
            registry=r,
        )
        self.route_strong_share = Gauge(
            "thrifty_route_strong_share",
            "Realised share of route-group requests sent to the large tier (running window).",
            ("group",),
            registry=r,
        )
        self.route_target_share = Gauge(
            "thrifty_route_target_share",
            "The configured target share of large-tier calls (when the group has one).",
            ("group",),
            registry=r,
        )
        self.in_flight = Gauge(
            "thrifty_requests_in_flight", "Requests being processed.", registry=r
        )
        self._children: dict[tuple[object, ...], object] = {}

    def child(self, metric: object, *labels: str) -> object:
        key = (id(metric), *labels)
        c = self._children.get(key)
        if c is None:
            c = metric.labels(*labels)  # type: ignore[attr-defined]
            self._children[key] = c
        return c

    def inc(self, metric: Counter, value: float, *labels: str) -> None:
        self.child(metric, *labels).inc(value)  # type: ignore[attr-defined]

    def observe(self, metric: Histogram, value: float, *labels: str) -> None:
        self.child(metric, *labels).observe(value)  # type: ignore[attr-defined]

    def set_breaker(self, deployment: str, state: str) -> None:
        value = {"closed": 0, "half_open": 1, "open": 2}[state]
        self.breaker_state.labels(deployment).set(value)
        self.breaker_transitions.labels(deployment, state).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
