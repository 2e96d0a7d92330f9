"""Report periods: ``1h``, ``24h``, ``7d``, ``30d``, ``month`` (this calendar month so far),
``YYYY-MM`` (a whole calendar month), or an explicit ``from``/``to`` range. All UTC."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from thrifty.errors import InvalidRequestError

_RELATIVE = re.compile(r"^(\d+)([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime
    label: str

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "label": self.label}


def _parse_time(value: str, param: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequestError(
            f"{param}: {value!r} is not an ISO-8601 date or time", param=param
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def parse_period(
    period: str | None = "30d",
    *,
    start: str | None = None,
    end: str | None = None,
    now: datetime | None = None,
) -> Period:
    """A ``Period`` from a name or a custom range; a bad value is a 400 naming it."""
    now = now or datetime.now(UTC)
    if start or end:
        s = _parse_time(start, "from") if start else datetime(1970, 1, 1, tzinfo=UTC)
        e = _parse_time(end, "to") if end else now
        if e <= s:
            raise InvalidRequestError("'to' must be after 'from'", param="to")
        return Period(s, e, f"{s.isoformat()} → {e.isoformat()}")
    p = (period or "30d").strip().lower()
    if p == "month":
        s, _ = month_bounds(now.year, now.month)
        return Period(s, now, now.strftime("%Y-%m") + " (to date)")
    if re.fullmatch(r"\d{4}-\d{2}", p):
        year, month = int(p[:4]), int(p[5:])
        if not 1 <= month <= 12:
            raise InvalidRequestError(f"period {period!r}: no such month", param="period")
        s, e = month_bounds(year, month)
        return Period(s, e, p)
    m = _RELATIVE.match(p)
    if not m:
        raise InvalidRequestError(
            f"period {period!r}: expected 1h, 24h, 7d, 30d, month, YYYY-MM or from/to",
            param="period",
        )
    delta = timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})
    return Period(now - delta, now, p)
