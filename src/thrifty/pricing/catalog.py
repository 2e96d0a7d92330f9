"""The price catalog: the bundled prices, a newer imported file, and the config's overrides.

``PriceCatalog.load(config.pricing)`` layers three sources, later ones winning:

1. the bundled ``catalog.yaml`` shipped with Thrifty;
2. the entries of ``pricing.catalog_file`` if that file exists (written by ``thrifty prices
   update``); each replaces the bundled entry with the same id;
3. ``pricing.overrides``: ``{name: {fields}}``. A name that is an existing id or alias patches
   that model (a partial override); any other name is a new model and needs ``provider`` (default
   ``custom``), ``input`` and ``output``. A self-hosted model is priced at $0 only when written so
   explicitly (``input: 0, output: 0``): an unknown model is *unpriced*, never free.

``get(name)`` resolves, in order: an exact id or alias; the same case-insensitively (only when it
names a single model); a dated snapshot (``gpt-4o-mini-2024-07-18``, ``claude-sonnet-4-5-20250929``)
by dropping the date; and one provider prefix (``openai/``, ``anthropic/``, ``bedrock/``, ``groq/``
...), which then must match the model's ``provider``. Nothing else is guessed: a near name such as
``gpt-4o-mini-audio-preview`` is unpriced unless listed, so ``get`` returns ``None``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from thrifty.config import PricingConfig
from thrifty.errors import ConfigError
from thrifty.pricing.schema import Capabilities, ModelPrice, PriceTier, parse_date, parse_model

__all__ = [
    "Capabilities",
    "ModelPrice",
    "PriceCatalog",
    "PriceTier",
    "parse_document",
    "parse_text",
    "read_catalog_file",
    "strip_snapshot",
]

BUNDLED_RESOURCE = "catalog.yaml"

# Provider prefixes accepted in front of a model name, and the provider they must resolve to.
PREFIX_PROVIDERS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "bedrock": "bedrock",
    "gemini": "google",
    "google": "google",
    "models": "google",
    "mistral": "mistral",
    "cohere": "cohere",
    "deepseek": "deepseek",
    "groq": "groq",
    "together": "together",
    "together_ai": "together",
}

# A trailing snapshot date: -2024-07-18, -20250929 or @20250929 (Vertex style).
_SNAPSHOT = re.compile(
    r"^(?P<base>.+?)(?:-(?P<y1>20\d\d)-(?P<m1>\d\d)-(?P<d1>\d\d)"
    r"|[-@](?P<y2>20\d\d)(?P<m2>\d\d)(?P<d2>\d\d))$"
)


def strip_snapshot(name: str) -> str | None:
    """``name`` without a trailing snapshot date, or ``None`` if it has no valid one."""
    m = _SNAPSHOT.match(name)
    if not m:
        return None
    y, mo, d = (m.group("y1"), m.group("m1"), m.group("d1"))
    if y is None:
        y, mo, d = (m.group("y2"), m.group("m2"), m.group("d2"))
    try:
        dt.date(int(y), int(mo), int(d))
    except ValueError:
        return None
    return m.group("base")


def parse_document(data: Any, *, source: str) -> list[ModelPrice]:
    """Validate a whole catalog document: ``{version?, as_of?, models: [entry, ...]}`` (or
    ``models: {id: fields}``). Entries without ``as_of`` take the document's. Ids and aliases
    must be unique within the document (names differing only in case are allowed: two hosts
    do spell one model so, and lookup then needs the exact case or a provider prefix)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the top level must be a mapping with a 'models' key")
    unknown = sorted(str(k) for k in set(data) - {"version", "as_of", "models"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {unknown}")
    doc_as_of = parse_date(data.get("as_of"), where=f"{source}: as_of")
    raw = data.get("models")
    items: Iterable[tuple[str, Any]]
    if isinstance(raw, Mapping):
        items = (
            (f"models.{k}", {"id": k, **v} if isinstance(v, Mapping) else v) for k, v in raw.items()
        )
    elif isinstance(raw, list):
        items = (
            (
                f"models[{i}]"
                + (f" ({e['id']})" if isinstance(e, Mapping) and e.get("id") else ""),
                e,
            )
            for i, e in enumerate(raw)
        )
    else:
        raise ConfigError(f"{source}: models: must be a list of model entries (got {raw!r})")
    entries: list[ModelPrice] = []
    seen: dict[str, str] = {}
    for label, entry in items:
        where = f"{source}: {label}"
        price = parse_model(entry, where=where, default_as_of=doc_as_of)
        for name in price.names:
            owner = seen.get(name)
            if owner is not None:
                raise ConfigError(f"{where}: name {name!r} is already used by {owner!r}")
            seen[name] = price.id
        entries.append(price)
    if not entries:
        raise ConfigError(f"{source}: models: the catalog has no models")
    return entries


def parse_text(text: str, *, source: str) -> list[ModelPrice]:
    """Parse and validate catalog YAML (or JSON) text."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    return parse_document(data, source=source)


def read_catalog_file(path: str | Path) -> tuple[str, list[ModelPrice]]:
    """Read and validate a catalog file; returns its text and entries."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"cannot read price catalog {p}: {reason}") from None
    return text, parse_text(text, source=str(p))


@lru_cache(maxsize=1)
def _bundled_entries() -> tuple[ModelPrice, ...]:
    text = resources.files("thrifty.pricing").joinpath(BUNDLED_RESOURCE).read_text("utf-8")
    return tuple(parse_text(text, source=f"bundled {BUNDLED_RESOURCE}"))


def _atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class PriceCatalog:
    """An immutable-by-convention view of model prices with name resolution.

    Build it with ``bundled()`` or ``load(config)``; the constructor takes the layers directly.
    ``import_file`` is the one mutating operation (it swaps the catalog-file layer).
    """

    def __init__(
        self,
        bundled: Iterable[ModelPrice] = (),
        file_entries: Iterable[ModelPrice] = (),
        overrides: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        catalog_file: str | Path | None = None,
    ) -> None:
        self._bundled = tuple(bundled)
        self._file_entries = tuple(file_entries)
        self._overrides = dict(overrides or {})
        self.catalog_file = Path(catalog_file) if catalog_file else None
        self._by_id: dict[str, ModelPrice] = {}
        self._exact: dict[str, ModelPrice] = {}
        self._folded: dict[str, list[ModelPrice]] = {}
        self._rebuild()

    # ------------------------------------------------------------------ construction

    @classmethod
    def bundled(cls) -> PriceCatalog:
        """The catalog shipped with Thrifty, with no file or overrides."""
        return cls(_bundled_entries())

    @classmethod
    def load(cls, config: PricingConfig | None = None) -> PriceCatalog:
        """Bundled prices, then ``config.catalog_file`` if it exists, then ``config.overrides``.

        Raises ``ConfigError`` for a catalog file or override that does not validate."""
        config = config or PricingConfig()
        file_entries: list[ModelPrice] = []
        if config.catalog_file and Path(config.catalog_file).is_file():
            _, file_entries = read_catalog_file(config.catalog_file)
        return cls(
            _bundled_entries(),
            file_entries,
            config.overrides,
            catalog_file=config.catalog_file,
        )

    def _rebuild(self) -> None:
        by_id: dict[str, ModelPrice] = {}
        for entry in (*self._bundled, *self._file_entries):
            by_id.pop(entry.id, None)  # re-insert so later layers take precedence
            by_id[entry.id] = entry
        for key, fields in self._overrides.items():
            where = f"pricing.overrides.{key}"
            target = self._find_declared(by_id, key)
            if target is not None:
                price = parse_model(fields, where=where, base=target)
                by_id.pop(target.id)
            else:
                if not isinstance(fields, Mapping):
                    raise ConfigError(f"{where}: must be a mapping of fields (got {fields!r})")
                price = parse_model({"provider": "custom", **fields, "id": key}, where=where)
            by_id[price.id] = price
        exact: dict[str, ModelPrice] = {}
        folded: dict[str, list[ModelPrice]] = {}
        # Aliases first, then ids, each in precedence order: an id always beats another model's
        # alias, and a later layer's name beats an earlier one's.
        for entry in by_id.values():
            for alias in entry.aliases:
                exact[alias] = entry
        for entry in by_id.values():
            exact[entry.id] = entry
        for name, entry in exact.items():
            bucket = folded.setdefault(name.lower(), [])
            if all(e.id != entry.id for e in bucket):
                bucket.append(entry)
        self._by_id, self._exact, self._folded = by_id, exact, folded

    @staticmethod
    def _find_declared(by_id: Mapping[str, ModelPrice], name: str) -> ModelPrice | None:
        if name in by_id:
            return by_id[name]
        for entry in by_id.values():
            if name in entry.aliases:
                return entry
        return None

    # ------------------------------------------------------------------ queries

    def get(self, model: str) -> ModelPrice | None:
        """The price of ``model`` (id, alias, dated snapshot or provider-prefixed name), or
        ``None`` when it is unpriced. ``None`` means *unknown*, never *free*."""
        name = (model or "").strip()
        if not name:
            return None
        hit = self._resolve(name, provider=None)
        if hit is not None:
            return hit
        prefix, sep, rest = name.partition("/")
        provider = PREFIX_PROVIDERS.get(prefix.lower()) if sep else None
        if provider is not None and rest:
            return self._resolve(rest, provider=provider)
        return None

    def _resolve(self, name: str, provider: str | None) -> ModelPrice | None:
        hit = self._lookup(name, provider)
        if hit is None:
            base = strip_snapshot(name)
            if base is not None:
                hit = self._lookup(base, provider)
        return hit

    def _lookup(self, name: str, provider: str | None) -> ModelPrice | None:
        hit = self._exact.get(name)
        if hit is not None and (provider is None or hit.provider == provider):
            return hit
        candidates = self._folded.get(name.lower(), [])
        if provider is not None:
            candidates = [c for c in candidates if c.provider == provider]
        return candidates[0] if len(candidates) == 1 else None

    def is_priced(self, model: str) -> bool:
        """Whether ``get(model)`` finds a price."""
        return self.get(model) is not None

    def models(self, provider: str | None = None) -> list[ModelPrice]:
        """All priced models (optionally of one provider), sorted by provider then id."""
        entries = list(self._by_id.values())
        if provider is not None:
            entries = [e for e in entries if e.provider.lower() == provider.lower()]
        return sorted(entries, key=lambda e: (e.provider, e.id.lower()))

    def names(self) -> list[str]:
        """Every id and alias, sorted (for suggestions)."""
        return sorted(self._exact)

    def providers(self) -> list[str]:
        """The providers that have at least one priced model."""
        return sorted({e.provider for e in self._by_id.values()})

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.is_priced(model)

    # ------------------------------------------------------------------ update

    def import_file(self, path: str | Path) -> int:
        """Validate the catalog at ``path`` as a whole, then write it atomically to the
        configured ``catalog_file`` and use it. Returns the number of models it holds.

        Raises ``ConfigError`` (naming the entry and field) for an invalid file, in which case
        nothing is written, or when no ``catalog_file`` is configured."""
        if self.catalog_file is None:
            raise ConfigError("pricing.catalog_file is not set: there is nowhere to import to")
        text, entries = read_catalog_file(path)
        previous = self._file_entries
        self._file_entries = tuple(entries)
        try:
            self._rebuild()  # the overrides must still apply on top of the new file
        except ConfigError:
            self._file_entries = previous
            self._rebuild()
            raise
        try:
            _atomic_write(self.catalog_file, text)
        except OSError as exc:
            self._file_entries = previous
            self._rebuild()
            reason = exc.strerror or exc
            raise ConfigError(f"cannot write price catalog {self.catalog_file}: {reason}") from None
        return len(entries)
