"""The in-memory record of fired alerts behind ``GET /admin/alerts`` (per process; lost on
restart), and the JSON form of an alert every sink shares."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from thrifty.budgets.alerts import Alert


def plain_value(value: Any) -> Any:
    """``value`` with datetimes as ISO strings and tuples as lists (plain JSON types)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_value(v) for v in value]
    return value


def alert_json(alert: Alert) -> dict[str, Any]:
    """An alert as plain JSON."""
    return {
        "kind": alert.kind,
        "severity": alert.severity,
        "subject": alert.subject,
        "period": alert.period,
        "dedup_key": alert.dedup_key,
        "message": alert.message,
        "at": alert.at.isoformat(),
        "data": plain_value(alert.data),
    }


# -- sinks ------------------------------------------------------------------------------------


@dataclass(slots=True)
class AlertRecord:
    """A fired alert and its state: ``firing`` until resolved (the condition ended: a new
    period, a reset, a circuit closing), with what each sink made of it."""

    id: int
    alert: Alert
    state: Literal["firing", "resolved"] = "firing"
    resolved_at: datetime | None = None
    resolution: str | None = None
    deliveries: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **alert_json(self.alert),
            "state": self.state,
            "fired_at": self.alert.at.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolution": self.resolution,
            "deliveries": dict(self.deliveries),
        }


class AlertLog:
    """The last ``max_entries`` fired alerts, in memory (per process; lost on restart)."""

    def __init__(self, max_entries: int = 1000) -> None:
        self._records: deque[AlertRecord] = deque()
        self._by_key: dict[str, AlertRecord] = {}
        self._max = max(1, max_entries)
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self._records)

    def add(self, alert: Alert) -> AlertRecord:
        """Record a fired alert (an alert whose ``dedup_key`` is present returns its record)."""
        rec = self._by_key.get(alert.dedup_key)
        if rec is not None:
            return rec
        rec = AlertRecord(next(self._ids), alert)
        self._records.append(rec)
        self._by_key[alert.dedup_key] = rec
        while len(self._records) > self._max:
            old = self._records.popleft()
            if self._by_key.get(old.alert.dedup_key) is old:
                del self._by_key[old.alert.dedup_key]
        return rec

    def resolve(
        self,
        dedup_key: str | None = None,
        *,
        kind: str | None = None,
        subject: str | None = None,
        period: str | None = None,
        reason: str = "resolved",
        at: datetime | None = None,
    ) -> int:
        """Resolve the firing alerts matching every filter given; returns how many."""
        want = {"dedup_key": dedup_key, "kind": kind, "subject": subject, "period": period}
        n = 0
        for rec in self._records:
            if rec.state == "firing" and _match(rec.alert, want):
                rec.state, rec.resolution = "resolved", reason
                rec.resolved_at = at or datetime.now(UTC)
                n += 1
        return n

    def entries(
        self,
        *,
        state: str | None = None,
        kind: str | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[AlertRecord]:
        """Records matching the filters given, newest first."""
        want = {"kind": kind, "subject": subject}
        out = [
            r
            for r in reversed(self._records)
            if (state is None or r.state == state) and _match(r.alert, want)
        ]
        return out if limit is None else out[: max(0, limit)]


def _match(alert: Alert, want: Mapping[str, str | None]) -> bool:
    return all(v is None or getattr(alert, k) == v for k, v in want.items())
