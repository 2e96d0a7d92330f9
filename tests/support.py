"""Helpers shared by tests (importable as ``tests.support``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from thrifty.config import Config, config_from_dict

ADMIN_KEY = "admin-test-key"
FAKE_PROVIDER_KEY = "fake-provider-key"
"""The API key the shared Gemini and Cohere fakes (``gemini_fake``, ``cohere_fake``) accept."""


def gateway_config(base_url: str, tmp_path: Path, **overrides: Any) -> Config:
    """A config with one fake OpenAI-compatible upstream and a few models."""
    provider = {"kind": "openai", "base_url": base_url, "api_key": "sk-upstream"}
    provider.update(overrides.pop("provider", {}))
    data: dict[str, Any] = {
        "server": {"admin_key": ADMIN_KEY, **overrides.pop("server", {})},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'thrifty.db'}"},
        "keys": {"cache_ttl_s": 0},
        # Tests that are not about caching see every request reach the upstream.
        "cache": {"enabled": False, "disk_path": str(tmp_path / "cache")},
        "providers": {"up": provider},
        "models": [
            {"name": "gpt-4o-mini", "aliases": ["mini"], "provider": "up", "model": "gpt-4o-mini"},
            {"name": "gpt-4o", "provider": "up", "model": "gpt-4o-2024-08-06"},
            {
                "name": "text-embedding-3-small",
                "mode": "embedding",
                "provider": "up",
                "model": "text-embedding-3-small",
            },
        ],
    }
    data.update(overrides)
    return config_from_dict(data, env={}, source="test")


def chat_body(text: str = "Hello there", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
