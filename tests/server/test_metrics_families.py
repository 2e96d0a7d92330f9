"""The hot metric families: the exposition prometheus_client's own types would give."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families

from thrifty.metrics import Metrics


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_histogram_matches_prometheus_client() -> None:
    m = Metrics()
    ref_registry = CollectorRegistry()
    ref = Histogram(
        "ref_seconds", "ref", ("endpoint", "model"), buckets=m.latency.bounds, registry=ref_registry
    )
    values = [0.0, 0.005, 0.0051, 0.3, 1, 120, 121, 1e9]  # on a bound, just above, beyond all
    for v in values:
        m.latency.observe(("chat", "a"), v)
        ref.labels("chat", "a").observe(v)
    from prometheus_client import generate_latest

    ours = m.render().decode()
    theirs = generate_latest(ref_registry).decode()
    for suffix in ("_bucket", "_count", "_sum"):
        assert samples(ours, "thrifty_request_latency_seconds" + suffix) == samples(
            theirs, "ref_seconds" + suffix
        )


def test_counters_sum_per_label_set_and_refuse_negative() -> None:
    m = Metrics()
    m.tokens.inc(("gpt-4o", "prompt"), 10)
    m.tokens.inc(("gpt-4o", "prompt"), 5)
    m.tokens.inc(("gpt-4o", "completion"), 7)
    text = m.render().decode()
    assert samples(text, "thrifty_tokens_total") == {
        (("kind", "prompt"), ("model", "gpt-4o")): 15.0,
        (("kind", "completion"), ("model", "gpt-4o")): 7.0,
    }
    assert m.tokens.value("gpt-4o", "prompt") == 15.0
    with pytest.raises(ValueError):
        m.tokens.inc(("gpt-4o", "prompt"), -1)
