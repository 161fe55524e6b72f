"""The way a check reports anything but a pass: raise Fail(detail, next_action) and run_check turns it
into a FAIL; raise Skip(detail, next_action) for a check that must not run here (a SKIPPED)."""

from __future__ import annotations

from dataclasses import dataclass


class Fail(Exception):
    def __init__(self, detail: str, next_action: str, data: dict | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_action = next_action
        self.data = data  # figures for evidence and --json (a metric check's judgement)


@dataclass(frozen=True)
class Passed:
    """A check may return this instead of a bare detail string, to carry figures into the result."""

    detail: str
    data: dict | None = None


class Skip(Fail):
    """Not run, for a reason that is no failure (a dry run does not run a program that may write)."""
