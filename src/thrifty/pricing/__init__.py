"""Model prices and request costs.

``PriceCatalog`` holds the prices (bundled ``catalog.yaml``, then ``pricing.catalog_file``, then
``pricing.overrides``) and resolves model names; ``compute_cost`` / ``CostCalculator`` turn a
``Usage`` into an exact ``CostBreakdown``. An unpriced model yields ``None``, never $0.

The function ``thrifty.pricing.cost.cost`` is re-exported here as ``compute_cost``: binding it
as ``cost`` would shadow the ``thrifty.pricing.cost`` module (``import thrifty.pricing.cost as m``
and ``mock.patch("thrifty.pricing.cost.X")`` would then see the function).
"""

from thrifty.pricing.catalog import PriceCatalog, strip_snapshot
from thrifty.pricing.cost import CostBreakdown, CostCalculator, Estimate, worst_case_cost
from thrifty.pricing.cost import cost as compute_cost
from thrifty.pricing.schema import Capabilities, ModelPrice, PriceTier
from thrifty.pricing.usage import Usage

__all__ = [
    "Capabilities",
    "CostBreakdown",
    "CostCalculator",
    "Estimate",
    "ModelPrice",
    "PriceCatalog",
    "PriceTier",
    "Usage",
    "compute_cost",
    "strip_snapshot",
    "worst_case_cost",
]
