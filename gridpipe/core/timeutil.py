"""Timezone-aware UTC time, the only clock gridpipe uses."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def isoformat(ts: datetime) -> str:
    """ISO-8601 text of an aware datetime; refuses naive ones."""
    if ts.tzinfo is None:
        raise ValueError("naive datetime: gridpipe only stores timezone-aware UTC times")
    return ts.astimezone(UTC).isoformat()


def utc_text(value: object) -> str | None:
    """ISO-8601 UTC text of a time a server reported (a datetime or ISO text; naive means UTC), else None."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return isoformat(value if value.tzinfo else value.replace(tzinfo=UTC))
