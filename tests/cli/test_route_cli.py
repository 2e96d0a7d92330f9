"""`thrifty route explain` shows the decision without calling a model."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from thrifty.cli.main import app

runner = CliRunner()


def test_route_explain(tmp_path: Path) -> None:
    cfg = tmp_path / "thrifty.yaml"
    cfg.write_text(
        "providers: {fake: {kind: fake}}\n"
        "models: [{name: gpt-4o-mini, provider: fake}, {name: gpt-4o, provider: fake}]\n"
        "routing:\n  groups:\n    - name: auto\n      scorer: length\n"
        "      tiers: {small: [gpt-4o-mini], large: [gpt-4o]}\n"
        "      thresholds: {medium: 0.5, large: 0.8}\n"
    )
    easy = runner.invoke(app, ["route", "explain", "hi", "--json", "-c", str(cfg)])
    assert easy.exit_code == 0, easy.output
    assert orjson.loads(easy.output)["model"] == "gpt-4o-mini"
    hard = runner.invoke(app, ["route", "explain", "word " * 3000, "-c", str(cfg)])
    assert hard.exit_code == 0 and "gpt-4o" in hard.output and "reason:" in hard.output
    assert (
        runner.invoke(app, ["route", "explain", "x", "--model", "nope", "-c", str(cfg)]).exit_code
        == 2
    )
