"""Gate results are variants, not booleans: passed, failed (with reason and next action) or skipped."""

from __future__ import annotations

from dataclasses import asdict, dataclass

PASS = "PASS"
FAIL = "FAIL"
SKIPPED = "SKIPPED"


@dataclass(frozen=True)
class GateResult:
    check: str  # the check's name in the plan
    type: str  # its check type
    status: str  # PASS | FAIL | SKIPPED
    detail: str  # one PII-safe line
    next_action: str = ""  # what a person should do (empty when PASS)
    duration: float = 0.0  # seconds
    data: dict | None = None  # figures behind the detail (a metric check's judgement); None for most checks

    @property
    def passed(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["data"] is None:
            del out["data"]
        return out


def passed(check, detail: str, duration: float = 0.0, data: dict | None = None) -> GateResult:
    return GateResult(check.name, check.type, PASS, detail, "", duration, data)


def failed(check, detail: str, next_action: str, duration: float = 0.0, data: dict | None = None) -> GateResult:
    return GateResult(check.name, check.type, FAIL, detail, next_action, duration, data)


def skipped(check, detail: str, next_action: str = "") -> GateResult:
    return GateResult(check.name, check.type, SKIPPED, detail, next_action, 0.0)


def blocking(results: list[GateResult], dry_run: bool) -> list[str]:
    """The gates that stop an advance: every one that did not pass. A SKIPPED gate never lets a real
    advance through; in a dry run it does not stop the preview (the real advance runs it first)."""
    return [r.check for r in results if not (r.passed or (dry_run and r.status == SKIPPED))]
