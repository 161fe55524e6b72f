"""The HTTP transport of http/graphql checks: urllib, no redirects, bodies counted not kept, and every
transport failure turned into a Fail naming its class (DNS, refused, TLS, timeout...)."""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

from cutover.checks.fmt import duration
from cutover.checks.interface import Fail

CHUNK = 64 * 1024
MAX_COUNT = 10 * 1024 * 1024  # stop counting a body here ("more than 10 MB")
MAX_KEEP = 1024 * 1024  # a GraphQL reply is parsed in memory up to this size, then dropped
MAX_RETRIES_429 = 2
DEFAULT_RETRY_AFTER = 1.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn HEAD/POST into GET and carry our credential headers to any host: never follow.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass
class Reply:
    status: int
    headers: Message
    size: int  # body bytes read (capped at MAX_COUNT)
    truncated: bool
    ms: float  # latency of the last attempt
    retries: int = 0
    retry_after: float | None = None  # set on a 429 we stopped retrying
    body: bytes | None = None  # only when asked for, and only for the caller's parse

    def size_text(self) -> str:
        return f"more than {MAX_COUNT // (1024 * 1024)} MB" if self.truncated else f"{self.size} bytes"


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def origin(url: str) -> str:
    """scheme://host[:port] of a URL, without user info, path or query (which may hold tokens)."""
    parts = urlsplit(url)
    port = _port(parts)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")


def check_url(url: str) -> None:
    """Only http(s) URLs with a host (urllib would also open file:// and ftp://)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Fail(
            f"URL scheme {scheme or '(none)'!r} refused: only http and https",
            "fix the check's url in the plan (it must start with https:// or http://)",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
        ok = bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise Fail(f"url has no usable host/port ({origin(url)})", "fix the check's url in the plan (and the ${VAR}s it uses)")


def check_headers(headers: dict[str, str]) -> None:
    # A secret stored with a trailing newline is common; urllib would reject it with the value in its message.
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise Fail(
                f"header {name}: value contains a line break (secret stored with a trailing newline?)",
                "re-store the secret without the trailing newline (or fix the header in the plan), then re-run",
            )


def _read(resp, keep: bool, deadline: float, ctx) -> tuple[int, bool, bytes | None]:
    size, kept = 0, bytearray() if keep else None
    while size < MAX_COUNT:
        if ctx.clock.monotonic() > deadline:
            raise TimeoutError
        chunk = resp.read(CHUNK)
        if not chunk:
            return size, False, bytes(kept) if kept is not None else None
        size += len(chunk)
        if kept is not None and len(kept) < MAX_KEEP:
            kept.extend(chunk[: MAX_KEEP - len(kept)])
    return size, True, bytes(kept) if kept is not None else None


def _transport_fail(exc: BaseException, where: str, timeout: float) -> Fail:
    """A transport error by class. Only fixed texts and the origin are shown, never urllib's message."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, socket.gaierror):
        return Fail(
            f"DNS lookup failed for {where}",
            "check the host name in the url (and the ${VAR}s it uses) and your DNS/VPN, then re-run",
        )
    if isinstance(reason, ConnectionRefusedError):
        return Fail(
            f"connection refused by {where}",
            "check the host and port in the url and that the service is up (VPN/firewall?), then re-run",
        )
    if isinstance(reason, ssl.SSLCertVerificationError):
        why = getattr(reason, "verify_message", "") or "certificate verify failed"
        return Fail(
            f"TLS failure with {where}: {why}",
            "check the host name matches its certificate and your CA bundle / proxy, then re-run",
        )
    if isinstance(reason, ssl.SSLError):
        return Fail(
            f"TLS failure with {where}: {reason.reason or type(reason).__name__}",
            "check the url uses https on a TLS port, and any proxy in between, then re-run",
        )
    if isinstance(reason, TimeoutError):
        return Fail(
            f"no response from {where} within {duration(timeout)} (timeout)",
            "check the service is up (status page, VPN); raise the check's timeout only if it is known to be slow",
        )
    if isinstance(reason, str):  # urllib's own fixed texts ("no host given"...)
        return Fail(f"cannot reach {where}: {reason}", "fix the check's url in the plan, then re-run")
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, http.client.HTTPException)):
        return Fail(
            f"connection to {where} closed without a valid response ({type(reason).__name__})",
            "check the url (http vs https, port) and any proxy in between, then re-run",
        )
    return Fail(
        f"network error reaching {where} ({type(reason).__name__})",
        "check connectivity to the host (VPN, proxy, firewall), then re-run",
    )


def _send_once(
    ctx, method: str, url: str, headers: dict, data: bytes | None, timeout: float, keep: bool, deadline: float
) -> Reply:
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    where = origin(url)
    t0 = ctx.clock.monotonic()
    try:
        try:
            resp = _OPENER.open(req, timeout=max(timeout, 0.001))
        except urllib.error.HTTPError as err:  # a status outside 2xx is still an answer
            resp = err
        with resp:
            size, truncated, body = (0, False, None) if method == "HEAD" else _read(resp, keep, deadline, ctx)
            ms = (ctx.clock.monotonic() - t0) * 1000
            return Reply(resp.getcode(), resp.headers, size, truncated, ms, body=body)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _transport_fail(exc, where, timeout) from None


def _retry_after(reply: Reply, ctx) -> float:
    raw = (reply.headers.get("Retry-After") or "").strip()
    if not raw:
        return DEFAULT_RETRY_AFTER
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        return max((parsedate_to_datetime(raw) - ctx.clock.now()).total_seconds(), 0.0)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def send(
    ctx,
    method: str,
    url: str,
    headers: dict,
    timeout: float,
    *,
    data: bytes | None = None,
    expect: tuple[int, ...] = (200,),
    keep_body: bool = False,
) -> Reply:
    """One request within `timeout`, retrying a 429 up to twice when its Retry-After fits the time left."""
    deadline = ctx.clock.monotonic() + timeout
    retries = 0
    while True:
        remaining = deadline - ctx.clock.monotonic()
        if remaining <= 0:
            raise _transport_fail(TimeoutError(), origin(url), timeout)
        reply = _send_once(ctx, method, url, headers, data, remaining, keep_body, deadline)
        reply.retries = retries
        if reply.status != 429 or 429 in expect:
            return reply
        wait = reply.retry_after = _retry_after(reply, ctx)
        if retries >= MAX_RETRIES_429 or ctx.clock.monotonic() + wait >= deadline:
            return reply  # the caller reports the 429 and the wait we could not honour
        ctx.clock.sleep(wait)
        retries += 1


def redirect_target(reply: Reply, url: str) -> str:
    loc = reply.headers.get("Location")
    return origin(urljoin(url, loc)) if loc else "(no Location)"
