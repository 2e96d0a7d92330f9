"""The stage order, written in one place. Read this first.

    chat:        admission ─▶ optimize ─▶ cache ─▶ semantic cache ─▶ route ─▶ budget ─▶ dispatch
                 ─▶ (costing ─▶ record: metrics, ledger, cache write, budget settle)
    embeddings:  admission ─▶ cache (per item) ─▶ route ─▶ budget ─▶ dispatch ─▶ (costing ─▶ record)

dispatch balances a model's deployments, skips open circuits, retries with backoff and falls
back to other deployments and models (``pipeline/dispatch.py``).

Stages not built yet (admission, optimize, cache, budget) are added here as they land.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from thrifty.config import ResilienceConfig
from thrifty.pipeline.cache import CacheStage
from thrifty.pipeline.costing import Costing
from thrifty.pipeline.dispatch import DispatchStage
from thrifty.pipeline.embeddings_cache import EmbeddingsCacheStage
from thrifty.pipeline.pipeline import Pipeline
from thrifty.pipeline.route import RouteStage
from thrifty.pipeline.stage import Recorder, Stage
from thrifty.providers.registry import ProviderRegistry


def build_chat_pipeline(
    registry: ProviderRegistry,
    costing: Costing,
    recorders: Sequence[Recorder],
    resilience: ResilienceConfig,
    cache: CacheStage | None = None,
    semantic: Stage | None = None,
    budget: Stage | None = None,
    admission: Stage | None = None,
    policies: dict[str, Any] | None = None,
    optimize: Stage | None = None,
) -> Pipeline:
    stages: list[Stage] = [RouteStage(registry, "chat", policies)]
    if budget is not None:
        stages.append(budget)
    stages.append(DispatchStage(registry, "chat.completions", resilience))
    if semantic is not None:
        stages.insert(0, semantic)
    if cache is not None:
        stages.insert(0, cache)
    if optimize is not None:
        stages.insert(0, optimize)
    if admission is not None:
        stages.insert(0, admission)
    return Pipeline(
        stages=stages,
        costing=costing,
        recorders=recorders,
    )


def build_embeddings_pipeline(
    registry: ProviderRegistry,
    costing: Costing,
    recorders: Sequence[Recorder],
    resilience: ResilienceConfig,
    cache: EmbeddingsCacheStage | None = None,
    budget: Stage | None = None,
    admission: Stage | None = None,
) -> Pipeline:
    stages: list[Stage] = [RouteStage(registry, "embedding")]
    if budget is not None:
        stages.append(budget)
    stages.append(DispatchStage(registry, "embeddings", resilience))
    if cache is not None:
        stages.insert(0, cache)
    if admission is not None:
        stages.insert(0, admission)
    return Pipeline(
        stages=stages,
        costing=costing,
        recorders=recorders,
    )
