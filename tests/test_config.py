"""Config loading: validation messages name the key, ${ENV} interpolation, env/fake defaults."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import gateway_config
from thrifty.config import FAKE_SOURCE, Config, config_from_env, load_config
from thrifty.errors import ConfigError
from thrifty.gateway import Gateway

GOOD = """
server: {port: 4100, admin_key: "${ADMIN}"}
providers:
  openai: {kind: openai, api_key: "${OPENAI_KEY}", headers: {OpenAI-Project: p1}}
  azure:
    kind: azure
    base_url: https://res.openai.azure.com
    api_key: ${AZ_KEY:-az-default}
    api_version: "2024-10-21"
models:
  - {name: gpt-4o-mini, aliases: [mini], provider: openai, model: gpt-4o-mini-2024-07-18}
  - name: gpt-4o
    deployments:
      - {provider: azure, model: my-gpt4o}
      - {provider: openai, model: gpt-4o}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "thrifty.yaml"
    p.write_text(text)
    return p


def test_good_config_with_interpolation(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), env={"ADMIN": "adm", "OPENAI_KEY": "sk-1"})
    assert cfg.server.port == 4100 and cfg.server.admin_key == "adm"
    assert cfg.providers["openai"].api_key == "sk-1"
    assert cfg.providers["openai"].resolved_base_url() == "https://api.openai.com/v1"
    assert cfg.providers["azure"].api_key == "az-default"
    assert [d.provider for d in cfg.models[1].deployments] == ["azure", "openai"]
    assert cfg.models[0].aliases == ("mini",)


@pytest.mark.parametrize(
    ("text", "env", "needle"),
    [
        (GOOD, {"ADMIN": "a"}, "OPENAI_KEY is not set"),
        ("server: {port: high}", {}, "server.port"),
        ("server: {port: 99999}", {}, "server.port"),
        ("server: {prot: 1}", {}, "server.prot"),
        ("providers: {x: {kind: martian}}", {}, "providers.x.kind"),
        ("providers: {x: {kind: azure, base_url: http://a}}", {}, "api_version is required"),
        ("providers: {x: {kind: openai_compatible}}", {}, "base_url is required"),
        (
            "providers: {x: {kind: openai}}\nmodels: [{name: m, provider: y}]",
            {},
            "unknown provider 'y'",
        ),
        (
            "providers: {x: {kind: openai}}\nmodels: [{name: m, provider: x}, {name: m, provider: x}]",
            {},
            "'m' is already used",
        ),
        ("providers: {x: {kind: openai, timeouts: {connect_s: -1}}}", {}, "timeouts.connect_s"),
        ("- just\n- a list", {}, "top level must be a mapping"),
        ("server: [unclosed", {}, "not valid YAML"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, text: str, env: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env)
    assert needle in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_env_providers_and_fake_fallback() -> None:
    fake = config_from_env({})
    assert fake.uses_fake_providers and fake.source == FAKE_SOURCE
    assert {m.name for m in fake.models} >= {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"}
    real = config_from_env({"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-ant"})
    assert not real.uses_fake_providers
    assert set(real.providers) == {"openai", "anthropic"}
    assert real.providers["openai"].api_key == "sk-x"
    # Anthropic (and Gemini) through their native adapters, at the kind's default endpoint
    assert real.providers["anthropic"].kind == "anthropic"
    assert real.providers["anthropic"].resolved_base_url() == "https://api.anthropic.com"
    gemini = config_from_env({"GEMINI_API_KEY": "g"}).providers["gemini"]
    assert gemini.kind == "gemini" and gemini.api_key == "g"
    assert any(m.name.startswith("claude") for m in real.models)


@pytest.mark.parametrize(
    ("make", "banner"),
    [
        (lambda tmp: config_from_env({}, **_local(tmp)), "FAKE PROVIDERS: answers"),
        (
            lambda tmp: gateway_config("http://unused", tmp, provider={"kind": "fake"}),
            "FAKE PROVIDERS (test): answers",
        ),
    ],
)
async def test_the_fake_provider_banner_names_a_config_source_once(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    make: Callable[[Path], Config],
    banner: str,
) -> None:
    """The banner names where the config came from, unless that is the fake providers
    themselves ("FAKE PROVIDERS (built-in fake providers)" said it twice)."""
    config = make(tmp_path)
    assert config.uses_fake_providers
    with caplog.at_level(logging.WARNING, logger="thrifty"):
        async with Gateway(config):
            pass
    assert [r.getMessage() for r in caplog.records if banner in r.getMessage()], caplog.text


def _local(tmp: Path) -> dict[str, Any]:
    return {
        "database": {"url": f"sqlite+aiosqlite:///{tmp / 'thrifty.db'}"},
        "cache": {"disk_path": str(tmp / "cache")},
        "ledger": {"spill_path": str(tmp / "spill.jsonl")},
    }
