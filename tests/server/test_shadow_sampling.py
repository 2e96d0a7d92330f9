"""Shadow sampling: cheap-routed requests are also answered by the strong model in the
background (costed, tagged shadow_of, capped per day), and the ledger becomes a router
training set."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import httpx
from typer.testing import CliRunner

from tests.support import chat_body, gateway_config
from thrifty.cli.main import app as cli
from thrifty.ledger.periods import parse_period
from thrifty.routing.ledger_dataset import ledger_rows
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


def routing(rate: float, cap: float) -> dict:
    return {
        "groups": [
            {
                "name": "auto",
                "scorer": "length",
                "tiers": {"small": ["gpt-4o-mini"], "large": ["gpt-4o"]},
                "shadow": {"rate": rate, "max_usd_per_day": cap},
            }
        ]
    }


async def test_shadow_rows_and_training_set(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(
        fake.base_url, tmp_path, routing=routing(1.0, 10.0), ledger={"store_content": True}
    )
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            first = None
            for i in range(4):
                r = await c.post(
                    "/v1/chat/completions",
                    json=chat_body(f"capital {i}?", model="auto"),
                    headers=auth,
                )
                assert r.headers["x-thrifty-model"] == "gpt-4o-mini"
                first = first or r.headers["x-thrifty-request-id"]
            await gw.shadows.flush()
            await c.post("/v1/feedback", json={"request_id": first, "score": 1.0}, headers=auth)
        await gw.ledger.flush()
        rows = await ledger_rows(gw.engine, parse_period("1h"))
        assert len(rows) == 4
        assert all(r["strong_correct"] == 1 for r in rows)
        rated = next(r for r in rows if r["prompt"] == "capital 0?")
        assert rated["cheap_correct"] == 1  # the client's rating wins over agreement
        _, total = await gw.usage("1h", [])
        assert total.requests == 8  # 4 answers + 4 costed shadow calls
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n")
    out = tmp_path / "router.npz"
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["router", "train", "--from-ledger", "--period", "1h", "-c", str(cfg), "--out", str(out)],
    )
    assert "4 labelled prompts from the ledger" in result.output
    with (tmp_path / "router.ledger.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 4


async def test_shadow_spend_is_capped(fake: FakeOpenAIServer, tmp_path: Path) -> None:
    config = gateway_config(fake.base_url, tmp_path, routing=routing(1.0, 0.0000001))
    app = create_app(config)
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for i in range(5):
                await c.post(
                    "/v1/chat/completions",
                    json=chat_body(f"q{i}", model="auto"),
                    headers={"authorization": f"Bearer {key}"},
                )
                await gw.shadows.flush()
        _, total = await gw.usage("1h", [])
        assert total.requests == 6  # one shadow call, then the day's cap is spent
