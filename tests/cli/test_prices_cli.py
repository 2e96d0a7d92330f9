"""``thrifty prices``: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from thrifty.cli.prices import app, usd

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default catalog_file is relative (./thrifty-data/prices.yaml): keep it in tmp_path.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("THRIFTY_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "220")


def _invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args))


def _config(tmp_path: Path, **pricing: object) -> Path:
    path = tmp_path / "thrifty.yaml"
    path.write_text(yaml.safe_dump({"pricing": pricing}), encoding="utf-8")
    return path


def test_usd_formatting() -> None:
    assert usd(0) == "$0.00"
    assert usd(0.000435) == "$0.000435"
    assert usd(13.5) == "$13.50"
    assert usd(1234.5) == "$1,234.50"
    assert usd(None) == "—"


def test_list_json_has_the_whole_catalog() -> None:
    result = _invoke("list", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) >= 60
    assert {"id", "provider", "input", "output", "source", "as_of"} <= set(rows[0])


def test_list_filters_by_provider() -> None:
    result = _invoke("list", "--provider", "groq")
    assert result.exit_code == 0, result.output
    assert "llama-3.3-70b-versatile" in result.stdout
    assert "gpt-4o-mini" not in result.stdout
    rows = json.loads(_invoke("list", "--provider", "anthropic", "--json").stdout)
    assert rows and {r["provider"] for r in rows} == {"anthropic"}


def test_list_unknown_provider_exits_1() -> None:
    result = _invoke("list", "--provider", "nobody")
    assert result.exit_code == 1
    assert "no models for provider 'nobody'" in result.output


def test_cost_prints_the_exact_breakdown() -> None:
    result = _invoke("cost", "gpt-4o-mini", "--input", "1000", "--output", "500", "--cached", "200")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "total: $0.000435" in out
    assert "$0.00012" in out and "$0.000015" in out and "$0.0003" in out


def test_cost_with_cache_write_and_long_context_tier() -> None:
    result = _invoke(
        "cost",
        "claude-sonnet-4-5-20250929",
        "--input",
        "250000",
        "--output",
        "1000",
        "--cached",
        "100000",
        "--cache-write",
        "20000",
    )
    assert result.exit_code == 0, result.output
    assert "claude-sonnet-4-5" in result.stdout
    assert "long-context rates" in result.stdout
    assert "total: $1.0125" in result.stdout


def test_cost_of_an_unknown_model_exits_1() -> None:
    result = _invoke("cost", "gpt-4o-mini-audio-preview", "--input", "10", "--output", "10")
    assert result.exit_code == 1
    assert "no price for 'gpt-4o-mini-audio-preview'" in result.output
    assert "$" not in result.stdout


def test_cost_suggests_close_names() -> None:
    result = _invoke("cost", "gpt-4o-mino", "--input", "10", "--output", "10")
    assert result.exit_code == 1
    assert "did you mean" in result.output and "gpt-4o-mini" in result.output


def test_cost_rejects_inconsistent_tokens() -> None:
    result = _invoke("cost", "gpt-4o-mini", "--input", "10", "--output", "1", "--cached", "20")
    assert result.exit_code == 2
    assert "cached_tokens" in result.output


def test_compare_orders_cheapest_first() -> None:
    result = _invoke(
        "compare", "claude-opus-4-1", "gpt-4o-mini", "gemini-2.5-flash", "--input", "10000",
        "--output", "1000",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("gpt-4o-mini") < out.index("gemini-2.5-flash") < out.index("claude-opus-4-1")


def test_compare_with_an_unpriced_model_shows_it_and_exits_1() -> None:
    result = _invoke("compare", "gpt-4o-mini", "mystery-model", "--input", "100", "--output", "10")
    assert result.exit_code == 1
    assert "gpt-4o-mini" in result.stdout
    assert "unpriced" in result.stdout
    assert "no price for 'mystery-model'" in result.output


def test_cheapest() -> None:
    result = _invoke(
        "cheapest", "gpt-4o", "gpt-4.1-nano", "claude-haiku-4-5", "--input", "5000", "--output",
        "500",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "cheapest: gpt-4.1-nano at $0.0007 per request" in result.stdout


def test_cheapest_refuses_when_a_candidate_is_unpriced() -> None:
    result = _invoke("cheapest", "gpt-4o", "mystery-model", "--input", "1", "--output", "1")
    assert result.exit_code == 1
    assert "mystery-model" in result.output


def test_estimate_prints_daily_and_monthly() -> None:
    result = _invoke(
        "estimate", "gpt-4o-mini", "--requests-per-day", "1000", "--input", "1000", "--output",
        "500",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per request: $0.00045" in result.stdout
    assert "daily: $0.45" in result.stdout
    assert "monthly (30 days): $13.50" in result.stdout
    week = _invoke(
        "estimate", "gpt-4o-mini", "-r", "1000", "-i", "1000", "-o", "500", "--days", "7"
    )
    assert "monthly (7 days): $3.15" in week.stdout


def test_estimate_unknown_model_exits_1() -> None:
    result = _invoke("estimate", "nope", "-r", "1", "-i", "1", "-o", "1")
    assert result.exit_code == 1
    assert "no price for 'nope'" in result.output


def test_config_overrides_are_used(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        catalog_file=None,
        overrides={"my-llama": {"provider": "vllm", "input": 0, "output": 0}},
    )
    result = _invoke(
        "cost", "my-llama", "--input", "1000", "--output", "1000", "--config", str(config)
    )
    assert result.exit_code == 0, result.output
    assert "total: $0.00" in result.stdout
    assert _invoke("cost", "my-llama", "--input", "1", "--output", "1").exit_code == 1


def test_a_missing_config_file_exits_1(tmp_path: Path) -> None:
    result = _invoke("list", "--config", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 1
    assert "cannot read config file" in result.output


def test_update_imports_into_the_configured_catalog_file(tmp_path: Path) -> None:
    target = tmp_path / "data" / "prices.yaml"
    config = _config(tmp_path, catalog_file=str(target))
    new = tmp_path / "new.yaml"
    new.write_text(
        yaml.safe_dump(
            {
                "version": 2,
                "models": [
                    {"id": "gpt-4o-mini", "provider": "openai", "input": 0.1, "output": 0.4},
                    {"id": "brand-new", "provider": "acme", "input": 1, "output": 2},
                ],
            }
        ),
        encoding="utf-8",
    )
    result = _invoke("update", str(new), "--config", str(config))
    assert result.exit_code == 0, result.output
    assert "imported 2 models" in result.stdout
    assert target.is_file()
    after = _invoke("cost", "brand-new", "--input", "1000000", "--output", "0", "-c", str(config))
    assert after.exit_code == 0, after.output
    assert "total: $1.00" in after.stdout


def test_update_uses_the_default_catalog_file_without_config(tmp_path: Path) -> None:
    new = tmp_path / "new.yaml"
    new.write_text(
        yaml.safe_dump({"models": [{"id": "a", "provider": "x", "input": 1, "output": 1}]}),
        encoding="utf-8",
    )
    result = _invoke("update", str(new))
    assert result.exit_code == 0, result.output
    assert "imported 1 model " in result.stdout
    assert (tmp_path / "thrifty-data" / "prices.yaml").is_file()


def test_update_with_a_bad_entry_exits_1_and_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "prices.yaml"
    config = _config(tmp_path, catalog_file=str(target))
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"id": "fine", "provider": "x", "input": 1, "output": 1},
                    {"id": "broken", "provider": "x", "input": "lots", "output": 1},
                ]
            }
        ),
        encoding="utf-8",
    )
    result = _invoke("update", str(bad), "--config", str(config))
    assert result.exit_code == 1
    assert "models[1] (broken): input" in result.output
    assert not target.exists()
