"""Fake upstream providers: real HTTP servers speaking each provider's wire format, for tests,
the demo and benchmarks. Each imports lazily (``from thrifty.testing import FakeBedrockServer``
loads only that fake)."""

from __future__ import annotations

import importlib
from typing import Any

from thrifty.testing.fake_openai import FakeOpenAIServer, run_fake_upstream
from thrifty.testing.faults import FaultSpec, Latency

_LAZY = {
    "FakeAnthropicServer": "thrifty.testing.fake_anthropic",
    "AnthropicFault": "thrifty.testing.fake_anthropic_wire",
    "FakeBedrockServer": "thrifty.testing.fake_bedrock",
    "BedrockFault": "thrifty.testing.fake_bedrock",
    "FAKE_ACCESS_KEY": "thrifty.testing.fake_bedrock",
    "FAKE_SECRET_KEY": "thrifty.testing.fake_bedrock",
    "FakeGeminiServer": "thrifty.testing.fake_gemini",
    "FakeCohereServer": "thrifty.testing.fake_cohere",
}

__all__ = [
    "FAKE_ACCESS_KEY",
    "FAKE_SECRET_KEY",
    "AnthropicFault",
    "BedrockFault",
    "FakeAnthropicServer",
    "FakeBedrockServer",
    "FakeCohereServer",
    "FakeGeminiServer",
    "FakeOpenAIServer",
    "FaultSpec",
    "Latency",
    "run_fake_upstream",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'thrifty.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
