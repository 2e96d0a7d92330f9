"""Prometheus metrics, one registry per ``Gateway`` (no module-level globals).

The per-request families (requests, latency, time to first byte, tokens, cost, unpriced,
upstream errors) are plain dicts updated on the event loop — a dict update per counter, a
``bisect`` per histogram observation, no lock — and exported by a custom collector when
``/metrics`` is scraped (prometheus_client's own children take a lock and walk the buckets in
Python on every observation). The rarely-updated gauges and counters stay prometheus_client's.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

CONTENT_TYPE = CONTENT_TYPE_LATEST

Labels = tuple[str, ...]


class HotCounter:
    """A labelled counter updated on the event loop only; read by ``HotFamilies`` at scrape."""

    def __init__(self, name: str, documentation: str, labelnames: Labels) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self.values.get(labels, 0.0)

    def family(self) -> Metric:
        fam = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            fam.add_metric(list(labels), value)
        return fam


class HotHistogram:
    """A labelled histogram: per label set, a count per bucket (``+Inf`` last) and the sum."""

    def __init__(
        self, name: str, documentation: str, labelnames: Labels, buckets: tuple[float, ...]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, labelnames
        self.bounds = tuple(float(b) for b in buckets)
        self.states: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        state = self.states.get(labels)
        if state is None:
            state = self.states[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        state[0][bisect_left(self.bounds, value)] += 1  # the first bucket with value <= le
        state[1][0] += value

    def family(self) -> Metric:
        fam = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [*(floatToGoString(b) for b in self.bounds), "+Inf"]
        for labels, (counts, total) in list(self.states.items()):
            cumulative, running = [], 0
            for le, n in zip(les, list(counts), strict=True):
                running += n
                cumulative.append((le, running))
            fam.add_metric(list(labels), cumulative, total[0])
        return fam


class HotFamilies:
    """The collector that exports the hot families on scrape."""

    def __init__(self, families: list[HotCounter | HotHistogram]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.family()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = HotCounter(
            "thrifty_requests_total",
            "Requests by endpoint, requested model, served model and HTTP status.",
            ("endpoint", "model", "served_model", "status"),
        )
        self.latency = HotHistogram(
            "thrifty_request_latency_seconds",
            "End-to-end request latency seen by the gateway.",
            ("endpoint", "model"),
            _LATENCY_BUCKETS,
        )
        self.ttfb = HotHistogram(
            "thrifty_time_to_first_byte_seconds",
            "Time to the first byte of the answer (first chunk for streams).",
            ("endpoint", "model"),
            _LATENCY_BUCKETS,
        )
        self.tokens = HotCounter(
            "thrifty_tokens_total",
            "Tokens by served model and kind (prompt, completion, cached).",
            ("model", "kind"),
        )
        self.cost = HotCounter(
            "thrifty_cost_usd_total",
            "Spend in USD by served model and status.",
            ("model", "status"),
        )
        self.upstream_errors = HotCounter(
            "thrifty_upstream_errors_total",
            "Upstream failures by provider and error code.",
            ("provider", "code"),
        )
        self.unpriced = HotCounter(
            "thrifty_unpriced_requests_total",
            "Requests answered by a model with no known price (cost unknown, not zero).",
            ("model",),
        )
        r.register(
            HotFamilies(
                [
                    self.requests,
                    self.latency,
                    self.ttfb,
                    self.tokens,
                    self.cost,
                    self.upstream_errors,
                    self.unpriced,
                ]
            )
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

    def set_breaker(self, deployment: str, state: str) -> None:
        value = {"closed": 0, "half_open": 1, "open": 2}[state]
        self.breaker_state.labels(deployment).set(value)
        self.breaker_transitions.labels(deployment, state).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
