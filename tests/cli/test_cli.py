"""The ``thrifty`` CLI: keys, db, demo."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from thrifty.cli.main import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        f"database: {{url: 'sqlite:///{tmp_path / 'keys.db'}'}}\n"
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}]\n"
    )
    monkeypatch.setenv("THRIFTY_CONFIG", str(cfg))
    return tmp_path


def test_keys_create_list_revoke(env: Path) -> None:
    result = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--user",
            "al",
            "--tier",
            "premium",
            "--tags",
            "team=x",
        ],
    )
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("tk-")
    listed = runner.invoke(app, ["keys", "list"])
    assert "acme" in listed.output and "premium" in listed.output and key not in listed.output
    key_id = result.output.split()[1]
    revoked = runner.invoke(app, ["keys", "revoke", key_id])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert "revoked" in runner.invoke(app, ["keys", "list"]).output
    assert runner.invoke(app, ["keys", "revoke", "key_missing"]).exit_code == 1
    assert runner.invoke(app, ["keys", "create", "--tenant", "a", "--tier", "gold"]).exit_code == 1


def test_bad_config_exits_with_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: {port: nope}\n")
    result = runner.invoke(app, ["keys", "list", "--config", str(bad)])
    assert result.exit_code == 2
    assert "server.port" in result.output


def test_db_upgrade(env: Path) -> None:
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["db", "current"]).output.strip() != "(empty database)"


def test_demo_runs_and_summarises(tmp_path: Path) -> None:
    result = runner.invoke(app, ["demo", "--requests", "40", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "FAKE PROVIDERS" in result.output
    assert "Requests by tenant" in result.output
    assert "Savings by lever" in result.output
    assert "acme" in result.output and "globex" in result.output


def test_the_demo_workload_exercises_compression() -> None:
    """Pasted pretty-printed records are in the mix, and lossless compression shrinks them: the
    demo's compression lever has something to save."""
    from thrifty.cli.demo_workload import build_workload
    from thrifty.tokens.optimize.compress import compress_lossless

    workload = build_workload(300, ["acme", "globex"], seed=7)
    documents = [r for r in workload if r.kind == "document"]
    assert 10 <= len(documents) <= 60
    for req in documents[:5]:
        _, result = compress_lossless(req.body)
        assert result.tokens_after < result.tokens_before
