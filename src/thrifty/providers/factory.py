"""Which adapter class serves a provider ``kind``. A new provider is a new module and one line
here, never a branch in the pipeline. Adapters with optional dependencies import lazily."""

from __future__ import annotations

import importlib
from typing import Any

from thrifty.errors import ConfigError

_OPENAI_COMPATIBLE = frozenset(
    {"openai", "azure", "vllm", "ollama", "tgi", "groq", "together", "openai_compatible", "fake"}
)
_ADAPTERS: dict[str, tuple[str, str]] = {
    "anthropic": ("thrifty.providers.anthropic", "AnthropicProvider"),
    "bedrock": ("thrifty.providers.bedrock", "BedrockProvider"),
    "gemini": ("thrifty.providers.gemini", "GeminiProvider"),
    "cohere": ("thrifty.providers.cohere", "CohereProvider"),
}


def provider_class(kind: str) -> Any:
    """The adapter class for ``kind``: constructed as ``cls(name, config, base_url=...)``."""
    if kind in _OPENAI_COMPATIBLE:
        from thrifty.providers.openai_compat import OpenAICompatProvider

        return OpenAICompatProvider
    try:
        module, name = _ADAPTERS[kind]
    except KeyError:
        raise ConfigError(f"no adapter for provider kind {kind!r}") from None
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as exc:
        raise ConfigError(
            f"provider kind {kind!r} needs an optional dependency: {exc}. "
            f"Install it with: pip install 'thrifty[{kind}]'"
        ) from None
