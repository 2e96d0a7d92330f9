"""What a request needs from a model, and whether a catalog entry provides it.

:func:`required_capabilities` reads a canonical OpenAI chat body: ``tools`` / ``functions`` (or
tool messages in the history) need tool calling; an ``image_url`` / ``input_image`` content part
needs vision; ``response_format`` ``json_object`` / ``json_schema`` needs JSON mode; the prompt
size is the hard bound of :func:`thrifty.tokens.request_upper_bound` (no tokenization, UTF-8
bytes: up to ~4x the real count), optionally refined by a count (:meth:`Needs.counted`), and the
output size is ``max_completion_tokens`` / ``max_tokens``.

:func:`fits` checks one :class:`~thrifty.pricing.ModelPrice`: the context window must hold the
prompt plus the requested output (without ``max_tokens``, at least one output token), the
requested output must not exceed the model's ``max_output``, and tools / vision / JSON must be
supported. A model absent from the catalog has *unknown* capabilities: it is allowed and the
reason says so (likewise an entry without ``context_window``). Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from thrifty.pricing import CostCalculator, ModelPrice
from thrifty.tokens import count_request, request_upper_bound

__all__ = [
    "Candidate",
    "Fit",
    "Needs",
    "Rejection",
    "check_candidate",
    "fits",
    "format_tokens",
    "required_capabilities",
]

IMAGE_PART_TYPES = frozenset({"image_url", "input_image", "image"})
JSON_FORMATS = frozenset({"json_object", "json_schema"})


@dataclass(frozen=True, slots=True)
class Needs:
    """What a request needs. ``prompt_tokens_upper`` is a hard bound; ``prompt_tokens`` a
    (conservative) count when one was made, else ``None``; ``max_output`` the requested
    completion limit, ``None`` when the client set none (the model's own maximum applies)."""

    tools: bool = False
    vision: bool = False
    json: bool = False
    prompt_tokens_upper: int = 0
    max_output: int | None = None
    prompt_tokens: int | None = None

    @property
    def prompt_estimate(self) -> int:
        """The prompt size the filters use: the count when made, else the hard bound."""
        return self.prompt_tokens_upper if self.prompt_tokens is None else self.prompt_tokens

    def counted(self, body: Mapping[str, Any]) -> Needs:
        """These needs with ``prompt_tokens`` counted by ``count_request(body)``.

        ``body["model"]`` picks the tokenizer; a route group name (``auto``) is an unknown model,
        so the count is the o200k_base count times the 1.5 safety factor for unknown families:
        conservative for every model a group may pick. Never above the hard bound."""
        if self.prompt_tokens is not None:
            return self
        tokens = min(count_request(body).tokens, self.prompt_tokens_upper)
        return replace(self, prompt_tokens=tokens)

    def describe(self) -> str:
        """``"tools, vision, json; prompt <= 1234 tokens; max output 300"`` (for reasons)."""
        caps = [n for n in ("tools", "vision", "json") if getattr(self, n)]
        out = "unset" if self.max_output is None else str(self.max_output)
        prompt = f"prompt ~{self.prompt_estimate} tokens"
        return "; ".join([", ".join(caps) or "text only", prompt, f"max output {out}"])


def _has_image(content: Any) -> bool:
    if not isinstance(content, list):
        return False
    return any(isinstance(p, Mapping) and p.get("type") in IMAGE_PART_TYPES for p in content)


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def required_capabilities(body: Mapping[str, Any], *, count: bool = False) -> Needs:
    """The needs of a chat body (see the module docstring). Never raises on a malformed body:
    non-list messages and non-mapping parts are ignored. ``count=True`` also counts the prompt
    (``Needs.counted``); the default costs one UTF-8 pass and no tokenization."""
    messages = body.get("messages")
    messages = messages if isinstance(messages, list) else []
    tools = bool(body.get("tools")) or bool(body.get("functions"))
    vision = False
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        if message.get("role") in ("tool", "function") or message.get("tool_calls"):
            tools = True
        if not vision and _has_image(message.get("content")):
            vision = True
    fmt = body.get("response_format")
    json_mode = isinstance(fmt, Mapping) and fmt.get("type") in JSON_FORMATS
    max_output = _positive_int(body.get("max_completion_tokens"))
    if max_output is None:
        max_output = _positive_int(body.get("max_tokens"))
    needs = Needs(
        tools=tools,
        vision=vision,
        json=json_mode,
        prompt_tokens_upper=request_upper_bound(body),
        max_output=max_output,
    )
    return needs.counted(body) if count else needs


def format_tokens(n: int) -> str:
    """``128000`` → ``"128k"``, ``1047576`` → ``"1.05M"``, ``512`` → ``"512"``."""
    if n >= 1_000_000:
        return f"{n / 1_000_000:.3g}M"
    if n >= 1000:
        return f"{n / 1000:.3g}k" if n < 10_000 else f"{round(n / 1000)}k"
    return str(n)


class Fit(NamedTuple):
    """``ok`` and why: the rejection (``"no vision support"``) or what was checked
    (``"fits 128k context"``, ``"capabilities unknown (not in the price catalog)"``)."""

    ok: bool
    reason: str


def fits(price: ModelPrice | None, needs: Needs) -> Fit:
    """Whether a model (its catalog entry, ``None`` when it has none) can serve ``needs``.

    Checked in order: context window (``needs.prompt_estimate`` + ``max_output``, or at least one
    output token when unset), requested output vs the model's ``max_output``, then tools, vision
    and JSON support. Unknown (no entry, no ``context_window``) is allowed and noted."""
    if price is None:
        return Fit(True, "capabilities unknown (not in the price catalog)")
    prompt = needs.prompt_estimate
    out = needs.max_output
    notes: list[str] = []
    if price.context_window is None:
        notes.append("context window unknown")
    else:
        ctx = format_tokens(price.context_window)
        if out is not None and prompt + out > price.context_window:
            return Fit(
                False, f"prompt ~{prompt} + max output {out} tokens exceed the {ctx} context"
            )
        if out is None and prompt >= price.context_window:
            return Fit(False, f"prompt ~{prompt} tokens fills the {ctx} context")
        notes.append(f"fits {ctx} context")
    if out is not None and price.max_output is not None and out > price.max_output:
        return Fit(False, f"max output {out} > the model's {price.max_output}")
    caps = price.capabilities
    for name, needed, has in (
        ("tool calling", needs.tools, caps.tools),
        ("vision", needs.vision, caps.vision),
        ("JSON mode", needs.json, caps.json),
    ):
        if needed and not has:
            return Fit(False, f"no {name} support")
    return Fit(True, "; ".join(notes))


@dataclass(frozen=True, slots=True)
class Candidate:
    """A model that passed :func:`check_candidate` (``fit``: what ``fits`` said)."""

    model: str
    tier: str
    fit: str
    worst_case_usd: float | None


@dataclass(frozen=True, slots=True)
class Rejection:
    """A model that did not pass, why, and whether that depends on the prompt's size (context
    window or cost cap: a count instead of the bound may change it)."""

    model: str
    reason: str
    on_size: bool = False
    worst_case_usd: float | None = None


def check_candidate(
    model: str,
    tier: str,
    needs: Needs,
    calculator: CostCalculator,
    *,
    available: Collection[str] | None = None,
    cap_usd: float | None = None,
) -> Candidate | Rejection:
    """Availability (``model in available``; ``None`` = all), then :func:`fits`, then the cap:
    ``calculator.worst_case(model, needs.prompt_estimate, needs.max_output) <= cap_usd``. Under a
    cap an unpriced model is rejected (its worst case is unknown); without one it passes."""
    if available is not None and model not in available:
        return Rejection(model, "unavailable")
    fit = fits(calculator.price_of(model), needs)
    if not fit.ok:
        return Rejection(model, fit.reason, on_size="context" in fit.reason)
    try:
        worst = calculator.worst_case(model, needs.prompt_estimate, needs.max_output)
    except ValueError:  # neither max_output nor a context window bounds the output
        worst = None
    if cap_usd is not None:
        if worst is None:
            return Rejection(model, "worst-case cost unknown (unpriced) under a cost cap")
        if worst > cap_usd:
            return Rejection(model, f"worst case ${worst:.4f} > cap ${cap_usd:.4f}", True, worst)
    return Candidate(model, tier, fit.reason, worst)
