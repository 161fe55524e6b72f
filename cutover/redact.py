"""One redactor for console, log file, evidence, SSM and SNS.

Two layers, applied to every string that leaves the process:
1. values registered at runtime (every secret read, every field of a JSON secret, every sensitive flag
   value) are replaced by `[REDACTED:sensitive]`, and so are the forms a program passes them on in:
   URL-encoded, base64 (also inside a longer base64 text), JSON- and HTML-escaped;
2. well-known shapes are masked by pattern: credentials in JSON fields, headers and key=value pairs,
   bearer tokens, URL user info, Shopify and OpenAI tokens, AWS access keys and secret keys, emails
   (also URL-, HTML- and JSON-escaped, and with non-ASCII parts), phone numbers.

No hash of a private value is ever shown: an unkeyed hash of a short value ("none", an email) is a
lookup away. A sensitive flag's value is displayed by `shown` below: its `public_values` in plain
text, anything else as "(sensitive)".

The patterns are tuned against false positives that would make reports useless: ARNs and bare
account ids, ISO timestamps, SSM versions, durations, run ids and sha256 digests pass unchanged.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from functools import cached_property
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"
REGISTERED_MASK = "[REDACTED:sensitive]"
HIDDEN = "(sensitive)"  # how a sensitive flag value that is not public is displayed
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

_Rule = tuple["re.Pattern[str] | _IfPresent", "str | Callable[[re.Match[str]], str]"]


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


_AWS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])")
_NEAR_KEY_ID = re.compile(rf"{_AWS_KEY_ID.pattern}|\[REDACTED:aws-key\]")
_CREDENTIAL_WORD = re.compile(r"(?i)secret|credential|password|private|aws[_ -]?key|access[_ -]?key|token")
_CONTEXT = 80  # characters either side in which a key id or a credential word makes a token a secret key


def _aws_secret_key(m: re.Match[str]) -> str:
    """An AWS secret access key is 40 characters of base64 alphabet with nothing to tell it apart, so a
    candidate is masked when the text says what it is (an access key id or a credential word near it),
    or when it is shaped like one on its own: both cases, a digit, and a '/' or '+'.

    The trade-off: a bare key without '/' or '+' (about 1 in 4 keys) is missed unless something near it
    names it, and any other 40-character base64 token with a '/' or '+' is masked. Hex digests (one case,
    40 or 64 characters), ARNs, paths with '-', '_' or '.', timestamps and run ids never match."""
    token, text = m.group(0), m.string
    around = text[max(0, m.start() - _CONTEXT):m.start()] + " " + text[m.end():m.end() + _CONTEXT]
    shaped = (any(c.islower() for c in token) and any(c.isupper() for c in token) and any(c.isdigit() for c in token)
              and ("/" in token or "+" in token))
    if shaped or _NEAR_KEY_ID.search(around) or _CREDENTIAL_WORD.search(text[max(0, m.start() - _CONTEXT):m.start()]):
        return "[REDACTED:aws-secret-key]"
    return token


# Emails, also as programs pass them on: the '@' (and dots) URL-, HTML- or JSON-escaped, non-ASCII
# (internationalised) local parts and domains, and escaped characters inside either.
_AT = r"(?:@|%(?:25)?40|\\+u0040|\\x40|&#0*64;|&#[xX]0*40;|&commat;)"
_DOT = r"(?:\.|%(?:25)?2[eE]|\\+u002[eE]|&#0*46;|&#[xX]0*2[eE];|&period;)"
# Each escaped character has one way to match (a '%' or '&' could otherwise be read two ways, and a
# failed match would backtrack through every combination).
_ESCAPED = r"\\+u[0-9A-Fa-f]{4}|&#[xX][0-9A-Fa-f]+;|&#[0-9]+;"
_DOMAIN_ESCAPED = rf"(?!{_AT}|{_DOT})(?:%[0-9A-Fa-f]{{2}}|{_ESCAPED})"
# Local part: RFC 5322 atext, less '/' and '=' (an ARN's role path or a key= must survive before it);
# '%XX' is atext already. At most 64 characters (RFC 5321's limit), so a long run without an '@'
# costs linear time, not quadratic; a longer run before an '@' is masked over its last 64.
_ATEXT = r"[\w.!#$%&'*+?^`~-]"
_LOCAL = rf"(?:{_ATEXT}|(?!{_AT})(?:{_ESCAPED})){{1,64}}"
_LABEL = rf"(?:[^\W_]|-|{_DOMAIN_ESCAPED})+"
_TLD = rf"(?:[^\W\d_]|{_DOMAIN_ESCAPED}){{2,}}"


class _IfPresent:
    """A pattern tried only on text holding its anchor: most text holds no '@' in any form, and the
    email pattern is the costly one, to run and to compile (~1 ms, so on first need: `validate` prints
    no '@' and never compiles it)."""

    def __init__(self, anchor: str, pattern: str) -> None:
        self.anchor, self._source = re.compile(anchor), pattern

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self._source)  # (two threads may both compile it once: the same pattern)

    def sub(self, repl, text: str) -> str:
        return self.pattern.sub(repl, text) if self.anchor.search(text) else text


_EMAIL = _IfPresent(_AT, rf"{_LOCAL}{_AT}(?:{_LABEL}{_DOT})+{_TLD}")

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
        re.compile(rf"""(?i)(?<![\w.:-])({_NAME})(\s*[:=]\s*)(?![\"']?\[REDACTED)(?:"[^"\n]*"|'[^'\n]*'|[^\s"',;&)}}\]]+)"""),
        rf"\1\2{MASK}",
    ),
    # https://user:pass@host; the scheme starts where a run of scheme characters starts (linear time)
    (re.compile(r"(?i)(?<![a-z0-9+.-])([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), rf"\1{MASK}@"),
    (re.compile(r"shp(?:at|ca|pa|ss|ua)_[A-Za-z0-9]{8,}"), "[REDACTED:shopify-token]"),
    (re.compile(r"(?<![A-Za-z0-9])sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{8,}|[A-Za-z0-9]{16,})"), "[REDACTED:openai-key]"),
    # Before the key ids: a secret key is recognised by the key id next to it.
    (re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"), _aws_secret_key),
    (_AWS_KEY_ID, "[REDACTED:aws-key]"),
    (_EMAIL, "[REDACTED:email]"),
    # Candidates only; _phone decides. Not inside words, paths, ARNs (':'), versions or dates.
    (re.compile(r"(?<![\w+.:/-])\+?\(?\d[\d ().-]{6,22}\d(?![\w:/]|[.-]\d)"), _phone),
]


def _specials_escaped(value: str, fmt: str) -> str:
    """Every character but an ASCII letter or digit written as `fmt` of its code point (\\u0040, &#64;)."""
    return "".join(c if c.isascii() and c.isalnum() else fmt.format(ord(c)) for c in value)


_URLSAFE = str.maketrans("+/", "-_")


def _base64_cores(data: bytes) -> set[str]:
    """The part of base64(... value ...) that depends on the value's bytes alone, at each of the three
    alignments it can have inside a longer text, in both alphabets: so the value is found inside an
    encoded Basic credential or JSON document, not only when it is encoded on its own."""
    cores = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        # Output character i carries input bits [6i, 6i + 6): keep those lying wholly inside the value.
        core = encoded[-(-8 * offset // 6):8 * (offset + len(data)) // 6]
        cores |= {core, core.translate(_URLSAFE)}
    whole = base64.b64encode(data).decode()
    return cores | {whole, whole.translate(_URLSAFE)}


def encoded_forms(value: str) -> set[str]:
    """The value and the forms a program passes it on in: URL-encoded (upper- and lower-case hex),
    base64 (standard and URL-safe, padded or not, also inside a longer encoded text, also of the
    JSON-escaped form), JSON-escaped
    (with \\uXXXX for non-ASCII and for every special character) and HTML-escaped (named, decimal and
    hex entities)."""
    url = {quote(value, safe=""), quote(value), quote_plus(value), quote_plus(value, safe="/")}
    url |= {re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), u) for u in url}
    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], html.escape(value),
               html.escape(value, quote=False)}
    escaped |= {_specials_escaped(value, fmt) for fmt in ("\\u{:04x}", "\\u{:04X}", "&#{};", "&#x{:x};", "&#x{:X};")}
    # base64 of the value, and of its JSON-escaped form (a JSON document encoded whole: a token's payload)
    cores = _base64_cores(value.encode()) | _base64_cores(json.dumps(value)[1:-1].encode())
    return {value} | url | escaped | cores


