"""One redactor for console, log file and evidence.

Two layers, applied to every string that leaves the process:
1. values registered at runtime (every secret read, every sensitive flag value) are replaced by
   `sha256:<8 hex>`, so two runs can be compared without revealing anything;
2. well-known shapes are masked by pattern: credentials in JSON fields, headers and key=value pairs,
   bearer tokens, URL user info, Shopify and OpenAI tokens, AWS access keys, emails, phone numbers.

The patterns are tuned against false positives that would make reports useless: ARNs and bare
account ids, ISO timestamps, SSM versions, durations and sha256 fingerprints pass unchanged.
"""

from __future__ import annotations

import hashlib
import re
import threading
from typing import Any, Callable, Iterable

MASK = "[REDACTED]"
# Shorter registered values ("true", "none", "prod") would mask ordinary words everywhere; secrets
# that short are not secret, and pattern-shaped values (emails, tokens) are masked anyway.
MIN_REGISTERED_LEN = 6

# Names of fields and headers whose values are credentials (matched inside a longer name).
_SENSITIVE_NAME = (
    r"(?:password|passwd|passphrase|pwd|secret|token|authorization|credential|cookie|session[_-]?id"
    r"|(?:x-[\w-]*|api[_-]?|access[_-]?|private[_-]?|client[_-]?|subscription[_-]?)key)"
)
SENSITIVE_KEY = re.compile(_SENSITIVE_NAME, re.I)
_NAME = rf"[\w.-]*?{_SENSITIVE_NAME}"  # a field name ending in a sensitive word ("secrets:" is a label)

_Rule = tuple["re.Pattern[str]", "str | Callable[[re.Match[str]], str]"]


def _phone(m: re.Match[str]) -> str:
    """Mask a candidate only if it is shaped like a phone number: an international number with '+',
    or a North American one with separators. Bare digit runs (account ids, epoch times) stay."""
    text = m.group(0)
    digits = sum(c.isdigit() for c in text)
    if not 8 <= digits <= 15:
        return text
    if text.startswith("+") or re.fullmatch(r"(?:1[ .-])?\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}", text):
        return "[REDACTED:phone]"
    return text


_RULES: list[_Rule] = [
    # "client_secret": "...", 'token': '...' (JSON and Python reprs): the whole value.
    (
        re.compile(rf"""(?i)(["'])([^"'\n]*?{_SENSITIVE_NAME}[^"'\n]*)\1(\s*:\s*)(["'])(?:\\.|(?!\4)[^\\\n])*\4"""),
        rf"\1\2\1\3\4{MASK}\4",
    ),
    # Authorization: <scheme> <credentials> -- everything to the end of the line.
    (re.compile(r"(?i)(?<![\w-])((?:proxy-)?authorization)(\s*[:=]\s*)(?![\"']?\[REDACTED)[^\r\n]+"), rf"\1\2{MASK}"),
    (re.compile(r"(?i)\bbearer\s+(?!\[REDACTED)[A-Za-z0-9._~+/=-]{6,}"), f"Bearer {MASK}"),
    # x-api-key: v, password=v, ?token=v&, client_secret: "v w"
    (
        re.compile(rf"""(?i)(?<![\w.:-])({_NAME})(\s*[:=]\s*)(?![\"']?\[REDACTED|sha256:)(?:"[^"\n]*"|'[^'\n]*'|[^\s"',;&)}}\]]+)"""),
        rf"\1\2{MASK}",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), rf"\1{MASK}@"),  # https://user:pass@host
    (re.compile(r"shp(?:at|ca|pa|ss|ua)_[A-Za-z0-9]{8,}"), "[REDACTED:shopify-token]"),
    (re.compile(r"(?<![A-Za-z0-9])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{8,}|[A-Za-z0-9]{16,})"), "[REDACTED:openai-key]"),
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])"), "[REDACTED:aws-key]"),
    # Local part: RFC 5322 atext, less '/' and '=' (an ARN's role path or a key= must survive before it).
    (re.compile(r"[A-Za-z0-9.!#$%&'*+?^_`~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"), "[REDACTED:email]"),
    # Candidates only; _phone decides. Not inside words, paths, ARNs (':'), versions or dates.
    (re.compile(r"(?<![\w+.:/-])\+?\(?\d[\d ().-]{6,22}\d(?![\w:/]|[.-]\d)"), _phone),
]


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()[:8]


class Redactor:
    """Thread-safe: gates register secrets from worker threads while the main thread prints."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []  # longest first, so a value containing another is replaced whole
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        """Never show this value (nor any of its lines) again."""
        if not value:
            return
        with self._lock:
            pieces = {value.strip(), *(line.strip() for line in value.splitlines())}
            new = {p for p in pieces if len(p) >= MIN_REGISTERED_LEN} - self._values
            if new:
                self._values |= new
                self._ordered = sorted(self._values, key=len, reverse=True)

    def register_all(self, values: Iterable[str | None]) -> None:
        for v in values:
            self.register(v)

    def text(self, s: str) -> str:
        if not s:
            return s
        if not isinstance(s, str):
            s = str(s)
        for v in self._ordered:  # a snapshot: the list is replaced, never mutated
            if v in s:
                s = s.replace(v, fingerprint(v))
        for pattern, repl in _RULES:
            s = pattern.sub(repl, s)
        return s

    def value(self, obj: Any) -> Any:
        """Redact every string inside a JSON-like structure; a string under a credential-named key
        (token, password, secret...) is masked whole."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {
                self.text(str(k)): MASK if isinstance(v, str) and v and SENSITIVE_KEY.search(str(k)) else self.value(v)
                for k, v in obj.items()
            }
        if isinstance(obj, (list, tuple)):
            return [self.value(v) for v in obj]
        return obj


def sensitive_values(plan: Any) -> list[str]:
    """Every value a plan declares for its sensitive flags (rollback and each phase's `set`)."""
    sensitive = {f.name for f in plan.flags if f.sensitive}
    values = [f.rollback for f in plan.flags if f.sensitive]
    values += [v for p in plan.phases for k, v in p.set.items() if k in sensitive]
    return values


# The process-wide redactor: logs, console and evidence all go through it.
REDACTOR = Redactor()
