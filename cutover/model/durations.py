"""Durations as a plan writes them ('30s', '15m', '8h', '1d', '1h30m', or whole seconds) and as
messages show them."""

from __future__ import annotations

import re

_D = "[0-9]{1,9}"
DURATION = rf"^(?=[0-9])(?:{_D}d)?(?:{_D}h)?(?:{_D}m)?(?:{_D}s)?$"
DURATION_HINT = "write a number and a unit: 30s, 15m, 8h, 1d (or 1h30m), or whole seconds"

_DURATION_RE = re.compile(DURATION)
_DURATION_PART = re.compile(r"([0-9]+)([dhms])")
_UNIT = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def duration_seconds(text: str) -> float | None:
    """'1h30m' -> 5400.0; None if it is not a duration."""
    if not _DURATION_RE.match(text):
        return None
    return float(sum(int(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text)))


def parse_duration(value: str | int) -> float:
    """'30s', '15m', '8h', '1d', '1h30m' or whole seconds -> seconds; ValueError otherwise."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return float(value)
    seconds = duration_seconds(value.strip()) if isinstance(value, str) else None
    if seconds is None:
        raise ValueError(f"not a duration: {value!r} ({DURATION_HINT})")
    return seconds


def format_duration(seconds: float) -> str:
    """5400 -> '1h30m'; 45 -> '45s'; 0 -> '0s' (rounded to whole seconds)."""
    left = int(round(seconds))
    if left <= 0:
        return "0s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, left = divmod(left, size)
        if count:
            out += f"{count}{unit}"
    return out
