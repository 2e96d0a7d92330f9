"""The catalog's value types (``ModelPrice``, ``PriceTier``) and their validating parser.

Prices are USD per million tokens held as ``Decimal``: YAML numbers are converted through their
decimal text (``0.15`` becomes ``Decimal("0.15")``, never the binary float 0.1499...), so every
cost computed from them is exact and only turned into a float at the edge.

``None`` means the provider has no such price: a ``cached_input`` of ``None`` bills cache reads at
``input`` and a ``cache_write`` of ``None`` bills cache writes at ``input``. An embedding model
may have no ``output`` price (it produces no completion tokens).

Every error raised here is a ``ConfigError`` whose message names the file, the entry and the
field, e.g. ``prices.yaml: models[3] (gpt-4o): cached_input: must be >= 0 (got -1)``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from thrifty.errors import ConfigError

Mode = Literal["chat", "embedding"]
MODES: tuple[str, ...] = ("chat", "embedding")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a model accepts: tool calls, image input, JSON mode / structured output."""

    tools: bool = False
    vision: bool = False
    json: bool = False


@dataclass(frozen=True, slots=True)
class PriceTier:
    """A set of rates (USD per million tokens).

    As a long-context tier it applies to the whole request once ``prompt_tokens`` exceeds
    ``above_input_tokens``; a model's base rates are a tier with ``above_input_tokens == 0``.
    """

    above_input_tokens: int
    input: Decimal
    output: Decimal | None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None

    @property
    def cached_rate(self) -> Decimal:
        """The rate for cache reads: ``cached_input``, else ``input``."""
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_write_rate(self) -> Decimal:
        """The rate for cache writes: ``cache_write``, else ``input``."""
        return self.input if self.cache_write is None else self.cache_write

    @property
    def output_rate(self) -> Decimal:
        """The rate for completion tokens (0 where there is none: embedding models)."""
        return Decimal(0) if self.output is None else self.output


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One priced model as a provider bills it (``provider`` is who sends the bill)."""

    id: str
    provider: str
    input: Decimal
    output: Decimal | None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    aliases: tuple[str, ...] = ()
    mode: Mode = "chat"
    tiers: tuple[PriceTier, ...] = ()
    context_window: int | None = None
    max_output: int | None = None
    capabilities: Capabilities = field(default_factory=Capabilities)
    source: str | None = None
    as_of: dt.date | None = None
    notes: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The id followed by its aliases."""
        return (self.id, *self.aliases)

    @property
    def base(self) -> PriceTier:
        """The base rates as a tier (``above_input_tokens == 0``)."""
        return PriceTier(0, self.input, self.output, self.cached_input, self.cache_write)

    def rates_for(self, prompt_tokens: int) -> PriceTier:
        """The rates that bill a request of ``prompt_tokens`` input tokens: the highest tier whose
        threshold the prompt exceeds, else the base rates."""
        chosen = self.base
        for tier in self.tiers:  # sorted ascending by the parser
            if prompt_tokens > tier.above_input_tokens:
                chosen = tier
        return chosen

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready mapping in the catalog file's own shape (prices as floats)."""

        def num(value: Decimal | None) -> float | None:
            return None if value is None else float(value)

        out: dict[str, Any] = {
            "id": self.id,
            "provider": self.provider,
            "aliases": list(self.aliases),
            "mode": self.mode,
            "input": num(self.input),
            "output": num(self.output),
            "cached_input": num(self.cached_input),
            "cache_write": num(self.cache_write),
        }
        if self.tiers:
            out["tiers"] = [
                {
                    "above_input_tokens": t.above_input_tokens,
                    "input": num(t.input),
                    "output": num(t.output),
                    "cached_input": num(t.cached_input),
                    "cache_write": num(t.cache_write),
                }
                for t in self.tiers
            ]
        out["context_window"] = self.context_window
        out["max_output"] = self.max_output
        out["capabilities"] = {
            "tools": self.capabilities.tools,
            "vision": self.capabilities.vision,
            "json": self.capabilities.json,
        }
        out["source"] = self.source
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        if self.notes:
            out["notes"] = self.notes
        return out


# ------------------------------------------------------------------ field parsers


class _FieldError(ValueError):
    """A bad value; the caller prefixes the entry and field."""


def _price(value: Any, *, nullable: bool = True) -> Decimal | None:
    if value is None:
        if nullable:
            return None
        raise _FieldError("a price is required (USD per million tokens)")
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise _FieldError(f"must be a number of USD per million tokens (got {value!r})")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _FieldError(f"must be a number of USD per million tokens (got {value!r})") from None
    if not number.is_finite():
        raise _FieldError(f"must be a finite number (got {value!r})")
    if number < 0:
        raise _FieldError(f"must be >= 0 (got {value!r})")
    return number


def _count(value: Any, *, nullable: bool = True, minimum: int = 1) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _FieldError(f"must be an integer >= {minimum} (got {value!r})")
    return value


def _text(value: Any, *, nullable: bool = True) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(f"must be a non-empty string (got {value!r})")
    return value.strip()


def _date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _FieldError(f"must be a date YYYY-MM-DD (got {value!r})")


