"""One typed, validated, frozen configuration, loaded once (YAML file + environment).

``load_config(path)`` reads the YAML file, replaces ``${VAR}`` / ``${VAR:-default}`` with values
from the environment, validates everything with pydantic and raises ``ConfigError`` naming the
key and what was expected. With no file, ``config_from_env`` builds a config from the provider
keys found in the environment, and with none, from the built-in fake providers (``kind: fake``).
Nothing here is read at import time; the resulting ``Config`` is passed in explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from thrifty.budgets.config import BudgetsConfig
from thrifty.cache.config import CacheConfig as CacheConfig
from thrifty.cache.config import CacheRule as CacheRule
from thrifty.cache.config import S3CacheConfig as S3CacheConfig
from thrifty.cache.config import SemanticCacheConfig as SemanticCacheConfig
from thrifty.errors import ConfigError
from thrifty.providers.config import BreakerConfig as BreakerConfig
from thrifty.providers.config import DeploymentConfig as DeploymentConfig
from thrifty.providers.config import ModelConfig as ModelConfig
from thrifty.providers.config import ProviderConfig as ProviderConfig
from thrifty.providers.config import ResilienceConfig as ResilienceConfig
from thrifty.providers.config import RetryConfig as RetryConfig
from thrifty.providers.config import Timeouts as Timeouts
from thrifty.routing.policy_config import RoutingConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerConfig(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(4000, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    admin_key: str | None = None
    open_mode: bool = False
    open_mode_tenant: str = "dev"


class DatabaseConfig(_Frozen):
    url: str = "sqlite+aiosqlite:///./thrifty-data/thrifty.db"
    echo: bool = False


class LedgerConfig(_Frozen):
    """The request ledger: written behind the request path in batches; rows spill to
    ``spill_path`` (append-only JSON lines) while the database is down and are replayed."""

    store_content: bool = False
    batch_size: int = Field(500, ge=1, le=10_000)
    flush_interval_s: float = Field(0.2, gt=0)
    queue_size: int = Field(100_000, ge=100)
    retry_interval_s: float = Field(2.0, gt=0)
    spill_path: str = "./thrifty-data/ledger-spill.jsonl"


class OptimizeRule(_Frozen):
    """Per-route (model) or per-use-case switches of the token-optimization levers."""

    model: str | None = None
    use_case: str | None = None
    lossless: bool | None = None
    lossy: bool | None = None
    prune_budget_tokens: int | None = Field(None, ge=1)
    keep_last_turns: int | None = Field(None, ge=1)
    response_limits: bool | None = None


class OptimizeConfig(_Frozen):
    """Token optimization (``pipeline/optimize.py``): lossless compression on by default;
    lossy compression, context pruning and response limits opt-in, globally or per rule."""

    lossless: bool = True
    lossy: bool = False
    prune_budget_tokens: int | None = Field(None, ge=1)
    keep_last_turns: int = Field(2, ge=1)
    response_limits: bool = False
    response_limits_holdout: float = Field(0.05, ge=0, le=1)
    """Share of the requests a response limit would cap that are left uncapped, so that what
    the cap saves can be measured (``pipeline/response_limits.py``; 0: caps book no saving)."""
    rules: tuple[OptimizeRule, ...] = ()


class RedisConfig(_Frozen):
    """Shared state for scale-out (cache tier, coalescing locks, invalidation pub/sub)."""

    url: str | None = None
    timeout_s: float = Field(0.5, gt=0)
    prefix: str = "thrifty"


class KeysConfig(_Frozen):
    cache_ttl_s: float = Field(5.0, ge=0)


class PricingConfig(_Frozen):
    """Price catalog sources. ``catalog_file`` (imported by ``thrifty prices update``) replaces
    the bundled catalog's entries it names; ``overrides`` adds or changes single models (a
    self-hosted model at $0 is written here explicitly, never assumed)."""

    catalog_file: str | None = "./thrifty-data/prices.yaml"
    overrides: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Config(_Frozen):
    """The whole configuration. ``source`` says where it came from (a file, env, fake)."""

    server: ServerConfig = Field(default_factory=ServerConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    keys: KeysConfig = Field(default_factory=KeysConfig)
    resilience: ResilienceConfig = Field(default_factory=ResilienceConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig)
    budgets: BudgetsConfig = Field(default_factory=BudgetsConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: tuple[ModelConfig, ...] = ()
    source: str = "defaults"

    @field_validator("models", mode="before")
    @classmethod
    def _models_from_mapping(cls, value: Any) -> Any:
        # Allow `models: {name: {...}}` as well as a list.
        if isinstance(value, Mapping):
            return [{"name": k, **(v or {})} for k, v in value.items()]
        return value

    @model_validator(mode="after")
    def _check_refs(self) -> Config:
        seen: dict[str, str] = {}
        for i, m in enumerate(self.models):
            for name in (m.name, *m.aliases):
                if name in seen:
                    raise ValueError(
                        f"models[{i}]: name {name!r} is already used by {seen[name]!r}"
                    )
                seen[name] = m.name
            for fb in m.fallbacks:
                if fb not in {x.name for x in self.models} or fb == m.name:
                    raise ValueError(
                        f"models[{i}].fallbacks: {fb!r} is not another configured model name"
                    )
            for j, d in enumerate(m.deployments):
                if d.provider not in self.providers:
                    known = ", ".join(sorted(self.providers)) or "none"
                    raise ValueError(
                        f"models[{i}].deployments[{j}].provider: unknown provider "
                        f"{d.provider!r} (configured: {known})"
                    )
        return self

    @model_validator(mode="after")
    def _check_routes(self) -> Config:
        names = {n for m in self.models for n in (m.name, *m.aliases)}
        for group in self.routing.groups:
            if group.name in names:
                raise ValueError(f"routing.groups: {group.name!r} is also a model name")
            for tier in ("small", "medium", "large"):
                for model in group.tiers.models(tier):
                    if model not in names:
                        raise ValueError(
                            f"routing.groups[{group.name}].tiers.{tier}: unknown model {model!r}"
                        )
        return self

    @property
    def uses_fake_providers(self) -> bool:
        return any(p.kind == "fake" for p in self.providers.values())


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or 'config'}: environment variable {name} is not set")

        return _ENV_REF.sub(sub, value)
    if isinstance(value, dict):
        return {k: interpolate(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"invalid config ({source}):"]
    for e in err.errors():
        loc = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in e["loc"])
        loc = loc.replace(".[", "[")
        got = e.get("input")
        got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"  {loc or '<root>'}: {e['msg']}{got_s}")
    return "\n".join(lines)


def config_from_dict(
    data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: str = "dict"
) -> Config:
    """Validate a parsed config tree (after ``${VAR}`` interpolation) into a ``Config``."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"invalid config ({source}): the top level must be a mapping")
    tree = interpolate(dict(data), os.environ if env is None else env)
    tree.setdefault("source", source)
    try:
        return Config.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, source)) from None


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate a YAML config file; raises ``ConfigError`` with the offending key."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p} is not valid YAML: {exc}") from None
    return config_from_dict(data, env=env, source=str(p))


