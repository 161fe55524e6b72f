"""Markdown pieces the runbook and the check types' `describe` share."""

from __future__ import annotations

from cutover.redact import Redactor

# The redactor's patterns only (emails, tokens...): the process-wide REDACTOR also masks whatever this
# process registered at runtime, which would make the text depend on what ran before it.
PATTERNS = Redactor()


def safe(text: str) -> str:
    """Plan text with credential- and PII-shaped pieces masked."""
    return PATTERNS.text(str(text))


def code(text: str) -> str:
    """An inline code span that survives backticks inside the text."""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def names(items) -> str:
    return ", ".join(code(i) for i in items)
