"""A fault-injecting HTTP proxy in front of the emulator, for fault tests, rehearsals and benchmarks.

Any process reaches it through AWS_ENDPOINT_URL, so faults reach the real client code (botocore's
retries, our adapters) from outside, and a killed process cannot hide from it. It can:

- hold PutParameter to a write quota (at most N in any one-second window) and answer
  ThrottlingException beyond, as SSM does account-wide;
- answer a seeded share of calls with a 500, a ThrottlingException, or a dropped connection;
- apply a write and then drop the connection (the client sees an error for a write that happened);
- serve stale reads: the previous value of a just-written parameter for the next K reads of it;
- deny operations (AccessDeniedException), optionally only for chosen parameter names;
- hold a write until the test releases it, so it lands late (a preempted run's in-flight write),
  and call back after every applied write (to release a held one at an exact moment);
- refuse the next Lambda UpdateFunctionConfiguration calls with PreconditionFailedException, as
  Lambda does when the function changed since the caller read its RevisionId (moto ignores
  RevisionId), optionally after making that change itself;
- SIGKILL a client process right after its k-th write has been applied.

Everything is counted, so tests and benchmarks can report what was injected.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sys
import threading
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

WRITE_OPERATIONS = {"PutParameter", "DeleteParameter", "DeleteParameters", "LabelParameterVersion",
                    "UpdateFunctionConfiguration"}
_LAMBDA_CONFIGURATION = re.compile(r"^/2015-03-31/functions/([^/?]+)/configuration")
_RPC_V2_OPERATION = re.compile(r"^/service/[^/]+/operation/([^/?]+)")  # smithy rpc-v2-cbor (CloudWatch)


@dataclass
class Faults:
    """What to inject. Rates are shares of calls (0..1), drawn from a seeded RNG."""

    seed: int = 0
    write_quota: int | None = None  # PutParameter calls allowed in any 1 s window
    error_rate: float = 0.0  # share of calls answered 500
    throttle_rate: float = 0.0  # share of calls answered ThrottlingException
    drop_rate: float = 0.0  # share of calls whose connection is dropped before forwarding
    lost_response_rate: float = 0.0  # share of writes applied, then the connection dropped
    stale_reads: int = 0  # reads of a just-written parameter that still see the old value
    deny: set[str] = field(default_factory=set)  # operations answered AccessDeniedException
    deny_names: set[str] | None = None  # ...only when the request names one of these parameters (None: always)
    kill_pid: int | None = None  # SIGKILL this process...
    kill_after_writes: int | None = None  # ...right after its k-th applied write
    only_operations: set[str] | None = None  # random faults only on these operations (None: all)
    revision_conflicts: int = 0  # the next N UpdateFunctionConfiguration calls: PreconditionFailedException
    before_conflict: Callable[[str], None] | None = None  # called with the function name before each refusal
    holds: list["Hold"] = field(default_factory=list)  # writes held until released (each hold catches one write)
    after_write: Callable[[str, str, str | None], None] | None = None  # (operation, name, value) once applied


@dataclass
class Hold:
    """Catches the next write to `name` (a parameter, or "lambda:FUNCTION") whose value is `value` (None:
    any) and keeps it until `release()`, then forwards it as it was sent, whether the client that sent
    it is still waiting or not (AWS applies a request it received even if the caller has died)."""

    name: str
    value: str | None = None
    timeout: float = 60.0  # never hold a request longer than this
    arrived: threading.Event = field(default_factory=threading.Event)  # the write is being held
    landed: threading.Event = field(default_factory=threading.Event)  # ...and has been applied upstream
    _released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self._released.set()

    def matches(self, name: str, value: str | None) -> bool:
        return not self.arrived.is_set() and name == self.name and self.value in (None, value)


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults | None = None) -> None:
        self.upstream = urlsplit(upstream)
        self.faults = faults or Faults()
        self.rng = random.Random(self.faults.seed)
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()  # operation -> requests received
        self.injected: Counter[str] = Counter()  # fault kind -> times injected
        self.applied_writes = 0
        self.write_log: list[tuple[float, str, str]] = []  # (time, operation, parameter name) applied
        self._put_times: deque[float] = deque()
        self._last_seen: dict[str, dict] = {}  # parameter name -> last Parameter record served
        self._stale: dict[str, tuple[dict, int]] = {}  # name -> (old record, reads left)
        self._server: ThreadingHTTPServer | None = None

    # --- lifecycle ---
    def start(self) -> "FaultProxy":
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def reconfigure(self, faults: Faults) -> None:
        with self.lock:
            self.faults = faults
            self.rng = random.Random(faults.seed)
            self.applied_writes = 0
            self._put_times.clear()
            self._stale.clear()

    # --- decisions (under the lock) ---
    def _decide(self, operation: str, names: set[str] = frozenset()) -> str | None:
        f = self.faults
        self.calls[operation] += 1
        if operation in f.deny and (f.deny_names is None or names & f.deny_names):
            return "deny"
        if operation == "UpdateFunctionConfiguration" and f.revision_conflicts > 0:
            f.revision_conflicts -= 1
            return "conflict"
        if operation == "PutParameter" and f.write_quota is not None:
            now = time.monotonic()
            while self._put_times and now - self._put_times[0] >= 1.0:
                self._put_times.popleft()
            if len(self._put_times) >= f.write_quota:
                return "quota"
            self._put_times.append(now)
        if f.only_operations is not None and operation not in f.only_operations:
            return None
        roll = self.rng.random()
        for kind, rate in (("error", f.error_rate), ("throttle", f.throttle_rate), ("drop", f.drop_rate)):
            if roll < rate:
                return kind
            roll -= rate
        if operation in WRITE_OPERATIONS and self.rng.random() < f.lost_response_rate:
            return "lose"
        return None


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A client that dies mid-request (SIGKILLed by a kill point) resets its connection: that is the
        fault under test, not an error to print (into the stderr of whatever the test runs next)."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _request(body: bytes, path: str) -> tuple[set[str], str | None]:
    """The names a request touches (SSM Name/Names, or "lambda:FUNCTION") and the value it writes."""
    function = _LAMBDA_CONFIGURATION.match(path)
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    if function:
        return {"lambda:" + unquote(function.group(1))}, json.dumps(doc.get("Environment"), sort_keys=True)
    names = doc.get("Names") if isinstance(doc.get("Names"), list) else [doc.get("Name")]
    return {n for n in names if isinstance(n, str)}, doc.get("Value")


def _cbor_text_map(doc: dict[str, str]) -> bytes:
    """A CBOR map of short text strings (what an rpc-v2-cbor error body needs), without a CBOR library."""

    def head(major: int, n: int) -> bytes:
        return bytes([major | n]) if n < 24 else bytes([major | 25]) + n.to_bytes(2, "big")

    out = head(0xA0, len(doc))
    for k, v in doc.items():
        for text in (k.encode(), v.encode()):
            out += head(0x60, len(text)) + text
    return out


def _operation(headers, body: bytes, method: str = "POST", path: str = "") -> str:
    lambda_config = _LAMBDA_CONFIGURATION.match(path)
    if lambda_config:  # Lambda is REST: the operation is the method on the path
        return "UpdateFunctionConfiguration" if method == "PUT" else "GetFunctionConfiguration"
    rpc_v2 = _RPC_V2_OPERATION.match(path)
    if rpc_v2:
        return rpc_v2.group(1)
    target = headers.get("X-Amz-Target", "")
    if target:
        return target.rsplit(".", 1)[-1]
    if body:
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    return "?"


def _handler(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without TCP_NODELAY the body waits for the client's
        # delayed ACK (about 40 ms per call on a kept-alive connection), a delay AWS does not have.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _aws_error(self, status: int, code: str, message: str) -> None:
            if "x-www-form-urlencoded" in self.headers.get("Content-Type", ""):  # query protocol (STS): XML
                body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>"
                        f"</Error><RequestId>fault-proxy</RequestId></ErrorResponse>").encode()
                return self._reply(status, body, {"Content-Type": "text/xml"})
            if _RPC_V2_OPERATION.match(self.path):  # CloudWatch speaks CBOR
                return self._reply(status, _cbor_text_map({"__type": code, "message": message}),
                                   {"Content-Type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"})
            body = json.dumps({"__type": code, "message": message}).encode()
            self._reply(status, body, {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "fault-proxy",
                                         "x-amzn-ErrorType": code})

        def _drop(self) -> None:
            self.close_connection = True
            try:
                self.connection.shutdown(2)
            except OSError:
                pass

        def _forward(self, body: bytes) -> tuple[int, bytes, dict[str, str]]:
            conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read(), dict(resp.getheaders())
            finally:
                conn.close()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            operation = _operation(self.headers, body, self.command, self.path)
            names, value = _request(body, self.path)
            hold = None
            with proxy.lock:
                fault = proxy._decide(operation, names)
                if fault:
                    proxy.injected[fault] += 1
                elif operation in WRITE_OPERATIONS:
                    hold = next((h for h in proxy.faults.holds if any(h.matches(n, value) for n in names)), None)
                    if hold:
                        hold.arrived.set()
                        proxy.injected["held"] += 1
                before_conflict = proxy.faults.before_conflict
            if fault == "conflict":
                function = unquote(_LAMBDA_CONFIGURATION.match(self.path).group(1))
                if before_conflict:
                    before_conflict(function)  # someone else's change, between the client's read and write
                return self._aws_error(412, "PreconditionFailedException",
                                       "The Revision Id provided does not match the latest Revision Id.")
            if fault == "deny":
                return self._aws_error(400, "AccessDeniedException", f"User is not authorized to perform: {operation}")
            if fault in ("quota", "throttle"):
                return self._aws_error(400, "ThrottlingException", "Rate exceeded")
            if fault == "error":
                return self._aws_error(500, "InternalServerError", "injected server error")
            if fault == "drop":
                return self._drop()
            if hold:
                hold._released.wait(hold.timeout)
            status, rbody, rheaders = self._forward(body)
            if operation in WRITE_OPERATIONS and status == 200:
                self._after_write(operation, body, self.path)
                if hold:
                    hold.landed.set()
                if proxy.faults.after_write:
                    proxy.faults.after_write(operation, next(iter(names), ""), value)
            elif operation == "GetParameters" and status == 200:
                rbody = self._maybe_stale(rbody)
            if fault == "lose":
                return self._drop()
            try:
                self._reply(status, rbody, rheaders)
            except OSError:  # the client is gone (killed while its request was held): the write stands
                self.close_connection = True

        do_GET = do_POST  # moto's control API and the recorder pass through unchanged
        do_PUT = do_POST  # Lambda's UpdateFunctionConfiguration

        def _after_write(self, operation: str, body: bytes, path: str) -> None:
            try:
                name = json.loads(body or b"{}").get("Name", "")
            except ValueError:
                name = ""
            function = _LAMBDA_CONFIGURATION.match(path)
            if function:
                name = "lambda:" + unquote(function.group(1))
            kill = False
            with proxy.lock:
                proxy.applied_writes += 1
                proxy.write_log.append((time.monotonic(), operation, name))
                f = proxy.faults
                if operation == "PutParameter" and f.stale_reads and name in proxy._last_seen:
                    proxy._stale[name] = (proxy._last_seen[name], f.stale_reads)
                if f.kill_pid and f.kill_after_writes and proxy.applied_writes == f.kill_after_writes:
                    kill = True
            if kill:
                # The write is applied in the emulator; the client dies before it learns that.
                try:
                    os.kill(f.kill_pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        def _maybe_stale(self, rbody: bytes) -> bytes:
            try:
                doc = json.loads(rbody)
            except ValueError:
                return rbody
            changed = False
            with proxy.lock:
                for i, p in enumerate(doc.get("Parameters", [])):
                    name = p.get("Name")
                    old = proxy._stale.get(name)
                    if old and old[0].get("Version", 0) < p.get("Version", 0):
                        doc["Parameters"][i] = old[0]
                        proxy._stale[name] = (old[0], old[1] - 1)
                        if old[1] <= 1:
                            del proxy._stale[name]
                        proxy.injected["stale_read"] += 1
                        changed = True
                    else:
                        proxy._last_seen[name] = p
            return json.dumps(doc).encode() if changed else rbody

    return Handler
