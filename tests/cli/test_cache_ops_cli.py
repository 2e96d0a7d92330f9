"""`thrifty cache warm|invalidate|stats` on a config's shared tiers, and through a running
gateway's admin API."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from thrifty.cli import cache_ops

runner = CliRunner()


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    cache_ops.register(app)
    return app


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 't.db'}'}}\n"
        f"ledger: {{spill_path: '{tmp_path / 'spill.jsonl'}'}}\n"
        f"cache: {{disk_path: '{tmp_path / 'cache'}'}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}, "
        "{name: text-embedding-3-small, mode: embedding, provider: fake}]\n"
    )
    return path


def test_warm_then_stats_then_invalidate(app: typer.Typer, cfg: Path, tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    lines = [
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "faq one"}]},
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "faq two"}],
            "stream": True,
        },
        {"model": "text-embedding-3-small", "input": ["a", "b"]},
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "hot"}],
            "temperature": 2,
        },
        {"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    ]
    requests.write_bytes(b"\n".join(orjson.dumps(x) for x in lines))
    result = runner.invoke(app, ["warm", str(requests), "--tenant", "acme", "-c", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "stored: 3" in result.output and "not storable: 1" in result.output
    assert "errors: 1" in result.output
    again = runner.invoke(app, ["warm", str(requests), "--tenant", "acme", "-c", str(cfg)])
    assert "already cached: 3" in again.output
    stats = runner.invoke(app, ["stats", "-c", str(cfg)])
    assert stats.exit_code == 0 and "disk" in stats.output
    gone = runner.invoke(app, ["invalidate", "--tenant", "acme", "-c", str(cfg)])
    assert gone.exit_code == 0 and "invalidated 4 entries" in gone.output
    assert runner.invoke(app, ["invalidate", "-c", str(cfg)]).exit_code == 2
    after = runner.invoke(app, ["warm", str(requests), "--tenant", "acme", "-c", str(cfg)])
    assert "already cached: 0" in after.output
