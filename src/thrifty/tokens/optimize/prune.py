"""Context pruning: fit a chat body into a prompt-token budget by dropping its oldest turns.

A *turn* is a user message and every non-instruction message after it up to the next user
message; messages before the first user message form a leading turn of their own. System and
developer messages belong to no turn.

Invariants of ``prune_context``:

- System and developer messages are always kept, unchanged and in place.
- The last ``keep_last_turns`` turns are always kept, unchanged.
- Older turns go whole, oldest first. An assistant message with ``tool_calls`` (or a legacy
  ``function_call``) and its ``tool``/``function`` results are never separated: a turn boundary
  that would fall between them is not a boundary, so they are dropped or kept as one unit.
- Instead of dropping the oldest remaining turn, the text of one of its messages is truncated
  (its head kept, the rest replaced by a visible ``[… N tokens pruned by Thrifty …]`` marker)
  when that alone meets the budget and leaves at least ``min_kept_tokens`` of that text.
- So the result is a valid conversation whenever the input is one: it starts, after its
  instruction messages, with a turn's first message (a user message once anything was dropped),
  never with a tool result, and no tool result loses its call.
- When the budget cannot be met without breaking these rules, the body with every droppable turn
  dropped is returned and ``PruneResult.within_budget`` is ``False``.

Tokens are counted with ``thrifty.tokens`` for the body's model (tools included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thrifty.tokens import count_messages, count_text
from thrifty.tokens.optimize._content import (
    INSTRUCTION_ROLES,
    TEXT_PART_TYPES,
    body_messages,
    body_model,
    has_tool_calls,
    is_tool_result,
    prompt_tokens,
    with_messages,
)

__all__ = ["PRUNE_MARKER", "PruneResult", "conversation_turns", "prune_context"]

#: The marker that replaces truncated text; ``{tokens}`` is the number of tokens cut.
PRUNE_MARKER = "[… {tokens} tokens pruned by Thrifty …]"


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What ``prune_context`` did. Token counts are prompt tokens for the body's model."""

    tokens_before: int
    tokens_after: int
    budget: int
    within_budget: bool
    """``tokens_after <= budget``; ``False`` only when the invariants made the budget
    unreachable."""
    turns_dropped: int = 0
    messages_dropped: int = 0
    messages_truncated: int = 0
    tokens_truncated: int = 0
    """Text tokens cut from the truncated message (what its marker reports)."""
    note: str = ""

    @property
    def tokens_saved(self) -> int:
        return self.tokens_before - self.tokens_after


def conversation_turns(messages: Sequence[Any]) -> list[list[int]]:
    """The turns of ``messages`` as lists of message indices (instruction messages excluded).

    A turn starts at each user message (and at the first non-instruction message); a start that
    would put a tool result in a later turn than the assistant message that called it is not a
    start, so calls and results always share a turn.
    """
    found: list[list[int]] = []
    turn_of: dict[int, int] = {}
    callers: dict[int, int] = {}  # tool result index -> index of the call it answers
    call_sites: dict[Any, int] = {}  # tool_call id -> index of the assistant message
    last_call: int | None = None
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        if role in INSTRUCTION_ROLES:
            continue
        if role == "user" or not found:
            found.append([])
        found[-1].append(i)
        turn_of[i] = len(found) - 1
        if not isinstance(message, Mapping):
            continue
        if has_tool_calls(message):
            last_call = i
            for call in message.get("tool_calls") or []:
                if isinstance(call, Mapping) and isinstance(call.get("id"), str):
                    call_sites[call["id"]] = i
        elif is_tool_result(message):
            caller = call_sites.get(message.get("tool_call_id"), last_call)
            if caller is not None:
                callers[i] = caller
    joined = [False] * len(found)  # joined[t]: turn t continues turn t - 1
    for result, caller in callers.items():
        for u in range(turn_of[caller] + 1, turn_of[result] + 1):
            joined[u] = True
    merged: list[list[int]] = []
    for t, indices in enumerate(found):
        if joined[t]:
            merged[-1].extend(indices)
        else:
            merged.append(list(indices))
    return merged


def _largest_text(content: Any) -> tuple[int | None, str] | None:
    """``(part index, or None for a string content; text)`` of the biggest text in ``content``."""
    if isinstance(content, str):
        return None, content
    best: tuple[int | None, str] | None = None
    for k, part in enumerate(content if isinstance(content, list) else []):
        text = part.get("text") if isinstance(part, Mapping) else None
        if not isinstance(text, str) or part.get("type") not in TEXT_PART_TYPES:
            continue
        if best is None or len(text) > len(best[1]):
            best = (k, text)
    return best


