"""The bundled catalog's coverage, name resolution, layering and import."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from thrifty.config import PricingConfig
from thrifty.errors import ConfigError
from thrifty.pricing import ModelPrice, PriceCatalog, strip_snapshot
from thrifty.pricing.catalog import parse_document


@pytest.fixture(scope="module")
def bundled() -> PriceCatalog:
    return PriceCatalog.bundled()


def _write(path: Path, models: list[dict[str, object]], **top: object) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, **top, "models": models}), encoding="utf-8")
    return path


# ---------------------------------------------------------------- coverage


def test_bundled_catalog_has_at_least_60_models(bundled: PriceCatalog) -> None:
    assert len(bundled) >= 60
    assert len(bundled.models()) == len(bundled)


def test_every_entry_names_its_source_date_and_context(bundled: PriceCatalog) -> None:
    for entry in bundled.models():
        assert entry.source and entry.source.startswith("https://"), entry.id
        assert isinstance(entry.as_of, dt.date) and entry.as_of >= dt.date(2025, 1, 1), entry.id
        assert entry.context_window and entry.context_window > 0, entry.id
        assert entry.input >= 0, entry.id
        if entry.mode == "chat":
            assert entry.output is not None, entry.id
        for tier in entry.tiers:
            assert tier.above_input_tokens < entry.context_window, entry.id
            assert tier.input >= entry.input, entry.id


def test_all_named_providers_are_present(bundled: PriceCatalog) -> None:
    expected = {
        "openai", "anthropic", "bedrock", "google", "mistral", "cohere", "together", "groq",
        "deepseek",
    }  # fmt: skip
    assert expected <= set(bundled.providers())


@pytest.mark.parametrize(
    "model",
    [
        "gpt-5", "gpt-5-mini", "gpt-5-nano", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o",
        "gpt-4o-mini", "o1", "o3", "o3-mini", "o4-mini", "gpt-3.5-turbo",
        "text-embedding-3-small", "text-embedding-3-large",
        "claude-fable-5-2", "claude-opus-5-5", "claude-sonnet-5-5", "claude-haiku-5-5",
        "claude-fable-5-1", "claude-opus-5", "claude-sonnet-5", "claude-opus-4-6", "claude-sonnet-4-6",
        "claude-opus-4-1", "claude-opus-4", "claude-sonnet-4-5", "claude-sonnet-4",
        "claude-3-7-sonnet", "claude-haiku-4-5", "claude-3-5-haiku", "claude-3-haiku",
        "anthropic.claude-sonnet-4-5-20250929-v1:0", "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0", "anthropic.claude-3-haiku-20240307-v1:0",
        "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
        "gemini-embedding-001",
        "mistral-large-latest", "mistral-medium-latest", "mistral-small-latest",
        "codestral-latest", "ministral-8b-2410", "mistral-embed",
        "command-a-03-2025", "command-r-plus-08-2024", "command-r-08-2024", "command-r7b-12-2024",
        "embed-v4.0",
        "meta.llama3-1-8b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0",
        "meta.llama3-1-405b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0",
        "us.meta.llama3-3-70b-instruct-v1:0", "meta.llama4-scout-17b-instruct-v1:0",
        "meta.llama4-maverick-17b-instruct-v1:0",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo", "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo",
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-3.3-70b-versatile",
        "llama-3.1-8b-instant", "meta-llama/llama-4-scout-17b-16e-instruct",
        "deepseek-chat", "deepseek-reasoner", "deepseek.r1-v1:0", "deepseek-ai/DeepSeek-R1",
        "amazon.nova-micro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0",
    ],
)  # fmt: skip
def test_named_models_are_priced(bundled: PriceCatalog, model: str) -> None:
    assert bundled.is_priced(model), model


def test_prices_are_exact_decimals(bundled: PriceCatalog) -> None:
    mini = bundled.get("gpt-4o-mini")
    assert mini is not None
    assert (mini.input, mini.cached_input, mini.output) == (
        Decimal("0.15"),
        Decimal("0.075"),
        Decimal("0.6"),
    )
    assert mini.cache_write is None  # OpenAI has no cache-write price


def test_long_context_tiers(bundled: PriceCatalog) -> None:
    pro = bundled.get("gemini-2.5-pro")
    assert pro is not None and pro.tiers[0].above_input_tokens == 200_000
    assert pro.rates_for(200_000).input == Decimal("1.25")
    assert pro.rates_for(200_001).input == Decimal("2.5")
    for model in ("claude-sonnet-4-5", "claude-sonnet-4"):
        price = bundled.get(model)
        assert price is not None and price.tiers
        tier = price.rates_for(300_000)
        assert (tier.input, tier.output, tier.cached_input, tier.cache_write) == (
            Decimal("6.0"),
            Decimal("22.5"),
            Decimal("0.6"),
            Decimal("7.5"),
        )


def test_claude_5_5_prices(bundled: PriceCatalog) -> None:
    sonnet = bundled.get("claude-sonnet-5-5")
    assert sonnet is not None and not sonnet.tiers
    # cache reads cut from 0.20 to 0.10 on 2026-10-07
    assert (sonnet.input, sonnet.output, sonnet.cached_input, sonnet.cache_write) == (
        Decimal("2.0"),
        Decimal("10.0"),
        Decimal("0.1"),
        Decimal("2.5"),
    )
    haiku = bundled.get("claude-haiku-5-5")
    assert haiku is not None
    # priced by prompt length: the higher rates bill the whole request past 100k prompt tokens
    assert haiku.rates_for(100_000).input == Decimal("0.1")
    tier = haiku.rates_for(100_001)
    assert (tier.input, tier.output, tier.cache_write) == (
        Decimal("0.5"),
        Decimal("2.5"),
        Decimal("0.625"),
    )


def test_bedrock_regional_and_global_profiles_are_distinct(bundled: PriceCatalog) -> None:
    regional = bundled.get("us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    global_ = bundled.get("global.anthropic.claude-sonnet-4-5-20250929-v1:0")
    assert regional is not None and global_ is not None
    assert regional.id == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert regional.provider == global_.provider == "bedrock"
    assert global_.input == Decimal("3.0") and regional.input == Decimal("3.3")


def test_every_entry_round_trips_through_its_dict(bundled: PriceCatalog) -> None:
    dumped = [e.to_dict() for e in bundled.models()]
    json.dumps(dumped)  # JSON-ready
    again = parse_document({"models": dumped}, source="roundtrip")
    assert again == bundled.models()


# ---------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("  gpt-4o-mini ", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # listed: a different price than gpt-4o
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        (
            "bedrock/anthropic.claude-sonnet-4-5-20250929-v1:0",
            "anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        ("bedrock/us.meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
        (
            "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
            "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        ),
        ("groq/openai/gpt-oss-120b", "openai/gpt-oss-120b"),
        ("command-r-plus", "command-r-plus-04-2024"),
        ("mistral/mistral-large-latest", "mistral-large-2512"),
        ("deepseek/deepseek-chat", "deepseek-chat"),
    ],
)  # fmt: skip
def test_get_resolves_aliases_prefixes_and_snapshots(
    bundled: PriceCatalog, name: str, expected: str
) -> None:
    price = bundled.get(name)
    assert price is not None, name
    assert price.id == expected


@pytest.mark.parametrize(
    "name",
    [
        "gpt-4o-mini-audio-preview",
        "gpt-4o-mini-audio-preview-2024-12-17",
        "gpt-4o-mini-realtime-preview",
        "gpt-4o-mini-tts",
        "o1-preview-2024-09-12",
        "gpt-4o-2024-13-45",  # not a date
        "claude-3-5-sonnet-20241022",  # not listed: must not become another Sonnet
        "claude-sonnet",
        "gpt-5-turbo",
        "ft:gpt-4o-mini-2024-07-18:acme::abc123",
        "groq/gpt-4o",  # the prefix names a provider that does not serve it
        "azure/gpt-4o",  # an unknown prefix is not stripped
        "ministral-8b-latest",  # deliberately not mapped (the alias moved)
        "eu.anthropic.claude-opus-4-1-20250805-v1:0",  # profile not listed: no guessing
        "",
        "   ",
    ],
)
def test_near_names_do_not_resolve(bundled: PriceCatalog, name: str) -> None:
    assert bundled.get(name) is None
    assert not bundled.is_priced(name)


def test_names_differing_only_in_case_need_exact_case_or_prefix(bundled: PriceCatalog) -> None:
    together = bundled.get("meta-llama/Llama-4-Scout-17B-16E-Instruct")
    groq = bundled.get("meta-llama/llama-4-scout-17b-16e-instruct")
    assert together is not None and together.provider == "together"
    assert groq is not None and groq.provider == "groq"
    assert bundled.get("META-LLAMA/LLAMA-4-SCOUT-17B-16E-INSTRUCT") is None  # ambiguous
    hit = bundled.get("groq/META-LLAMA/LLAMA-4-SCOUT-17B-16E-INSTRUCT")
    assert hit is not None and hit.provider == "groq"


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("x@20250101", "x"),
        ("gpt-4o", None),
        ("gpt-4-0613", None),
        ("model-2024-02-30", None),
        ("model-20251301", None),
    ],
)
def test_strip_snapshot(name: str, base: str | None) -> None:
    assert strip_snapshot(name) == base


def test_models_filter_by_provider(bundled: PriceCatalog) -> None:
    groq = bundled.models("groq")
    assert groq and all(e.provider == "groq" for e in groq)
    assert bundled.models("GROQ") == groq
    assert bundled.models("nobody") == []


# ---------------------------------------------------------------- layering


def test_load_without_config_or_file_is_the_bundled_catalog(tmp_path: Path) -> None:
    catalog = PriceCatalog.load(PricingConfig(catalog_file=str(tmp_path / "missing.yaml")))
    assert len(catalog) == len(PriceCatalog.bundled())
    assert len(PriceCatalog.load(PricingConfig(catalog_file=None))) == len(catalog)


def test_catalog_file_replaces_by_id_and_overrides_win(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "prices.yaml",
        [
            {"id": "gpt-4o-mini", "provider": "openai", "input": 0.1, "output": 0.5},
            {"id": "brand-new", "provider": "acme", "input": 1, "output": 2},
        ],
        as_of="2026-01-15",
    )
    from_file = PriceCatalog.load(PricingConfig(catalog_file=str(file)))
    mini = from_file.get("gpt-4o-mini")
    assert mini is not None and mini.input == Decimal("0.1")
    assert mini.cached_input is None  # replaced whole, not merged
    assert mini.as_of == dt.date(2026, 1, 15)  # inherited from the document
    assert from_file.get("brand-new") is not None
    assert len(from_file) == len(PriceCatalog.bundled()) + 1

    layered = PriceCatalog.load(
        PricingConfig(catalog_file=str(file), overrides={"gpt-4o-mini": {"input": 0.05}})
    )
    mini = layered.get("gpt-4o-mini")
    assert mini is not None
    assert (mini.input, mini.output) == (Decimal("0.05"), Decimal("0.5"))  # partial override


def test_partial_override_of_an_alias_patches_the_model() -> None:
    catalog = PriceCatalog.load(
        PricingConfig(catalog_file=None, overrides={"claude-sonnet-4-5-20250929": {"output": 14}})
    )
    price = catalog.get("claude-sonnet-4-5")
    assert price is not None
    assert (price.input, price.output) == (Decimal("3.0"), Decimal("14"))
    assert price.tiers  # the rest of the entry is kept


def test_self_hosted_model_is_priced_at_explicit_zero_and_unknown_is_none() -> None:
    catalog = PriceCatalog.load(
        PricingConfig(
            catalog_file=None,
            overrides={"my-llama": {"provider": "vllm", "input": 0, "output": 0}},
        )
    )
    price = catalog.get("my-llama")
    assert price is not None and price.input == 0 and price.output == 0
    assert catalog.get("my-other-llama") is None


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"my-llama": {"input": 0}}, "pricing.overrides.my-llama: output"),
        ({"my-llama": {"output": 0}}, "pricing.overrides.my-llama: input"),
        ({"gpt-4o": {"input": -1}}, "pricing.overrides.gpt-4o: input: must be >= 0"),
        ({"gpt-4o": {"cache_read": 0.1}}, "unknown field(s) ['cache_read']"),
        ({"gpt-4o": {"id": "other"}}, "cannot change the id"),
        ({"gpt-4o": {"input": "cheap"}}, "pricing.overrides.gpt-4o: input: must be a number"),
    ],
)
def test_bad_overrides_raise_config_error(overrides: dict, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        PriceCatalog.load(PricingConfig(catalog_file=None, overrides=overrides))
    assert needle in str(err.value)


def test_a_bad_catalog_file_raises_naming_the_file(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text("models: [", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"prices\.yaml: not valid YAML"):
        PriceCatalog.load(PricingConfig(catalog_file=str(file)))


# ---------------------------------------------------------------- import


def test_import_file_validates_writes_atomically_and_applies(tmp_path: Path) -> None:
    target = tmp_path / "data" / "prices.yaml"
    catalog = PriceCatalog.load(PricingConfig(catalog_file=str(target)))
    source = _write(
        tmp_path / "new.yaml",
        [
            {"id": "gpt-4o", "provider": "openai", "input": 2, "output": 8, "as_of": "2026-02-01"},
            {"id": "new-model", "provider": "acme", "input": 1, "output": 1},
        ],
    )
    assert catalog.import_file(source) == 2
    assert target.read_text(encoding="utf-8") == source.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["prices.yaml"]  # no temp file left
    price = catalog.get("gpt-4o")
    assert price is not None and price.input == Decimal("2")
    assert catalog.is_priced("new-model")
    reloaded = PriceCatalog.load(PricingConfig(catalog_file=str(target)))
    assert reloaded.get("gpt-4o") == price


@pytest.mark.parametrize(
    ("models", "needle"),
    [
        (
            [
                {"id": "ok", "provider": "x", "input": 1, "output": 1},
                {"id": "broken", "provider": "x", "input": 1, "output": 1, "cached_input": -2},
            ],
            "models[1] (broken): cached_input: must be >= 0",
        ),
        ([{"id": "no-output", "provider": "x", "input": 1}], "models[0] (no-output): output"),
        (
            [{"id": "t", "provider": "x", "input": 1, "output": 1, "tiers": [{"input": 2}]}],
            "models[0] (t): tiers: [0]: must be an integer",
        ),
        (
            [{"id": "m", "provider": "x", "input": 1, "output": 1, "mode": "audio"}],
            "models[0] (m): mode",
        ),
        (
            [
                {"id": "a", "provider": "x", "input": 1, "output": 1},
                {"id": "b", "provider": "x", "input": 1, "output": 1, "aliases": ["a"]},
            ],
            "models[1] (b): name 'a' is already used by 'a'",
        ),
        ([], "the catalog has no models"),
    ],
)
def test_import_file_rejects_a_bad_file_and_writes_nothing(
    tmp_path: Path, models: list[dict[str, object]], needle: str
) -> None:
    target = tmp_path / "prices.yaml"
    target.write_text("previous", encoding="utf-8")
    catalog = PriceCatalog(PriceCatalog.bundled().models(), catalog_file=target)
    source = _write(tmp_path / "bad.yaml", models)
    with pytest.raises(ConfigError) as err:
        catalog.import_file(source)
    assert needle in str(err.value)
    assert "bad.yaml" in str(err.value)
    assert target.read_text(encoding="utf-8") == "previous"
    assert catalog.get("ok") is None


def test_import_file_needs_a_configured_destination(tmp_path: Path) -> None:
    source = _write(tmp_path / "new.yaml", [{"id": "a", "provider": "x", "input": 1, "output": 1}])
    with pytest.raises(ConfigError, match="catalog_file is not set"):
        PriceCatalog.bundled().import_file(source)


def test_model_price_is_frozen(bundled: PriceCatalog) -> None:
    price = bundled.get("gpt-4o")
    assert isinstance(price, ModelPrice)
    with pytest.raises(AttributeError):
        price.input = Decimal(0)  # type: ignore[misc]