def _json_strings(value: str) -> list[str]:
    """Every string leaf of a JSON document (a JSON secret's fields); [] when it is not one."""
    if value.lstrip()[:1] not in ("{", "["):
        return []
    try:
        doc = json.loads(value)
    except ValueError:
        return []
    found, stack = [], [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            stack += list(node.values())
        elif isinstance(node, list):
            stack += node
    return found


class Redactor:
    """Thread-safe: gates register secrets from worker threads while the main thread prints."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []  # longest first, so a value containing another is replaced whole
        self._lock = threading.Lock()

    def register(self, value: str | None) -> None:
        """Never show this value again: nor any of its lines, any string field of it when it is a JSON
        document, or any of their encoded forms."""
        if not value:
            return
        pieces = {value.strip(), *(line.strip() for line in value.splitlines())}
        for leaf in _json_strings(value):
            pieces |= {leaf.strip(), *(line.strip() for line in leaf.splitlines())}
        forms = {form for p in pieces if len(p) >= MIN_REGISTERED_LEN for form in encoded_forms(p)}
        with self._lock:
            new = {f for f in forms if len(f) >= MIN_REGISTERED_LEN} - self._values
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
                s = s.replace(v, REGISTERED_MASK)
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


def is_public(flag: Any, value: str) -> bool:
    return flag.is_public(value)  # (model.Flag.is_public: the one definition)


def shown(flag: Any, value: str | None, *, label_rollback: bool = False) -> str | None:
    """The one way a flag value is displayed, wherever it is (console, status, evidence, runbook, guard,
    validate): the value when it is public, else "(sensitive)", never a hash of it. `label_rollback`
    (for people, not for machine fields) says when a sensitive flag's value is its rollback value."""
    if value is None:
        return None
    text = value if is_public(flag, value) else HIDDEN
    if not (label_rollback and flag.sensitive and value == flag.rollback):
        return text
    return "(sensitive, rollback value)" if text == HIDDEN else f"{text} (rollback value)"


def sensitive_values(plan: Any) -> list[str]:
    return list(plan.sensitive_values)  # (model.Plan.sensitive_values: computed once per plan)


# The process-wide redactor: logs, console and evidence all go through it.
REDACTOR = Redactor()
