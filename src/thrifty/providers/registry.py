"""Providers and the model table built from config, opened and closed with the gateway.

``kind: fake`` providers start a built-in fake OpenAI server (``thrifty.testing``) on a loopback
port, so the whole gateway runs on real HTTP with no API keys.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from thrifty.config import Config
from thrifty.errors import NotFoundError
from thrifty.providers.balancing import order_deployments
from thrifty.providers.base import Deployment, Provider
from thrifty.providers.factory import provider_class
from thrifty.providers.health import CircuitBreaker, DeploymentHealth

log = logging.getLogger("thrifty.providers")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A public model name with its mode, its deployments, how to balance them, and the
    models to fall back to."""

    name: str
    mode: str
    deployments: tuple[Deployment, ...]
    strategy: str = "ordered"
    fallbacks: tuple[str, ...] = ()


class ProviderRegistry:
    """Holds one ``Provider`` per configured upstream and resolves model names and aliases."""

    def __init__(
        self, config: Config, on_breaker: Callable[[str, str, str], None] | None = None
    ) -> None:
        self._config = config
        self.providers: dict[str, Provider] = {}
        self._fakes: list[Any] = []
        self.models: dict[str, ModelEntry] = {}
        self._by_name: dict[str, ModelEntry] = {}
        self.health: dict[str, DeploymentHealth] = {}
        # Called with (deployment id, response headers) after each upstream answer.
        self.on_upstream_headers: Callable[[str, dict[str, str]], None] | None = None
        # Awaited before each call to a deployment; returns seconds to wait if the
        # deployment's own rate limit is exhausted (the deployment is then skipped).
        self.deployment_gate: Callable[[str], Awaitable[float | None]] | None = None
        breaker_cfg = config.resilience.breaker
        for m in config.models:
            deps = tuple(Deployment(d.provider, d.model, m.name) for d in m.deployments)
            entry = ModelEntry(m.name, m.mode, deps, m.strategy, m.fallbacks)
            self.models[m.name] = entry
            for name in (m.name, *m.aliases):
                self._by_name[name] = entry
            for dep, dc in zip(deps, m.deployments, strict=True):
                if dep.id not in self.health:
                    breaker = CircuitBreaker(breaker_cfg)
                    if on_breaker is not None:
                        breaker.on_transition = functools.partial(on_breaker, dep.id)
                    self.health[dep.id] = DeploymentHealth(dep.id, breaker, weight=dc.weight)

    def candidates(self, entry: ModelEntry) -> list[Deployment]:
        """Every deployment to try, in order: the model's own (balanced by its strategy),
        then each fallback model's, without repeats."""
        out: list[Deployment] = []
        seen: set[str] = set()
        for e in (entry, *(self.models[f] for f in entry.fallbacks)):
            for dep in order_deployments(e.deployments, e.strategy, self.health):
                if dep.id not in seen:
                    seen.add(dep.id)
                    out.append(dep)
        return out

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