# Providers detected from the environment when there is no config file: (variable, provider
# name, kind, base_url (None: the kind's default), models). Anthropic and Gemini use their native
# adapters; the others speak the OpenAI wire format.
_ENV_PROVIDERS: tuple[tuple[str, str, str, str | None, tuple[tuple[str, str], ...]], ...] = (
    (
        "OPENAI_API_KEY",
        "openai",
        "openai_compatible",
        "https://api.openai.com/v1",
        (
            ("gpt-4o", "chat"),
            ("gpt-4o-mini", "chat"),
            ("gpt-4.1", "chat"),
            ("gpt-4.1-mini", "chat"),
            ("gpt-4.1-nano", "chat"),
            ("text-embedding-3-small", "embedding"),
            ("text-embedding-3-large", "embedding"),
        ),
    ),
    (
        "ANTHROPIC_API_KEY",
        "anthropic",
        "anthropic",
        None,
        (("claude-sonnet-5-5", "chat"), ("claude-haiku-4-5", "chat"), ("claude-opus-5-5", "chat")),
    ),
    (
        "GEMINI_API_KEY",
        "gemini",
        "gemini",
        None,
        (("gemini-2.5-pro", "chat"), ("gemini-2.5-flash", "chat")),
    ),
    (
        "MISTRAL_API_KEY",
        "mistral",
        "openai_compatible",
        "https://api.mistral.ai/v1",
        (("mistral-large-latest", "chat"), ("mistral-small-latest", "chat")),
    ),
    (
        "DEEPSEEK_API_KEY",
        "deepseek",
        "openai_compatible",
        "https://api.deepseek.com/v1",
        (("deepseek-chat", "chat"), ("deepseek-reasoner", "chat")),
    ),
    (
        "GROQ_API_KEY",
        "groq",
        "openai_compatible",
        "https://api.groq.com/openai/v1",
        (("llama-3.3-70b-versatile", "chat"),),
    ),
    (
        "TOGETHER_API_KEY",
        "together",
        "openai_compatible",
        "https://api.together.xyz/v1",
        (("meta-llama/Llama-3.3-70B-Instruct-Turbo", "chat"),),
    ),
)

FAKE_MODELS: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "chat"),
    ("gpt-4o-mini", "chat"),
    ("gpt-4.1", "chat"),
    ("gpt-4.1-mini", "chat"),
    ("claude-sonnet-5-5", "chat"),
    ("claude-haiku-4-5", "chat"),
    ("text-embedding-3-small", "embedding"),
)


FAKE_SOURCE = "built-in fake providers"  # ``Config.source`` when no provider key was found


def config_from_env(env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """A config from provider keys in the environment; the fake providers when there are none."""
    env = os.environ if env is None else env
    providers: dict[str, Any] = {}
    models: list[dict[str, Any]] = []
    for var, name, kind, base_url, names in _ENV_PROVIDERS:
        if env.get(var):
            providers[name] = {"kind": kind, "api_key": env[var]}
            if base_url is not None:
                providers[name]["base_url"] = base_url
            for model, mode in names:
                models.append({"name": model, "mode": mode, "provider": name, "model": model})
    source = "environment"
    if not providers:
        providers["fake"] = {"kind": "fake"}
        models = [
            {"name": m, "mode": mode, "provider": "fake", "model": m} for m, mode in FAKE_MODELS
        ]
        source = FAKE_SOURCE
    data: dict[str, Any] = {"providers": providers, "models": models, **overrides}
    server = dict(data.get("server") or {})
    if env.get("THRIFTY_ADMIN_KEY") and "admin_key" not in server:
        server["admin_key"] = env["THRIFTY_ADMIN_KEY"]
    if env.get("THRIFTY_DATABASE_URL"):
        data["database"] = {**(data.get("database") or {}), "url": env["THRIFTY_DATABASE_URL"]}
    data["server"] = server
    return config_from_dict(data, env=env, source=source)


def resolve_config(path: str | Path | None, env: Mapping[str, str] | None = None) -> Config:
    """The config the CLI and server use: the file if given (or ``THRIFTY_CONFIG``), else env."""
    env = os.environ if env is None else env
    path = path or env.get("THRIFTY_CONFIG")
    if path:
        return load_config(path, env=env)
    return config_from_env(env)
