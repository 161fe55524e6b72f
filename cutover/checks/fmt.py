"""Human formatting for gate details: short durations (45s, 14m, 2.3h, 1.5d) and UTC stamps."""

from __future__ import annotations

from datetime import datetime, timezone


def _num(x: float) -> str:
    # One decimal at most, and none when it is .0: "8h", "2.3h".
    return f"{x:.1f}".rstrip("0").rstrip(".")


def duration(seconds: float) -> str:
    s = max(float(seconds), 0.0)
    if s < 10:
        return _num(s) + "s"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return _num(s / 60) + "m"
    if s < 86400:
        return _num(s / 3600) + "h"
    return _num(s / 86400) + "d"


def stamp(dt: datetime) -> str:
    """An unambiguous UTC time for a detail line: 2026-01-01T03:04:05Z."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def one_line(text: str, limit: int = 300) -> str:
    """Collapse whitespace to one line and cut to `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
