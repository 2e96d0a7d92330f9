"""Usage reports: any period and grouping; totals equal the sum of their rows."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from tests.support import ADMIN_KEY, chat_body
from thrifty.cli.main import app as cli
from thrifty.errors import InvalidRequestError
from thrifty.ledger.periods import parse_period
from thrifty.server.app import ThriftyApp
from thrifty.testing import FakeOpenAIServer

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


async def _traffic(app: ThriftyApp, client: httpx.AsyncClient, fake: FakeOpenAIServer) -> None:
    keys = {}
    for tenant, user in (("acme", "al"), ("acme", "bo"), ("globex", "cy")):
        keys[(tenant, user)], _ = await app.gateway.keys.create(tenant, user=user)
    plan = [
        (("acme", "al"), "gpt-4o-mini", "faq", False),
        (("acme", "al"), "gpt-4o", "faq", True),
        (("acme", "bo"), "gpt-4o", "search", False),
        (("globex", "cy"), "gpt-4o-mini", "search", False),
        (("globex", "cy"), "gpt-4o-mini", "faq", True),
        (("globex", "cy"), "gpt-4o", "faq", False),
    ]
    for i, (who, model, use_case, stream) in enumerate(plan):
        await client.post(
            "/v1/chat/completions",
            json=chat_body(f"question {i}", model=model, stream=stream),
            headers={
                "authorization": f"Bearer {keys[who]}",
                "x-thrifty-tags": f"use_case={use_case}",
            },
        )
    fake.set_fault("status=500")
    await client.post(
        "/v1/chat/completions",
        json=chat_body("fails"),
        headers={"authorization": f"Bearer {keys[('acme', 'al')]}"},
    )
    fake.set_fault(None)


@pytest.mark.parametrize(
    "group_by",
    ["tenant", "user", "model", "tag:use_case", "tenant,model", "day", "provider", "key"],
)
async def test_totals_equal_sum_of_rows(
    app: ThriftyApp, client: httpx.AsyncClient, fake: FakeOpenAIServer, group_by: str
) -> None:
    await _traffic(app, client, fake)
    resp = await client.get(f"/admin/usage?period=24h&group_by={group_by}", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    rows, total = body["data"], body["total"]
    assert total["requests"] == 7 and total["errors"] == 1
    for field in ("requests", "errors", "prompt_tokens", "completion_tokens", "unpriced_requests"):
        assert sum(r[field] for r in rows) == total[field], field
    for field in ("cost_usd", "baseline_cost_usd", "saved_usd"):
        assert sum(r[field] for r in rows) == pytest.approx(total[field], abs=1e-9), field
    assert total["cost_usd"] > 0
    assert total["error_rate"] == pytest.approx(1 / 7, abs=1e-6)
    assert total["p95_latency_ms"] >= total["avg_latency_ms"] * 0 and total["p95_latency_ms"] > 0
    assert total["cache_hit_rate"] == 0


async def test_grouping_and_filters(
    app: ThriftyApp, client: httpx.AsyncClient, fake: FakeOpenAIServer
) -> None:
    await _traffic(app, client, fake)
    by_tag = (await client.get("/admin/usage?group_by=tag:use_case", headers=ADMIN)).json()
    counts = {r["tag:use_case"]: r["requests"] for r in by_tag["data"]}
    assert counts == {"faq": 4, "search": 2, None: 1}
    acme = (await client.get("/admin/usage?group_by=user&tenant=acme", headers=ADMIN)).json()
    assert {r["user"]: r["requests"] for r in acme["data"]} == {"al": 3, "bo": 1}
    old = (await client.get("/admin/usage?from=2020-01-01&to=2020-02-01", headers=ADMIN)).json()
    assert old["data"] == [] and old["total"]["requests"] == 0
    bad = await client.get("/admin/usage?group_by=colour", headers=ADMIN)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "group_by"
    assert (await client.get("/admin/usage?period=soon", headers=ADMIN)).status_code == 400
    assert (await client.get("/admin/usage")).status_code == 401


async def test_request_detail(
    app: ThriftyApp, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    resp = await client.post("/v1/chat/completions", json=chat_body(), headers=auth)
    rid = resp.headers["x-thrifty-request-id"]
    row = (await client.get(f"/admin/requests/{rid}", headers=ADMIN)).json()
    assert row["request_id"] == rid and row["status"] == 200
    assert (await client.get("/admin/requests/req_nope", headers=ADMIN)).status_code == 404


def test_periods() -> None:
    now = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
    assert parse_period("24h", now=now).start == datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    assert parse_period("7d", now=now).start.day == 15
    month = parse_period("month", now=now)
    assert month.start == datetime(2026, 11, 1, tzinfo=UTC) and month.end == now
    dec = parse_period("2026-12")
    assert (dec.start, dec.end) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    for bad in ("2026-13", "forever", "7x"):
        with pytest.raises(InvalidRequestError):
            parse_period(bad)
    with pytest.raises(InvalidRequestError):
        parse_period(start="2026-02-01", end="2026-01-01")


async def test_cli_reports(
    app: ThriftyApp,
    client: httpx.AsyncClient,
    fake: FakeOpenAIServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _traffic(app, client, fake)
    await app.gateway.ledger.flush()
    cfg = tmp_path / "cli.yaml"
    cfg.write_text(f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n")
    runner = CliRunner()

    async def invoke(*args: str):  # the CLI runs its own event loop: keep it off this one
        return await asyncio.to_thread(runner.invoke, cli, list(args))

    table = await invoke("report", "usage", "--by", "tenant", "-c", str(cfg))
    assert table.exit_code == 0, table.output
    assert "acme" in table.output and "globex" in table.output and "TOTAL" in table.output
    as_json = await invoke("report", "usage", "--by", "model", "-f", "json", "-c", str(cfg))
    data = orjson.loads(as_json.output)
    assert sum(r["requests"] for r in data["data"]) == data["total"]["requests"] == 7
    month = datetime.now(UTC).strftime("%Y-%m")
    monthly = await invoke("report", "monthly", "--month", month, "-c", str(cfg))
    assert monthly.exit_code == 0, monthly.output
    lines = list(csv.DictReader(io.StringIO(monthly.output)))
    assert lines[-1]["tenant"] == "TOTAL"
    body = lines[:-1]
    assert {(r["tenant"], r["model"]) for r in body} >= {
        ("acme", "gpt-4o"),
        ("globex", "gpt-4o-mini"),
    }
    assert sum(float(r["cost_usd"]) for r in body) == pytest.approx(float(lines[-1]["cost_usd"]))
    bad = await invoke("report", "usage", "--by", "nope", "-c", str(cfg))
    assert bad.exit_code == 1 and "cannot group by" in bad.output
