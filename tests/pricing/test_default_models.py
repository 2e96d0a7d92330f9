"""The Claude models Thrifty configures on its own are priced and not deprecated.

"Deprecated" is what the installed ``anthropic`` SDK says: it warns (and the API will later
refuse) for every id in its ``DEPRECATED_MODELS``, so a default there breaks every zero-config
install on the model's end-of-life date.
"""

from __future__ import annotations

import pytest
from anthropic.resources.messages.messages import DEPRECATED_MODELS

from thrifty.cli.demo_workload import MODELS as DEMO_MODELS
from thrifty.config import config_from_env
from thrifty.pricing import PriceCatalog
from thrifty.testing.fake_anthropic import MODELS as FAKE_ANTHROPIC_MODELS


def _anthropic_defaults() -> list[str]:
    """Upstream model ids of the models configured when only ANTHROPIC_API_KEY is set."""
    config = config_from_env({"ANTHROPIC_API_KEY": "sk-ant-test"})
    return sorted(
        {d.model for m in config.models for d in m.deployments if d.provider == "anthropic"}
    )


def _fake_defaults() -> list[str]:
    """The Claude names of the built-in fake providers (no keys at all) and the demo workload."""
    names = {m.name for m in config_from_env({}).models}
    names |= {name for name, _ in DEMO_MODELS}
    names |= set(FAKE_ANTHROPIC_MODELS)
    return sorted(n for n in names if n.startswith("claude"))


def test_anthropic_key_configures_claude_models() -> None:
    assert len(_anthropic_defaults()) >= 2


@pytest.mark.parametrize("model", sorted({*_anthropic_defaults(), *_fake_defaults()}))
def test_default_claude_model_is_priced_and_not_deprecated(model: str) -> None:
    assert model not in DEPRECATED_MODELS, (
        f"{model} is deprecated by the installed anthropic SDK "
        f"(end of life {DEPRECATED_MODELS[model]}); default to a current model"
    )
    price = PriceCatalog.bundled().get(model)
    assert price is not None, f"{model} has no price in the bundled catalog"
    assert price.provider == "anthropic"
