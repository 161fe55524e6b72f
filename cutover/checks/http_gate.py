"""http and graphql: a read-only request to an upstream, classified by outcome.

http is GET or HEAD only and graphql is a query only, even if the plan loader let something else
through: a gate must never write. Only status, latency and size are reported, never the body.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from cutover import __version__
from cutover.model.templates import fixed_host, host_allowed, is_loopback, sends_secret

from cutover.checks import http_transport as _transport
from cutover.checks.fmt import duration, one_line
from cutover.checks.interface import Fail
from cutover.checks.templates import Templates

READ_METHODS = ("GET", "HEAD")
USER_AGENT = f"cutover/{__version__} (preflight)"
MAX_ERROR_MESSAGE = 120


def _prepare(check, ctx) -> tuple[str, dict, Templates]:
    tpl = Templates(ctx)
    if sends_secret(check):  # decided before any secret is read
        _check_destination(check, ctx, tpl.expand(check.url, "url", secrets=False))
    url = tpl.expand(check.url, "url")
    if ctx.reroute_url is not None:
        url = ctx.reroute_url(url)
    _transport.check_url(url)
    headers = {"User-Agent": USER_AGENT, **tpl.expand_map(dict(check.headers))}
    _transport.check_headers(headers)
    return url, headers, tpl


def _check_destination(check, ctx, resolved: str) -> None:
    """A secret goes only over https to a host the plan names (in the url, or in allowed_hosts). In a
    sandbox or rehearsal every url is rerouted to the local stub (the secrets are the emulator's dummies):
    there the only rule is that it stays on this machine, plain http included."""
    if ctx.reroute_url is not None:
        final = ctx.reroute_url(resolved)
        if is_loopback(urlsplit(final).hostname or ""):
            return
        raise Fail(f"refusing to send the check's secret to {_transport.origin(final)}: a rerouted url must stay on "
                   "this machine; nothing was sent", "point CUTOVER_HTTP_STUB at the sandbox's local stub (127.0.0.1)")
    parts = urlsplit(resolved)
    if not host_allowed(parts.hostname, fixed_host(check.url), tuple(check.allowed_hosts)):
        raise Fail(
            f"refusing to send the check's secret to {_transport.origin(resolved)}: the host comes from a ${{VAR}} "
            "and is not in allowed_hosts; nothing was sent",
            "check the variables the url uses; if that host is right, add it to the check's allowed_hosts in the plan",
        )
    if parts.scheme.lower() != "https":
        raise Fail(
            f"refusing to send the check's secret over plain {parts.scheme or 'http'} to {_transport.origin(resolved)}; "
            "nothing was sent",
            "use https:// in the url (and in the ${VAR}s it uses): plain http carries the secret in clear",
        )


def _credential_hint(tpl: Templates) -> str:
    if tpl.secret_ids:
        return f"check secret {', '.join(tpl.secret_ids)} is current and has the needed scopes (rotate if expired)"
    return "the endpoint wants credentials: add the auth header (with a {{secret:...}}) to the check"


def _status_fail(reply: _transport.Reply, url: str, expect: tuple[int, ...], tpl: Templates) -> Fail:
    """A status outside `expect`, by class: auth, rate limit, server error, redirect, other."""
    where, code = _transport.origin(url), reply.status
    head = f"HTTP {code} from {where}"
    if code in (401, 403):
        return Fail(f"{head}: authentication/authorization failed", _credential_hint(tpl) + ", then re-run")
    if code == 429:
        wait = f"Retry-After {duration(reply.retry_after)}" if reply.retry_after is not None else "no Retry-After"
        why = f"after {reply.retries} retries" if reply.retries else "retry would not fit the timeout"
        return Fail(
            f"{head}: rate limited ({why}; {wait})",
            "wait for the rate limit to reset, check for a 429 spike or other callers sharing the key, then re-run",
        )
    if code >= 500:
        return Fail(f"{head}: server error", "the upstream is failing: check its status page; do not advance until it answers")
    if 300 <= code < 400:
        return Fail(
            f"{head}: redirect to {_transport.redirect_target(reply, url)} (not followed)",
            "point the check's url at the final location (redirects are never followed: they could move credentials)",
        )
    want = ", ".join(map(str, expect))
    return Fail(
        f"{head}: unexpected status (expected {want})",
        "check the url path, API version and method in the plan (try it by hand with curl), then re-run",
    )


def _ok(reply: _transport.Reply) -> str:
    retried = f" after {reply.retries} retr{'y' if reply.retries == 1 else 'ies'} (429)" if reply.retries else ""
    return f"HTTP {reply.status} in {reply.ms:.0f} ms, {reply.size_text()}{retried}"


def check_http(check, ctx) -> str:
    """`check`: a `cutover.checks.http.HttpCheck` (not imported: that module imports this one to run it)."""
    method = (check.method or "GET").upper()
    if method not in READ_METHODS:
        raise Fail(f"method {method} refused: http checks are GET or HEAD only", "fix the plan: use GET or HEAD (a gate never writes)")
    url, headers, tpl = _prepare(check, ctx)
    expect = tuple(check.expect_status)
    reply = _transport.send(ctx, method, url, headers, check.timeout, expect=expect)
    if reply.status not in expect:
        raise _status_fail(reply, url, expect, tpl)
    return _ok(reply)


# --- graphql -------------------------------------------------------------------------------------

_STRINGS_AND_COMMENTS = re.compile(r'"""(?:\\"""|.)*?"""|"(?:\\.|[^"\\\n])*"|#[^\n]*', re.S)
_TOKENS = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[{}()\[\]]")


