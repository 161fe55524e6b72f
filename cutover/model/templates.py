"""The syntax of a check field's templates, the one definition: `${VAR}`, `${VAR:-default}`,
`{{secret:ID}}` and `{{secret:ID#key}}`. Expansion (checks.templates), the secrets a check reads (checks.secret_refs),
the sandbox's seeding, the IAM policy and the runbook all read templates through these.

Where a secret may go is decided from the plan's text (`sends_secret`, `fixed_host`, `host_allowed`):
the plan loader refuses what it can see statically, the http gate checks the resolved url."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit


_VAR = r"\$\{(?P<var>[A-Za-z_][A-Za-z0-9_]*)(?P<dflt>:-(?P<default>[^}]*))?\}"
_SECRET = r"\{\{\s*secret:(?P<sid>[^}#]+?)(?:#(?P<key>[^}]+?))?\s*\}\}"
ENV_REF = re.compile(_VAR)
SECRET_REF = re.compile(_SECRET)
TOKEN = re.compile(f"{_VAR}|{_SECRET}")  # one pass: an expanded value is never expanded again


def expand_vars(template: str, env) -> str:
    """${VAR} / ${VAR:-default} for display; an unset ${VAR} without a default stays as written."""
    return ENV_REF.sub(lambda m: env.get(m["var"]) or (m["default"] if m["default"] is not None else m[0]), template)


def sends_secret(check) -> bool:
    """Whether an http/graphql check puts a {{secret:...}} into its request (url or headers)."""
    texts = [check.url, *(str(v) for v in dict(check.headers).values())]
    return any(m.group("sid") for t in texts for m in TOKEN.finditer(t))


def fixed_host(url_template: str) -> str | None:
    """The host of a url as the plan writes it out, or None when a ${VAR} decides it (a variable in
    the scheme or authority, or a url that starts with one: `${BASE:-https://x}/path`)."""
    scheme, sep, rest = url_template.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not sep or "${" in scheme or "${" in authority or "{{" in authority:
        return None
    return _norm(urlsplit(url_template).hostname)


def _norm(host: str | None) -> str | None:
    return host.lower().rstrip(".") if host else None


def host_allowed(host: str | None, fixed: str | None, allowed: tuple[str, ...]) -> bool:
    """`host` is the one the plan writes, or one of `allowed` ("*.example.com": any host under it)."""
    host = _norm(host)
    if not host:
        return False
    for pattern in (fixed, *allowed):
        pattern = _norm(pattern)
        if pattern and (host == pattern or (pattern.startswith("*.") and host.endswith(pattern[1:]))):
            return True
    return False


def is_loopback(host: str) -> bool:
    host = (_norm(host) or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
