"""The record of one routing decision, as :class:`~thrifty.routing.policy.RoutePolicy` returns it.

:class:`RouteDecision` is the chosen model, its fallbacks, the score and tiers, and why (its
``header_value`` is the ``x-thrifty-route`` header, ``to_dict`` the preview / ledger form);
:class:`Considered` is a candidate it passed over, with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple

__all__ = ["Considered", "RouteDecision"]


class Considered(NamedTuple):
    """A candidate that was not chosen, and why (``"unavailable"``, ``"no vision support"``)."""

    model: str
    reason: str


@dataclass(frozen=True, slots=True)
class RouteDecision:
    """The outcome of one routing decision (for the route stage, the ledger and previews).

    ``model`` is ``None`` when no candidate passes (``reason`` says why: the route stage should
    answer a 400 with it). ``tier`` is the chosen model's tier (``"fallback"`` for one from the
    group's ``fallbacks``), ``score_tier`` the tier the score alone gave; ``threshold`` is the cut
    point the score was compared with. ``escalate_to`` is the cascade's strong model."""

    group: str
    model: str | None
    fallbacks: list[str]
    tier: str | None
    score_tier: str
    score: float
    threshold: float
    reason: str
    considered: list[Considered] = field(default_factory=list)
    scorer: str = ""
    rule: str | None = None
    time_sensitive: bool = False
    worst_case_usd: float | None = None
    escalate_to: str | None = None

    @property
    def ok(self) -> bool:
        return self.model is not None

    def header_value(self) -> str:
        """An ASCII summary for the ``x-thrifty-route`` header."""
        parts = [
            f"group={self.group}",
            f"model={self.model or 'none'}",
            f"tier={self.tier or 'none'}",
            f"score={self.score:.3f}",
        ]
        if self.escalate_to:
            parts.append(f"cascade={self.escalate_to}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (preview endpoint, ledger)."""

        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("score", "threshold"):  # inf / nan are not JSON
            out[key] = out[key] if math.isfinite(out[key]) else None
        out["fallbacks"] = list(self.fallbacks)
        out["considered"] = [{"model": c.model, "reason": c.reason} for c in self.considered]
        return out
