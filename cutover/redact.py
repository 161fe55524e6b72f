"""One redactor for console, log file and evidence.

Secret values and sensitive flag values are registered at runtime; well-known token shapes and PII
(emails, bearer tokens, AWS keys, Shopify and OpenAI keys) are masked by pattern. Sensitive values are
shown as `sha256:<8 hex>` so two runs can be compared without revealing anything.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(authorization|x-[a-z-]*(key|token)|api[-_]?key)(\s*[:=]\s*)(\"?)[^\s\",}]+"), r"\1\3\4[REDACTED]"),
    (re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer [REDACTED]"),
    (re.compile(r"\bshp(at|ca|pa|ss)_[A-Za-z0-9]{8,}"), "[REDACTED:shopify-token]"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "[REDACTED:openai-key]"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[REDACTED:aws-key]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[REDACTED:email]"),
    (re.compile(r"(?i)(\"[^\"]*(password|passwd|token|secret|authorization)[^\"]*\"\s*:\s*)\"[^\"]*\""), r'\1"[REDACTED]"'),
    # Phone numbers; not digits inside ARNs, paths, versions or timestamps (account ids are not PII).
    (re.compile(r"(?<![\w.:/-])\+?\d[\d -]{8,}\d(?![\w.:/-])"), "[REDACTED:phone]"),
]

MIN_REGISTERED_LEN = 4  # shorter values ("true", "none") would mask ordinary words


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        """Never show this value (nor any of its lines) again."""
        if not value:
            return
        with self._lock:
            for piece in {value, *value.splitlines()}:
                piece = piece.strip()
                if len(piece) >= MIN_REGISTERED_LEN:
                    self._values.add(piece)

    def text(self, s: str) -> str:
        if not s:
            return s
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for v in values:
            if v in s:
                s = s.replace(v, fingerprint(v))
        for pattern, repl in _PATTERNS:
            s = pattern.sub(repl, s)
        return s

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like structure."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.text(str(k)): self.value(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        return obj


# The process-wide redactor: logs, console and evidence all go through it.
REDACTOR = Redactor()