def _cut(text: str, keep_tokens: int, model: str) -> str:
    """A head of ``text`` with at most ``keep_tokens`` tokens, ending at whitespace if one is
    near (within the last fifth)."""
    total = count_text(text, model)
    c = max(1, len(text) * keep_tokens // max(total, 1))
    head = text[:c]
    while c > 1 and count_text(head, model) > keep_tokens:
        c = c * 9 // 10
        head = text[:c]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space >= c * 4 // 5:
        head = head[:space]
    return head.rstrip()


def _truncated(
    message: Mapping[str, Any], excess: int, model: str, min_kept_tokens: int
) -> tuple[dict[str, Any], int] | None:
    """``message`` with its largest text truncated by enough to remove ``excess`` tokens
    (marker included), and the text tokens cut; ``None`` if that would keep too little."""
    found = _largest_text(message.get("content"))
    if found is None:
        return None
    part, text = found
    total = count_text(text, model)
    marker_cost = count_text("\n" + PRUNE_MARKER.format(tokens=total), model) + 1
    keep = total - excess - marker_cost
    if keep < min_kept_tokens:
        return None
    head = _cut(text, keep, model)
    cut = total - count_text(head, model)
    new_text = f"{head}\n{PRUNE_MARKER.format(tokens=cut)}"
    content = message["content"]
    if part is None:
        return {**message, "content": new_text}, cut
    parts = list(content)
    parts[part] = {**parts[part], "text": new_text}
    return {**message, "content": parts}, cut


def _rebuild(messages: Sequence[Any], dropped: set[int], replaced: Mapping[int, Any]) -> list[Any]:
    return [replaced.get(i, m) for i, m in enumerate(messages) if i not in dropped]


def prune_context(
    body: Mapping[str, Any],
    budget: int,
    *,
    keep_last_turns: int = 2,
    truncate: bool = True,
    min_kept_tokens: int = 32,
) -> tuple[dict[str, Any], PruneResult]:
    """Fit ``body`` into ``budget`` prompt tokens (see the module docstring for the invariants).

    ``keep_last_turns`` (>= 1) recent turns are never touched; ``truncate`` allows cutting the
    oldest kept message's text instead of dropping its turn; ``min_kept_tokens`` is the least
    text a truncation must leave. Returns a new body (unchanged messages are shared with the
    input, which is never mutated) and a ``PruneResult``.

    The budget is compared with ``count_request(body).tokens``: exact for models with a local
    tokenizer, the calibrated estimate otherwise. Where an under-count must never happen, leave
    headroom or budget against ``thrifty.tokens.request_upper_bound``.
    """
    if budget < 0:
        raise ValueError("budget must be >= 0")
    if keep_last_turns < 1:
        raise ValueError("keep_last_turns must be >= 1")
    messages = body_messages(body)
    before = prompt_tokens(body)
    if before <= budget:
        return with_messages(body, list(messages)), PruneResult(
            before, before, budget, True, note="within budget"
        )
    model = body_model(body)
    all_turns = conversation_turns(messages)
    droppable = all_turns[:-keep_last_turns]
    base = count_messages([], model)
    dropped: set[int] = set()
    replaced: dict[int, Any] = {}
    turns_dropped = 0
    tokens_truncated = 0
    current = before
    for turn in droppable:
        excess = current - budget
        if excess <= 0:
            break
        cost = count_messages([messages[i] for i in turn], model) - base
        if truncate and cost > excess:
            for i in turn:
                attempt = _truncated(messages[i], excess, model, min_kept_tokens)
                if attempt is None:
                    continue
                trial = with_messages(body, _rebuild(messages, dropped, {i: attempt[0]}))
                tokens = prompt_tokens(trial)
                if tokens <= budget:
                    replaced[i] = attempt[0]
                    tokens_truncated = attempt[1]
                    current = tokens
                break
            if replaced:
                break
        dropped.update(turn)
        turns_dropped += 1
        current -= cost
    new_body = with_messages(body, _rebuild(messages, dropped, replaced))
    after = current if replaced else prompt_tokens(new_body) if dropped else before
    # Counting is not exactly additive for every model: drop further turns until it fits.
    while after > budget and turns_dropped < len(droppable):
        dropped.update(droppable[turns_dropped])
        turns_dropped += 1
        new_body = with_messages(body, _rebuild(messages, dropped, replaced))
        after = prompt_tokens(new_body)
    within = after <= budget
    if not within:
        note = (
            f"budget {budget} not reachable: the instruction messages and the last "
            f"{keep_last_turns} turn(s) alone need {after} tokens"
        )
    else:
        note = f"dropped {turns_dropped} turn(s), {len(dropped)} message(s)"
        if replaced:
            note += f"; truncated 1 message by {tokens_truncated} tokens"
    return new_body, PruneResult(
        before,
        after,
        budget,
        within,
        turns_dropped=turns_dropped,
        messages_dropped=len(dropped),
        messages_truncated=len(replaced),
        tokens_truncated=tokens_truncated,
        note=note,
    )
