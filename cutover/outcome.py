"""What a use case returns for the CLI to render (kept apart so light commands import nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Outcome:
    exit_code: int
    headline: str  # the one line a person reads first
    lines: list[str] = field(default_factory=list)  # further human output
    data: dict = field(default_factory=dict)  # the --json document
    hint: str = ""
    evidence_path: str | None = None
