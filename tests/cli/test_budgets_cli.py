"""``thrifty budgets``: definitions in the configured database (SQLite in tmp_path), config
budgets overridden by stored ones, the change log, and counters on the real Redis."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import thrifty.cli.budgets as budgets_cli
from tests.redisx import redis_prefix, redis_url
from thrifty.budgets import BudgetsConfig, BudgetSpec, RedisBudgetBackend, period_window
from thrifty.cli.budgets import app
from thrifty.config import Config

__all__ = ["redis_prefix"]

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), terminal_width=240)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 'thrifty.db'}'}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}]\n" + extra
    )
    return cfg


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("THRIFTY_CONFIG", str(write_config(tmp_path)))
    monkeypatch.delenv("THRIFTY_ADMIN_KEY", raising=False)
    return tmp_path


def use_budgets_config(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> None:
    """Stand in for the config's ``budgets:`` section."""
    section = BudgetsConfig.model_validate(kw)
    monkeypatch.setattr(budgets_cli, "budgets_config", lambda cfg: section)


def test_set_list_update_delete_and_the_change_log(env: Path) -> None:
    assert "no budgets" in invoke("list").output
    r = invoke("set", "acme-monthly", "--subject", "acme", "--limit-usd", "100")
    assert r.exit_code == 0, r.output
    assert "created budget acme-monthly" in r.output
    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert "acme-monthly" in listed.output and "$100.0000" in listed.output
    assert "db" in listed.output and "memory backend" in listed.output
    r = invoke(
        "set", "acme-monthly", "--subject", "acme", "--limit-usd", "250",
        "--limit-tokens", "5000000", "--policy", "degrade", "--timezone", "Europe/Paris",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "updated budget acme-monthly" in r.output
    assert "limit_usd: 100.0 → 250.0" in r.output and "policy: reject → degrade" in r.output
    r = invoke("set", "team-x", "--scope", "tag", "--subject", "team=x", "--limit-tokens", "10")
    assert r.exit_code == 0, r.output
    log = invoke("changes")
    assert log.exit_code == 0, log.output
    assert log.output.count("cli:") == 3
    assert "create" in log.output and "update" in log.output
    only = invoke("changes", "acme-monthly", "-n", "1")
    assert "update" in only.output and "team-x" not in only.output
    r = invoke("delete", "acme-monthly")
    assert r.exit_code == 0 and "deleted budget acme-monthly" in r.output
    assert "acme-monthly" not in invoke("list").output
    assert "delete" in invoke("changes", "acme-monthly").output
    missing = invoke("delete", "acme-monthly")
    assert missing.exit_code == 1 and "no stored budget" in missing.output


def test_invalid_budgets_are_refused_naming_the_field(env: Path) -> None:
    r = invoke("set", "b1", "--subject", "acme")
    assert r.exit_code == 2 and "limit_usd and/or limit_tokens" in r.output
    r = invoke("set", "b1", "--subject", "acme", "--limit-usd", "-1")
    assert r.exit_code == 2 and "limit_usd" in r.output
    r = invoke("set", "b1", "--subject", "acme", "--limit-usd", "1", "--period", "yearly")
    assert r.exit_code == 2 and "period" in r.output
    r = invoke("set", "b1", "--subject", "acme", "--limit-usd", "1", "--timezone", "Mars/Base")
    assert r.exit_code == 2 and "Mars/Base" in r.output
    assert invoke("changes").output.count("b1") == 0


def test_reset_on_the_memory_backend_needs_a_running_gateway(env: Path) -> None:
    invoke("set", "b1", "--subject", "acme", "--limit-usd", "1")
    r = invoke("reset", "b1")
    assert r.exit_code == 1 and "--url" in r.output
    r = invoke("changes", "--url", "http://127.0.0.1:9")
    assert r.exit_code == 2 and "budget ID" in r.output


def test_config_budgets_are_the_base_and_stored_ones_override(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_budgets_config(
        monkeypatch,
        budgets=[{"id": "org", "scope": "org", "limit_usd": 1000, "period": "daily"}],
    )
    listed = invoke("list")
    assert "org" in listed.output and "config" in listed.output and "$1,000.0000" in listed.output
    r = invoke("delete", "org")
    assert r.exit_code == 1 and "defined in the config" in r.output
    r = invoke("set", "org", "--scope", "org", "--limit-usd", "10", "--period", "daily")
    assert r.exit_code == 0 and "updated budget org: limit_usd: 1000.0 → 10.0" in r.output
    listed = invoke("list")
    assert "db_override" in listed.output and "$10.0000" in listed.output
    r = invoke("delete", "org")
    assert r.exit_code == 0 and "applies again" in r.output
    assert "$1,000.0000" in invoke("list").output
    actions = invoke("changes", "org").output
    assert "update" in actions and "delete" in actions


def test_list_and_reset_counters_on_redis(
    tmp_path: Path, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path, f"redis: {{url: '{redis_url()}', prefix: '{redis_prefix}'}}\n")
    monkeypatch.setenv("THRIFTY_CONFIG", str(cfg))
    use_budgets_config(monkeypatch, backend="redis")
    r = invoke("set", "acme", "--subject", "acme", "--limit-usd", "10")
    assert r.exit_code == 0, r.output
    spec = BudgetSpec(id="acme", scope="tenant", subject="acme", limit_usd=10)

    async def spend() -> None:
        from datetime import UTC, datetime

        backend = RedisBudgetBackend.from_url(redis_url(), redis_prefix, timeout_s=2.0)
        try:
            window = period_window(spec, datetime.now(UTC)).window_id
            assert (await backend.reserve("r1", [(spec, window)], 4.0, 100, 60)).ok
            await backend.settle("r1", 2.5, 80)
        finally:
            await backend.aclose()

    asyncio.run(spend())
    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert "$2.5000" in listed.output and "$7.5000" in listed.output and "25.0%" in listed.output
    assert "memory backend" not in listed.output
    r = invoke("reset", "acme")
    assert r.exit_code == 0, r.output
    assert "spent $2.5000 / 80 tokens → 0" in r.output
    assert "$0.0000" in invoke("list").output
    log = invoke("changes", "acme").output
    assert "reset" in log and f"cli:{getpass.getuser()}" in log
    assert "spent $2.5000 → 0" in log


def test_url_mode_calls_the_admin_api(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, Any]] = []
    spec = BudgetSpec(id="a/b", scope="org", limit_usd=5)
    view = {
        **spec.model_dump(mode="json"),
        "source": "db",
        "window": {"id": "2026-11", "start": "x", "end": "y"},
        "spent_usd": 1.0,
        "reserved_usd": 0.5,
        "spent_tokens": 0,
        "reserved_tokens": 0,
        "remaining_usd": 3.5,
        "remaining_tokens": None,
        "percent_used": 20.0,
    }
    answers = {
        "GET": {"data": [view]},
        "PUT": {"old": None, "new": view},
        "DELETE": {"deleted": "a/b", "reverted_to": None},
        "POST": {
            "window": {"id": "2026-11"},
            "before": {"spent_usd": 1.0, "spent_tokens": 3},
        },
    }

    def fake_admin(url: str, key: str | None, method: str, path: str, body: Any = None) -> Any:
        calls.append((method, path, body))
        return answers[method]

    monkeypatch.setattr(budgets_cli, "_admin", fake_admin)
    u = ("--url", "http://gw:4000", "--admin-key", "k")
    assert "20.0%" in invoke("list", *u).output
    assert "created" in invoke("set", "a/b", "--scope", "org", "--limit-usd", "5", *u).output
    assert "deleted" in invoke("delete", "a/b", *u).output
    assert "→ 0" in invoke("reset", "a/b", *u).output
    assert [(m, p) for m, p, _ in calls] == [
        ("GET", "/admin/budgets"),
        ("PUT", "/admin/budgets/a/b"),
        ("DELETE", "/admin/budgets/a/b"),
        ("POST", "/admin/budgets/a/b/reset"),
    ]
    assert calls[1][2]["limit_usd"] == 5.0


def test_budgets_config_defaults_when_the_config_has_no_section() -> None:
    cfg = Config()
    assert isinstance(budgets_cli.budgets_config(cfg), BudgetsConfig)
