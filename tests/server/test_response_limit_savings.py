"""The response-limit lever's saving, measured on its holdout: held-out requests go uncapped and
give the counterfactual output lengths; a capped answer the cap cut books the mean overshoot of
those lengths at the output price, one that ended on its own books 0, and nothing is booked (the
row says so) until the holdout has enough samples."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import chat_body, gateway_config
from thrifty.pipeline.context import RequestContext
from thrifty.pipeline.response_limits import CapSavings
from thrifty.pricing import Usage
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer

LIMITS = {"response_limits": True, "response_limits_holdout": 0}


def ask(n_tokens: int, i: int) -> dict[str, Any]:
    return chat_body(f"Tell me story number {i}. [fake:tokens={n_tokens}]")


async def test_capped_answers_book_the_holdouts_mean_overshoot(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    config = gateway_config(fake.base_url, tmp_path, optimize=LIMITS, cache={"enabled": False})
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme", tier="standard")  # simple x standard: cap 150
        auth = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:

            async def row(body: dict[str, Any]) -> dict[str, Any]:
                r = await c.post("/v1/chat/completions", json=body, headers=auth)
                assert r.status_code == 200, r.text
                found = await gw.request_record(r.headers["x-thrifty-request-id"])
                assert found is not None
                return found

            # No holdout samples yet: the cut answer's saving is unmeasured, not guessed.
            first = await row(ask(400, 0))
            assert fake.requests[-1]["body"]["max_tokens"] == 150
            assert first["finish_reason"] == "length" and first["completion_tokens"] == 150
            assert "max_tokens_saving_unmeasured" in first["flags"]
            assert first["saved_max_tokens_usd"] == 0

            gw.cap_savings.holdout = 1.0  # every eligible request held out (uncapped)
            for i in range(20):
                held = await row(ask(200 + 10 * i, i + 1))
                assert "max_tokens" not in fake.requests[-1]["body"]
                assert "max_tokens_holdout" in held["flags"]
                assert held["completion_tokens"] == 200 + 10 * i
                assert held["saved_max_tokens_usd"] == 0
            assert len(gw.cap_savings.samples("gpt-4o-mini", "simple")) == 20

            gw.cap_savings.holdout = 0.0
            cut = await row(ask(400, 99))
            assert fake.requests[-1]["body"]["max_tokens"] == 150
            assert "max_tokens_cap:150" in cut["flags"]
            # mean(200, 210, …, 390) - 150 = 145 output tokens not written
            price = gw.costing.price("gpt-4o-mini", "gpt-4o-mini")
            assert price is not None
            expected = gw.costing.usd(price, Usage(completion_tokens=145))
            assert cut["saved_max_tokens_usd"] == pytest.approx(expected)
            assert cut["baseline_cost_usd"] == pytest.approx(cut["cost_usd"] + expected)
            assert cut["saved_usd"] == pytest.approx(expected)

            short = await row(ask(40, 100))  # ended before the cap: the cap changed nothing
            assert short["finish_reason"] == "stop" and "max_tokens_cap:150" in short["flags"]
            assert short["saved_max_tokens_usd"] == 0
            assert "max_tokens_saving_unmeasured" not in short["flags"]

            client_set = await row({**ask(400, 101), "max_tokens": 30})  # never overridden
            assert fake.requests[-1]["body"]["max_tokens"] == 30
            assert not any(f.startswith("max_tokens_") for f in client_set["flags"])
            assert client_set["saved_max_tokens_usd"] == 0


def test_the_holdout_share_and_the_estimate() -> None:
    savings = CapSavings(0.2, rng=random.Random(7), min_samples=4, min_tail=2)
    held = sum(savings.hold_out() for _ in range(10_000))
    assert 1_800 < held < 2_200
    assert CapSavings(0.0).hold_out() is False
    assert savings.saved_tokens("m", "simple", 100, "length") is None  # no samples
    for n in (50, 90, 120, 180):
        savings.add("m", "simple", n)
    assert savings.saved_tokens("m", "simple", 100, "stop") == 0.0
    assert savings.saved_tokens("m", "simple", 100, "length") == pytest.approx((20 + 80) / 2)
    assert savings.saved_tokens("m", "simple", 150, "length") is None  # one sample past 150
    assert savings.saved_tokens("m", "complex", 100, "length") is None  # another class
    assert savings.saved_tokens("other", "simple", 100, "length") is None  # another model


def test_the_window_keeps_the_latest_samples() -> None:
    savings = CapSavings(0.5, window=3)
    for n in range(10):
        savings.add("m", "simple", n)
    assert savings.samples("m", "simple") == [7, 8, 9]


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_holdout_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="holdout"):
        CapSavings(bad)


def test_only_answered_held_out_requests_are_samples() -> None:
    from thrifty.errors import UpstreamStatusError
    from thrifty.keys.principal import Principal
    from thrifty.providers.base import Deployment

    savings = CapSavings(1.0)

    def ctx(**kw: Any) -> RequestContext:
        c = RequestContext("r", "chat", Principal(tenant="t"), "m", {})
        c.deployment = Deployment("p", "m-up", "m")
        c.usage_parsed = Usage(10, 300)
        c.cache_status = "miss"
        for k, v in kw.items():
            setattr(c, k, v)
        return c

    savings.record(ctx(response_limit=("simple", None)))
    savings.record(ctx(response_limit=("simple", 150)))  # capped: not a sample
    savings.record(ctx(response_limit=None))  # the lever did not act
    savings.record(ctx(response_limit=("simple", None), cache_status="hit"))
    savings.record(
        ctx(response_limit=("simple", None), error=UpstreamStatusError("x", upstream_status=500))
    )
    assert savings.samples("m", "simple") == [300]