def parse_date(value: Any, *, where: str) -> dt.date | None:
    """A ``YYYY-MM-DD`` date (or ``None``); raises ``ConfigError`` naming ``where``."""
    try:
        return _date(value)
    except _FieldError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _aliases(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise _FieldError(f"must be a list of names (got {value!r})")
    names: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _FieldError(f"[{i}] must be a non-empty string (got {item!r})")
        names.append(item.strip())
    return tuple(names)


def _capabilities(value: Any) -> Capabilities:
    if value is None:
        return Capabilities()
    if not isinstance(value, Mapping):
        raise _FieldError(f"must be a mapping of tools/vision/json flags (got {value!r})")
    unknown = set(value) - {"tools", "vision", "json"}
    if unknown:
        raise _FieldError(
            f"unknown key(s) {sorted(map(str, unknown))} (expected tools, vision, json)"
        )
    for key, flag in value.items():
        if not isinstance(flag, bool):
            raise _FieldError(f"{key} must be true or false (got {flag!r})")
    return Capabilities(**{str(k): v for k, v in value.items()})


_TIER_KEYS = {"above_input_tokens", "input", "output", "cached_input", "cache_write"}


def _tiers(value: Any, *, mode: str) -> tuple[PriceTier, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise _FieldError(f"must be a list of tiers (got {value!r})")
    tiers: list[PriceTier] = []
    for i, raw in enumerate(value):
        if isinstance(raw, PriceTier):
            tiers.append(raw)
            continue
        if not isinstance(raw, Mapping):
            raise _FieldError(f"[{i}] must be a mapping (got {raw!r})")
        unknown = set(raw) - _TIER_KEYS
        if unknown:
            raise _FieldError(f"[{i}]: unknown key(s) {sorted(map(str, unknown))}")
        try:
            above = _count(raw.get("above_input_tokens"), nullable=False)
            assert above is not None
            tier_input = _price(raw.get("input"), nullable=False)
            assert tier_input is not None
            tiers.append(
                PriceTier(
                    above_input_tokens=above,
                    input=tier_input,
                    output=_price(raw.get("output"), nullable=mode == "embedding"),
                    cached_input=_price(raw.get("cached_input")),
                    cache_write=_price(raw.get("cache_write")),
                )
            )
        except _FieldError as exc:
            raise _FieldError(f"[{i}]: {exc}") from None
    tiers.sort(key=lambda t: t.above_input_tokens)
    thresholds = [t.above_input_tokens for t in tiers]
    if len(set(thresholds)) != len(thresholds):
        raise _FieldError(f"two tiers share a threshold ({thresholds})")
    return tuple(tiers)


ENTRY_KEYS = frozenset(
    {
        "id", "provider", "aliases", "mode", "input", "output", "cached_input", "cache_write",
        "tiers", "context_window", "max_output", "capabilities", "source", "as_of", "notes",
    }
)  # fmt: skip


def parse_model(
    data: Any,
    *,
    where: str,
    base: ModelPrice | None = None,
    default_as_of: dt.date | None = None,
) -> ModelPrice:
    """Validate one entry into a ``ModelPrice``.

    With ``base``, ``data`` is a partial override: the fields it names replace ``base``'s and
    the id cannot change. Without, it is a full entry: ``id``, ``provider`` and ``input`` are
    required, and ``output`` too for a chat model. Raises ``ConfigError`` naming ``where`` and
    the field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: must be a mapping of fields (got {data!r})")
    unknown = sorted(str(k) for k in set(data) - ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown} (expected {sorted(ENTRY_KEYS)})")
    current = "id"
    try:
        if base is not None:
            if "id" in data and _text(data["id"], nullable=False) != base.id:
                raise _FieldError(f"cannot change the id of {base.id!r} in an override")
            values: dict[str, Any] = {}
        else:
            for required in ("id", "provider", "input"):
                if data.get(required) is None:
                    current = required
                    raise _FieldError("is required")
            values = {"id": _text(data["id"], nullable=False), "output": None}
        parsers: dict[str, Any] = {
            "provider": lambda v: _text(v, nullable=False),
            "aliases": _aliases,
            "input": lambda v: _price(v, nullable=False),
            "output": _price,
            "cached_input": _price,
            "cache_write": _price,
            "context_window": _count,
            "max_output": _count,
            "capabilities": _capabilities,
            "source": _text,
            "as_of": _date,
            "notes": _text,
        }
        current = "mode"
        mode = data.get("mode", base.mode if base else "chat")
        if mode not in MODES:
            raise _FieldError(f"must be one of {list(MODES)} (got {mode!r})")
        values["mode"] = mode
        for key, parse in parsers.items():
            current = key
            if key in data:
                values[key] = parse(data[key])
        current = "tiers"
        if "tiers" in data:
            values["tiers"] = _tiers(data["tiers"], mode=mode)
        if base is None and values.get("as_of") is None:
            values["as_of"] = default_as_of
        price = replace(base, **values) if base is not None else ModelPrice(**values)
        current = "output"
        if price.mode == "chat" and price.output is None:
            raise _FieldError("a chat model needs an output price (write 0 for a free model)")
        current = "tiers"
        if price.mode == "chat" and any(t.output is None for t in price.tiers):
            raise _FieldError("every tier of a chat model needs an output price")
    except _FieldError as exc:
        raise ConfigError(f"{where}: {current}: {exc}") from None
    return price
