"""Trade-off analysis over the ledger: through the admin API and `thrifty analyze tradeoffs`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
from typer.testing import CliRunner

from tests.support import ADMIN_KEY, chat_body, gateway_config
from thrifty.cli.main import app as cli
from thrifty.server.app import create_app
from thrifty.testing import FakeOpenAIServer


async def test_tradeoffs_recommend_the_cheaper_model(
    fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    app = create_app(gateway_config(fake.base_url, tmp_path))
    async with app.gateway as gw:
        key, _ = await gw.keys.create("acme")
        auth = {"authorization": f"Bearer {key}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for i in range(25):
                for model in ("gpt-4o", "gpt-4o-mini"):
                    await c.post(
                        "/v1/chat/completions",
                        json=chat_body(f"easy {i}", model=model),
                        headers=auth,
                    )
            resp = await c.get(
                "/admin/analysis/tradeoffs?period=1h",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
            )
        data = resp.json()
        assert data["best_by_class"]["simple"] == "gpt-4o-mini"
        rec = data["recommendations"][0]
        assert (rec["from_model"], rec["to_model"]) == ("gpt-4o", "gpt-4o-mini")
        assert "gpt-4o-mini" in rec["text"] and rec["saving_usd"] > 0
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["analyze", "tradeoffs", "--period", "1h", "--json", "-c", str(cfg)],
    )
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["best_by_class"]["simple"] == "gpt-4o-mini"
