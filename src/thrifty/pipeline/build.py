"""The stage order, written in one place. Read this first.

    chat:        route ─▶ dispatch ─▶ (costing ─▶ record: metrics, ledger)
    embeddings:  route ─▶ dispatch ─▶ (costing ─▶ record)

Stages not built yet (admission, optimize, cache, budget) are added here as they land.
"""

from __future__ import annotations

from collections.abc import Sequence

from thrifty.pipeline.costing import Costing
from thrifty.pipeline.dispatch import DispatchStage
from thrifty.pipeline.pipeline import Pipeline
from thrifty.pipeline.route import RouteStage
from thrifty.pipeline.stage import Recorder
from thrifty.providers.registry import ProviderRegistry


def build_chat_pipeline(
    registry: ProviderRegistry, costing: Costing, recorders: Sequence[Recorder]
) -> Pipeline:
    return Pipeline(
        stages=[RouteStage(registry, "chat"), DispatchStage(registry, "chat.completions")],
        costing=costing,
        recorders=recorders,
    )


def build_embeddings_pipeline(
    registry: ProviderRegistry, costing: Costing, recorders: Sequence[Recorder]
) -> Pipeline:
    return Pipeline(
        stages=[RouteStage(registry, "embedding"), DispatchStage(registry, "embeddings")],
        costing=costing,
        recorders=recorders,
    )