def operation_keywords(query: str) -> set[str]:
    """Names at the top level of a GraphQL document (outside any braces): its operation keywords,
    operation and fragment names. Strings and comments are removed first so they cannot hide a brace."""
    text = _STRINGS_AND_COMMENTS.sub(" ", query)
    depth, words = 0, set()
    for tok in _TOKENS.findall(text):
        if tok in ("{", "(", "["):
            depth += 1
        elif tok in ("}", ")", "]"):
            depth -= 1
        elif depth == 0:
            words.add(tok)
    return words


def _is_read_only(query: str) -> bool:
    return not (operation_keywords(query) & {"mutation", "subscription"})


def _graphql_errors(body: bytes | None, ctx) -> tuple[int, str] | None:
    """(count, "CLASS: message") of a GraphQL `errors` array, or None when there is none."""
    try:
        doc = json.loads(body or b"")
    except ValueError:
        raise Fail(
            f"response is not JSON ({len(body or b'')} bytes)", "check the url points at the GraphQL endpoint, then re-run"
        ) from None
    errors = doc.get("errors") if isinstance(doc, dict) else None
    if not errors:
        return None
    first = errors[0] if isinstance(errors, list) and errors else {}
    first = first if isinstance(first, dict) else {"message": str(first)}
    ext = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
    cls = str(ext.get("code") or ext.get("classification") or "error")
    msg = one_line(ctx.redactor.text(str(first.get("message", ""))), MAX_ERROR_MESSAGE)
    return (len(errors) if isinstance(errors, list) else 1), f"{cls}: {msg}"


def check_graphql(check, ctx) -> str:
    """`check`: a `cutover.checks.http.GraphqlCheck`."""
    if not _is_read_only(check.query):
        raise Fail("GraphQL mutation/subscription refused: graphql checks run queries only",
                   "fix the plan: use a `query { ... }` (a gate never writes)")
    url, headers, tpl = _prepare(check, ctx)
    given = {k.lower() for k in headers}
    for name in ("Content-Type", "Accept"):
        if name.lower() not in given:
            headers[name] = "application/json"
    data = json.dumps({"query": check.query, "variables": dict(check.variables or {})}).encode()
    expect = tuple(check.expect_status)
    reply = _transport.send(ctx, "POST", url, headers, check.timeout, data=data, expect=expect, keep_body=True)
    body, reply.body = reply.body, None  # parsed here, then dropped
    if reply.status not in expect:
        raise _status_fail(reply, url, expect, tpl)
    found = _graphql_errors(body, ctx)
    if found:
        n, first = found
        raise Fail(
            f"GraphQL errors: {n}; first {first}",
            f"HTTP {reply.status} but the query failed: usually missing access scopes; " + _credential_hint(tpl),
        )
    return _ok(reply)
