"""Providers and the model table built from config, opened and closed with the gateway.

``kind: fake`` providers start a built-in fake OpenAI server (``thrifty.testing``) on a loopback
port, so the whole gateway runs on real HTTP with no API keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from thrifty.config import Config
from thrifty.errors import NotFoundError
from thrifty.providers.base import Deployment, Provider
from thrifty.providers.factory import provider_class

log = logging.getLogger("thrifty.providers")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model name with its mode and its deployments in order of preference."""

    name: str
    mode: str
    deployments: tuple[Deployment, ...]


class ProviderRegistry:
    """Holds one ``Provider`` per configured upstream and resolves model names and aliases."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.providers: dict[str, Provider] = {}
        self._fakes: list[Any] = []
        self.models: dict[str, ModelEntry] = {}
        self._by_name: dict[str, ModelEntry] = {}
        for m in config.models:
            deps = tuple(Deployment(d.provider, d.model, m.name) for d in m.deployments)
            entry = ModelEntry(m.name, m.mode, deps)
            self.models[m.name] = entry
            for name in (m.name, *m.aliases):
                self._by_name[name] = entry

    async def open(self) -> None:
        for name, pc in self._config.providers.items():
            base_url = None
            if pc.kind == "fake":
                from thrifty.testing import FakeOpenAIServer, Latency

                fake = FakeOpenAIServer(latency=Latency(**pc.fake.get("latency", {})))
                base_url = await fake.start()
                self._fakes.append(fake)
                log.warning("provider %r is the built-in FAKE upstream at %s", name, base_url)
            provider = provider_class(pc.kind)(name, pc, base_url=base_url)
            await provider.open()
            self.providers[name] = provider

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()
        self.providers.clear()
        for fake in self._fakes:
            await fake.stop()
        self._fakes.clear()

    def resolve(self, model: str, mode: str = "chat") -> ModelEntry:
        """The entry for a model name or alias; ``NotFoundError`` (404) if none serves it."""
        entry = self._by_name.get(model)
        if entry is None or entry.mode != mode:
            raise NotFoundError(
                f"The model `{model}` does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return entry

    def provider(self, deployment: Deployment) -> Provider:
        return self.providers[deployment.provider]
