"""The upstream side of the configuration (the ``providers:``, ``models:`` and ``resilience:``
sections of the YAML; ``thrifty.config`` re-exports these models): each provider endpoint and
its timeouts, the public model names mapped to deployments, and retries and circuit breakers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


ProviderKind = Literal[
    "openai",
    "azure",
    "vllm",
    "ollama",
    "tgi",
    "groq",
    "together",
    "openai_compatible",
    "fake",
    "anthropic",
    "bedrock",
    "gemini",
    "cohere",
]


class Timeouts(_Frozen):
    """Upstream timeouts in seconds. ``first_byte_s`` runs until the response headers arrive;
    ``stream_idle_s`` is the longest gap allowed between two chunks of a stream; ``total_s``
    bounds a whole non-streaming call."""

    connect_s: float = Field(5.0, gt=0)
    first_byte_s: float = Field(60.0, gt=0)
    total_s: float = Field(600.0, gt=0)
    stream_idle_s: float = Field(60.0, gt=0)


class ProviderConfig(_Frozen):
    """One upstream endpoint. ``kind: fake`` starts a built-in fake OpenAI server in-process."""

    kind: ProviderKind = "openai_compatible"
    base_url: str | None = None
    api_key: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    api_version: str | None = None
    timeouts: Timeouts = Field(default_factory=Timeouts)
    max_connections: int = Field(256, ge=1)
    fake: dict[str, Any] = Field(default_factory=dict)
    # AWS Bedrock: the region, and credentials (else botocore's default chain: env, profile…).
    region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None

    @model_validator(mode="after")
    def _check(self) -> ProviderConfig:
        if self.kind == "bedrock":
            if not self.region and not self.base_url:
                raise ValueError("region is required for a bedrock provider")
        elif self.kind != "fake" and not self.base_url and self.kind not in _DEFAULT_BASE_URLS:
            raise ValueError(f"base_url is required for a provider of kind {self.kind!r}")
        if self.kind == "azure" and not self.api_version:
            raise ValueError("api_version is required for an azure provider")
        return self

    def resolved_base_url(self) -> str | None:
        if self.kind == "bedrock" and not self.base_url:
            return f"https://bedrock-runtime.{self.region}.amazonaws.com"
        return (self.base_url or _DEFAULT_BASE_URLS.get(self.kind, "")).rstrip("/") or None


_DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "groq": "https://api.groq.com/openai/v1",
    "together": "https://api.together.xyz/v1",
    "ollama": "http://127.0.0.1:11434/v1",
    "vllm": "http://127.0.0.1:8000/v1",
    "tgi": "http://127.0.0.1:8080/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
    "cohere": "https://api.cohere.com",
}


class DeploymentConfig(_Frozen):
    """Where a model name is served: a provider, the upstream's own model id, and its share
    of traffic under the ``weighted`` strategy."""

    provider: str
    model: str
    weight: float = Field(1.0, gt=0)


class BreakerConfig(_Frozen):
    """Circuit breaker per deployment: opens after ``consecutive_failures`` failures in a row,
    or when ``failure_rate`` of the last ``window`` calls failed (with at least ``min_calls``);
    after ``recovery_timeout_s`` one probe call decides between closed and open again."""

    consecutive_failures: int = Field(5, ge=1)
    failure_rate: float = Field(0.5, gt=0, le=1)
    window: int = Field(20, ge=1)
    min_calls: int = Field(10, ge=1)
    recovery_timeout_s: float = Field(30.0, gt=0)


class RetryConfig(_Frozen):
    """Retries of one deployment on retryable errors: exponential backoff with full jitter,
    ``backoff_base_s * 2**attempt`` capped at ``backoff_max_s``; an upstream ``Retry-After``
    is honoured up to ``retry_after_max_s`` (longer waits move on to the next deployment)."""

    max_retries: int = Field(1, ge=0, le=10)
    backoff_base_s: float = Field(0.1, ge=0)
    backoff_max_s: float = Field(4.0, ge=0)
    retry_after_max_s: float = Field(10.0, ge=0)


class ResilienceConfig(_Frozen):
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    retries: RetryConfig = Field(default_factory=RetryConfig)
    max_attempts: int = Field(6, ge=1, le=50)


class ModelConfig(_Frozen):
    """A public model name, its aliases and its deployments (tried in order)."""

    name: str = Field(min_length=1)
    mode: Literal["chat", "embedding"] = "chat"
    aliases: tuple[str, ...] = ()
    deployments: tuple[DeploymentConfig, ...] = Field(min_length=1)
    strategy: Literal["ordered", "weighted", "least_busy", "lowest_latency"] = "ordered"
    fallbacks: tuple[str, ...] = ()
    """Other model names tried, in order, when every deployment of this one failed."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `{name, provider, model}` is shorthand for one deployment.
        if isinstance(data, dict) and "deployments" not in data and "provider" in data:
            data = dict(data)
            dep = {"provider": data.pop("provider"), "model": data.pop("model", data.get("name"))}
            data["deployments"] = [dep]
        return data
