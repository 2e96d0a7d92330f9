"""Order a model's deployments for one request: ``ordered`` (as configured), ``weighted``
(random, proportional to weight), ``least_busy`` (fewest calls in flight), ``lowest_latency``
(lowest latency EWMA; unmeasured deployments first, so each gets measured)."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence

from thrifty.providers.base import Deployment
from thrifty.providers.health import DeploymentHealth


def order_deployments(
    deployments: Sequence[Deployment],
    strategy: str,
    health: Mapping[str, DeploymentHealth],
    rng: random.Random | None = None,
) -> list[Deployment]:
    if len(deployments) < 2 or strategy == "ordered":
        return list(deployments)
    if strategy == "weighted":
        r = rng or random
        # Efraimidis-Spirakis: a weighted random permutation in one pass.
        keyed = [
            (-math.log(1.0 - r.random()) / health[d.id].weight, i, d)
            for i, d in enumerate(deployments)
        ]
        return [d for _, _, d in sorted(keyed)]
    if strategy == "least_busy":
        return sorted(deployments, key=lambda d: health[d.id].in_flight)
    if strategy == "lowest_latency":

        def latency(d: Deployment) -> float:
            value = health[d.id].latency_ewma_ms
            return -1.0 if value is None else value

        return sorted(deployments, key=latency)
    raise ValueError(f"unknown strategy {strategy!r}")
