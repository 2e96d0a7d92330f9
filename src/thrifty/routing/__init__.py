"""Routing: how much a request needs the strong model, measured rather than guessed.

- ``scorers``: the :class:`Scorer` seam and :func:`make_scorer` (``length``, ``rules``,
  ``learned:PATH``); ``length`` (default, no training), ``rules`` (operator business rules),
  ``learned`` (two calibrated heads on the shared sentence embedding, ``routing.learned``).
- ``metrics``: RouteLLM's APGR / CPT(x%) on the decile curve, oracle and random baselines,
  bootstrap intervals. ``train``: grouped k-fold training of ``learned`` (``thrifty router``).
- ``threshold``: the threshold that sends a target share of live traffic to the strong model.
- ``analysis``: the per model x complexity class cost/success trade-off and its advice.

This package imports neither numpy nor the embedding model; ``metrics``, ``train``, ``learned``
and ``logistic`` need numpy (the ``router`` extra).
"""

from thrifty.routing.analysis import (
    CellStats,
    Recommendation,
    TradeoffReport,
    UsageRow,
    analyze_tradeoffs,
)
from thrifty.routing.length import LengthScorer, LengthWeights
from thrifty.routing.rules import SEED_KEYWORD_RULES, Rule, RuleDecision, RulesScorer
from thrifty.routing.scorers import RequestMeta, Scorer, last_user_text, make_scorer
from thrifty.routing.threshold import TargetShareThreshold, share_for_cost

__all__ = [
    "SEED_KEYWORD_RULES",
    "CellStats",
    "LengthScorer",
    "LengthWeights",
    "Recommendation",
    "RequestMeta",
    "Rule",
    "RuleDecision",
    "RulesScorer",
    "Scorer",
    "TargetShareThreshold",
    "TradeoffReport",
    "UsageRow",
    "analyze_tradeoffs",
    "last_user_text",
    "make_scorer",
    "share_for_cost",
]
