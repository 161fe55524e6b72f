"""The embedded sandbox: an AWS emulator (moto server on loopback) and a local HTTP stub, seeded from a plan.

Used by `cutover sandbox` (hands-on), `cutover rehearse` (end to end, with an injected incident) and the
integration tests. moto and boto3 are imported lazily (moto via Emulator.start, boto3 only inside
cutover.adapters.aws), so importing this module stays cheap.

moto keeps its backends in process-global state: run one Emulator per process.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
import os
import re
import secrets
import tempfile
import threading
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Mapping, MutableMapping
from urllib.parse import parse_qs, urlsplit, urlunsplit

from cutover import checks as check_types
from cutover.model.plan import Plan, function_name
from cutover.checks.metric import SEED_AHEAD, inside, write_regression
from cutover.checks import secret_refs
from cutover.model.durations import format_duration
from cutover.model.templates import expand_vars

if TYPE_CHECKING:
    from cutover.sandbox.seed import Written

DUMMY_KEY = "testing"
# A seeded Lambda function also holds variables the plan does not own, as a real one does: every
# command must leave them exactly as they were.
OTHER_VARIABLES = {"LOG_LEVEL": "INFO", "POWERTOOLS_SERVICE_NAME": "order-status", "SANDBOX_NOTE": "not a flag"}
LOOPBACK = "127.0.0.1"

# --- the AWS emulator -----------------------------------------------------------------------------------


class Emulator:
    """moto's server in this process, bound to 127.0.0.1 (moto binds 0.0.0.0 by default; see moto_server).

        with Emulator() as emu:
            os.environ.update(emu.env())
    """

    # Variables that would make boto3 ignore the dummy credentials (or fail on a missing profile).
    UNSET = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE")

    def __init__(self, port: int = 0, region: str = "us-east-1", verbose: bool = False) -> None:
        self._port = port
        self.region = region
        self.verbose = verbose
        self._server = None
        self._recording = ""
        self.endpoint = ""

    def start(self) -> "Emulator":
        from moto.moto_api import recorder

        from cutover.sandbox.moto_server import MotoServer

        if not self.verbose:
            # werkzeug logs every request (and moto's "not implemented" tracebacks) to stderr; our
            # adapters report failures themselves.
            logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        # The recorder appends to ./moto_recording by default: keep it out of the user's folder.
        fd, self._recording = tempfile.mkstemp(prefix="cutover-moto-", suffix=".jsonl")
        os.close(fd)
        recorder._location = self._recording
        self._server = MotoServer(LOOPBACK, self._port)
        self._server.start()
        host, port = self._server.address
        self.endpoint = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._recording and os.path.exists(self._recording):
            os.unlink(self._recording)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(urlsplit(self.endpoint).port or 0)

    def env(self, region: str | None = None) -> dict[str, str]:
        """What boto3 needs to talk to the emulator. Also remove UNSET from the environment (apply_env)."""
        region = region or self.region
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_KEY,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }

    def apply_env(self, environ: MutableMapping[str, str], region: str | None = None) -> None:
        for name in self.UNSET:
            environ.pop(name, None)
        environ.update(self.env(region))

    def seeder(self, region: str | None = None):
        """An EmulatorSeeder on this emulator (puts parameters, secrets, alarms, log events)."""
        from cutover.sandbox.seed import EmulatorSeeder

        return EmulatorSeeder(self.endpoint, region or self.region)

    # --- moto's control API ---
    def _post(self, path: str) -> bytes:
        req = urllib.request.Request(self.endpoint + path, data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def reset(self) -> None:
        """Forget every resource, and stop and clear the recording."""
        self._post("/moto-api/reset")
        self._post("/moto-api/recorder/stop-recording")
        self._post("/moto-api/recorder/reset-recording")

    def start_recording(self) -> None:
        """Record every request that reaches the emulator from now on (a fresh recording)."""
        self._post("/moto-api/recorder/reset-recording")
        self._post("/moto-api/recorder/start-recording")

    def stop_recording(self) -> None:
        self._post("/moto-api/recorder/stop-recording")

    def recorded_requests(self) -> list[dict[str, Any]]:
        """Each recorded request as {method, url, service, operation, body}.

        moto's recorder writes one JSON line per request: {headers, method, url, body, body_encoded};
        the body is base64 when body_encoded. The operation is in X-Amz-Target (JSON protocols:
        SSM, Logs, Secrets Manager, CloudWatch), in `Action=` (query protocol: STS) or in the path
        (`/service/<S>/operation/<Op>`, rpc-v2-cbor; Lambda's REST paths). Requests to /moto-api/ are left out.
        """
        with urllib.request.urlopen(self.endpoint + "/moto-api/recorder/download-recording", timeout=10) as resp:
            text = resp.read().decode("utf-8")
        out = []
        for line in text.splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            if urlsplit(entry.get("url", "")).path.startswith("/moto-api/"):
                continue
            body = entry.get("body") or ""
            if entry.get("body_encoded"):
                body = base64.b64decode(body).decode("utf-8", errors="replace")
            service, operation = _operation_of(entry.get("headers") or {}, entry.get("url", ""), body, entry.get("method", ""))
            out.append(
                {"method": entry.get("method"), "url": entry.get("url"), "service": service,
                 "operation": operation, "body": body}
            )
        return out

    def write_requests(self) -> list[dict[str, Any]]:
        """Recorded requests that are not reads (an unrecognisable request counts as a write)."""
        from cutover.adapters.aws import is_read_operation

        return [r for r in self.recorded_requests() if not (r["operation"] and is_read_operation(r["operation"]))]


_LAMBDA_CONFIGURATION = re.compile(r"/2015-03-31/functions/[^/?]+/configuration")


def _operation_of(headers: Mapping[str, str], url: str, body: str, method: str = "") -> tuple[str, str]:
    lower = {k.lower(): v for k, v in headers.items()}
    if _LAMBDA_CONFIGURATION.search(urlsplit(url).path):  # Lambda is REST: the method on the path
        return "lambda", "UpdateFunctionConfiguration" if method == "PUT" else "GetFunctionConfiguration"
    target = lower.get("x-amz-target", "")
    if target:
        service, _, operation = target.rpartition(".")
        return service, operation
    m = re.search(r"/service/([^/]+)/operation/([^/?]+)", url)
    if m:
        return m.group(1), m.group(2)
    action = parse_qs(body).get("Action") or parse_qs(urlsplit(url).query).get("Action")
    if action:
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", lower.get("authorization", ""))
        return (scope.group(1) if scope else ""), action[0]
    return "", ""


# --- the local HTTP stub for http/graphql checks ----------------------------------------------------------


class OpenCalendars:
    """ChangeCalendars for the emulator, which has no SSM Change Calendar: every calendar reads OPEN,
    with no transition known. The sandbox and rehearsals say so in their notes."""

    def state(self, calendar: str, at: datetime):
        from cutover.ports import CalendarReading

        return CalendarReading("OPEN")


def serve_open_calendars(plan: Plan, ports) -> list[str]:
    """Put OpenCalendars in `ports`; the note to report, if the plan names any change calendar."""
    ports.calendars = OpenCalendars()
    return open_calendars_note(plan)


def open_calendars_note(plan: Plan) -> list[str]:
    names = sorted({n for c in plan.checks.values() for n in getattr(c, "change_calendars", ())})
    return [f"sandbox: change calendars {', '.join(names)} read as OPEN (the emulator has no Change Calendar)"] if names else []


def open_windows(plan: Plan) -> tuple[Plan, list[str]]:
    """The plan with its window checks' weekly hours and deny dates lifted (a rehearsal runs at any hour
    and fast-forwards its clock), and the note saying so. Calendars still go through the calendar port."""
    windows = [c for c in plan.checks.values() if c.type == "window"]
    if not windows:
        return plan, []
    checks = {**plan.checks, **{c.name: dataclasses.replace(c, allow=(), deny=()) for c in windows}}
    names = ", ".join(c.name for c in windows)
    return dataclasses.replace(plan, checks=checks), [
        f"window checks {names} read as open at any hour (a rehearsal fast-forwards its clock); `preflight` shows the real window"]


# --- compressed time ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compressed:
    plan: Plan  # loaded from the copy
    path: str  # the copy, for CUTOVER_PLAN
    changes: list[str]  # "bake of shadow 1h -> 1m", ...

    def lines(self, scale: int) -> list[str]:
        if not self.changes:
            return [f"Time scale x{scale}: the plan has no bake or alarm quiet window to compress"]
        return [f"Time scale x{scale}: bakes and alarm quiet windows are {scale} times shorter, in a copy of the plan "
                f"({self.path}, exported below as CUTOVER_PLAN: leave out --plan):",
                *(f"  {c}" for c in self.changes),
                "  Nothing else is compressed: log ages, metric windows, change windows and lock leases run in real time, "
                "as the emulator's own timestamps do."]


def _compressed(seconds: float, scale: int) -> int:
    return 0 if seconds <= 0 else max(1, math.ceil(seconds / scale))


def _duration_nodes(text: str) -> list[tuple[Any, str, str]]:
    """(YAML value node, phase or check name, key) of every phase's `bake` and alarms check's `quiet_for`."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    top = {k.value: v for k, v in root.value}
    found = []
    for phase in getattr(top.get("phases"), "value", []):
        fields = {k.value: v for k, v in phase.value}
        if "bake" in fields:
            found.append((fields["bake"], getattr(fields.get("name"), "value", "?"), "bake"))
    for name, check in getattr(top.get("checks"), "value", []):
        fields = {k.value: v for k, v in check.value}
        if getattr(fields.get("type"), "value", "") == "alarms" and "quiet_for" in fields:
            found.append((fields["quiet_for"], name.value, "quiet_for"))
    return found


def compress_time(plan: Plan, scale: int, folder: str) -> Compressed:
    """A copy of the plan file in `folder` with every phase's `bake` and every alarms check's `quiet_for`
    divided by `scale` (rounded up to whole seconds), byte for byte the same otherwise (comments and line
    numbers kept), loaded back and checked to differ from the plan in those durations only."""
    from pathlib import Path

    from cutover.errors import UsageError
    from cutover.model.durations import format_duration
    from cutover.plan.load import load_plan

    text = Path(plan.path).read_text(encoding="utf-8")
    want = {"bake": {p.name: p.bake for p in plan.phases},
            "quiet_for": {c.name: c.quiet_for for c in plan.checks.values() if c.type == "alarms"}}
    edits: dict[int, tuple[int, str, str]] = {}  # start -> (end, new text, what changed), in file order below
    for node, owner, key in _duration_nodes(text):
        old = want[key][owner]
        new = _compressed(old, scale)
        if new != old:  # (plans have no YAML anchors: every node is one value)
            edits[node.start_mark.index] = (node.end_mark.index, f"{new}s",
                                            f"{key} of {owner}: {format_duration(old)} -> {format_duration(new)}")
    for start in sorted(edits, reverse=True):
        end, value, _ = edits[start]
        text = text[:start] + value + text[end:]
    changes = [edits[start][2] for start in sorted(edits)]
    path = Path(folder) / Path(plan.path).name
    path.touch(mode=0o600)  # it holds the plan's declared values, sensitive ones too
    path.write_text(text, encoding="utf-8")
    copy = load_plan(path)
    expected = dataclasses.replace(
        plan, path=copy.path, digest=copy.digest,
        phases=tuple(dataclasses.replace(p, bake=_compressed(p.bake, scale)) for p in plan.phases),
        checks={n: dataclasses.replace(c, quiet_for=_compressed(c.quiet_for, scale)) if c.type == "alarms" else c
                for n, c in plan.checks.items()})
    if copy != expected:
        raise UsageError(f"--time-scale: the copy of {plan.path} with shorter bakes and quiet windows reads back "
                         "different in other ways; nothing was started", "run `cutover sandbox` without --time-scale")
    return Compressed(copy, str(path), changes)


@dataclass(frozen=True)
class StubRequest:
    method: str
    path: str  # without the query string
    query: str = ""
    graphql: str = ""  # "query" | "mutation" | "" (not GraphQL)


class HttpStub:
    """Answers the plan's read-only checks on 127.0.0.1: GET/HEAD -> 200 JSON; POST of a GraphQL query
    -> 200 {"data": ...}; anything else (a mutation, PUT, DELETE...) -> 405. Records every request so a
    test can assert no write reached it; `fail(path, status)` injects an incident."""

    def __init__(self, port: int = 0) -> None:
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[StubRequest] = []
        self._failures: dict[str, tuple[int, dict]] = {}
        self.base = ""

    def start(self) -> "HttpStub":
        self._server = ThreadingHTTPServer((LOOPBACK, self._port), _handler(self))
        self._server.daemon_threads = True
        # A short poll interval so stop() returns at once (the default waits up to 0.5 s).
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="cutover-http-stub", daemon=True
        )
        self._thread.start()
        self.base = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "HttpStub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- incidents ---
    def fail(self, path: str, status: int = 500, body: dict | None = None) -> None:
        """Answer `path` ("*" = every path) with `status` until heal()."""
        with self._lock:
            self._failures[path] = (status, body if body is not None else {"error": f"sandbox incident {status}"})

    def graphql_errors(self, path: str, message: str = "Access denied for shop field") -> None:
        """A 200 that carries a GraphQL `errors` array (e.g. missing token scopes)."""
        self.fail(path, 200, {"errors": [{"message": message}]})

    def heal(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._failures.clear()
            else:
                self._failures.pop(path, None)

    # --- what reached it ---
    @property
    def requests(self) -> list[StubRequest]:
        with self._lock:
            return list(self._requests)

    def write_requests(self) -> list[StubRequest]:
        """Requests that were neither GET/HEAD nor a GraphQL query."""
        return [r for r in self.requests if not (r.method in ("GET", "HEAD") or r.graphql == "query")]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, req: StubRequest) -> tuple[int, dict] | None:
        with self._lock:
            self._requests.append(req)
            return self._failures.get(req.path) or self._failures.get("*")


_GRAPHQL_OP = re.compile(r"^\s*(query|mutation|subscription)\b|^\s*\{", re.IGNORECASE)


def _graphql_kind(body: bytes) -> str:
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return ""
    query = doc.get("query") if isinstance(doc, dict) else None
    if not isinstance(query, str):
        return ""
    m = _GRAPHQL_OP.match(query)
    if not m:
        return ""
    return (m.group(1) or "query").lower()  # "{ shop { name } }" is shorthand for a query


def _handler(stub: HttpStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cutover-sandbox-stub"

        def log_message(self, *args: Any) -> None:  # quiet: the stub records requests itself
            pass

        def _answer(self, status: int, doc: dict | None) -> None:
            body = json.dumps(doc).encode() if doc is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            kind = _graphql_kind(body) if self.command == "POST" else ""
            failure = stub._record(StubRequest(self.command, parts.path, parts.query, kind))
            if failure:
                self._answer(*failure)
            elif self.command in ("GET", "HEAD"):
                self._answer(200, {"ok": True, "sandbox": True, "path": parts.path})
            elif kind == "query":
                self._answer(200, {"data": {"sandbox": True, "shop": {"name": "cutover-sandbox"}}})
            else:
                self._answer(405, {"errors": [{"message": f"sandbox stub refuses {kind or self.command}"}]})

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle

    return Handler


# --- URL rerouting ------------------------------------------------------------------------------------------


def reroute_url(url: str, stub_base: str) -> str:
    """Replace scheme and host(:port) with the stub's; keep path, query and fragment."""
    base = urlsplit(stub_base)
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Reroute:
    check: str
    original: str  # the URL template as written in the plan
    rerouted: str


def plan_reroutes(plan: Plan, stub_base: str, env: Mapping[str, str] | None = None) -> list[Reroute]:
    """Every URL a check calls (http, graphql) and where the rehearsal sends it, for output and evidence."""
    env, kinds = env or {}, check_types.by_kind()
    return [
        Reroute(c.name, need.item, reroute_url(expand_vars(need.item, env), stub_base))
        for c in plan.checks.values()
        for need in kinds[c.type].needs(c) if need.kind == "url"
    ]


# --- seeding ------------------------------------------------------------------------------------------------

def _dummy_secret(keys: set[str]) -> str:
    def token() -> str:
        return "sandbox-" + secrets.token_urlsafe(18)

    return json.dumps({k: token() for k in sorted(keys)}) if keys else token()


METRIC_LEAD_TEXT = format_duration(SEED_AHEAD.total_seconds())  # how long the seeded metric data keeps gates passing


@dataclass
class SeedSummary:
    parameters: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)  # Lambda functions with flag variables
    secrets: list[str] = field(default_factory=list)  # ids only: values never leave the emulator
    alarms: list[str] = field(default_factory=list)
    log_groups: dict[str, int] = field(default_factory=dict)  # group -> events written
    warnings: list[str] = field(default_factory=list)
    metric_points: int = 0  # datapoints written for metric checks (window and baselines)

    def lines(self) -> list[str]:
        out = [
            f"{len(self.parameters)} SSM parameters at their rollback values",
            *([f"{len(self.functions)} Lambda function(s) ({', '.join(self.functions)}) with flag variables at their rollback values"]
              if self.functions else []),
            f"{len(self.secrets)} secrets with generated dummy values",
            f"{len(self.alarms)} alarms, state OK",
            f"{len(self.log_groups)} log groups ({sum(self.log_groups.values())} fresh events)",
            *([f"{self.metric_points} metric datapoints (healthy, for the next {METRIC_LEAD_TEXT})"]
              if self.metric_points else []),
        ]
        return out + [f"warning: {w}" for w in self.warnings]

    def to_dict(self) -> dict:
        return {
            "parameters": self.parameters,
            "functions": self.functions,
            "secrets": self.secrets,
            "alarms": self.alarms,
            "log_groups": self.log_groups,
            "warnings": self.warnings,
            **({"metric_points": self.metric_points} if self.metric_points else {}),
        }


def seed(plan: Plan, emulator: "Emulator | str", now: datetime | None = None, role_arn: str | None = None) -> SeedSummary:
    """Seed the emulator (an Emulator or its endpoint URL) so every gate of the plan can pass:
    flags at their rollback values (pending), secrets, OK alarms, fresh log events, empty log groups."""
    from cutover.sandbox.seed import EmulatorSeeder

    endpoint = emulator.endpoint if isinstance(emulator, Emulator) else emulator
    aws = EmulatorSeeder(endpoint, plan.region, role_arn)  # (role_arn: a target of another account)
    now = now or datetime.now(timezone.utc)
    summary = SeedSummary()

    for flag in plan.ssm_flags:
        aws.put_parameter(flag.parameter, flag.rollback, secure=flag.secure)
        summary.parameters.append(flag.parameter)
    for function in plan.functions:
        variables = dict(OTHER_VARIABLES)
        variables.update({f.target.variable: f.rollback for f in plan.flags
                          if f.kind == "lambda" and f.target.function == function})
        aws.put_function(function_name(function), variables)
        summary.functions.append(function)

    for sid, keys in secret_refs(plan).items():
        aws.put_secret(sid, _dummy_secret(keys))
        summary.secrets.append(sid)

    for t in check_types.TYPES:  # what each check type's checks need: alarms, log groups and events, metrics...
        summary.warnings += t.seed(plan, aws, now)
    summary.alarms, summary.log_groups = aws.written.alarms, aws.written.log_groups
    summary.metric_points = aws.written.metric_points
    return summary


def refresh(plan: Plan, emulator: "Emulator | str", now: datetime, role_arn: str | None = None) -> "Written":
    """Write again what ages, once a rehearsal has fast-forwarded its clock to `now`: each check type's
    `refresh` (log markers, metric data). Returns what was written."""
    from cutover.sandbox.seed import EmulatorSeeder

    aws = EmulatorSeeder(emulator.endpoint if isinstance(emulator, Emulator) else emulator, plan.region, role_arn)
    for t in check_types.TYPES:
        t.refresh(plan, aws, now)
    return aws.written


def seed_regression(plan: Plan, emulator: "Emulator | str", check, now: datetime, share: float = 0.2) -> None:
    """A metric incident for rehearsals (`cutover.checks.metric.write_regression`): the check fails."""
    from cutover.sandbox.seed import EmulatorSeeder

    write_regression(check, EmulatorSeeder(emulator.endpoint if isinstance(emulator, Emulator) else emulator, plan.region),
                     now, share)


class CannedInsights:
    """Logs Insights for rehearsals: moto runs only `fields`, `sort` and `limit` of the query language, so
    each logs_query check's query (the key) gets one Complete row with every expected field inside its
    limits."""

    def __init__(self, plan: Plan) -> None:
        self.rows = {c.query: [{name: f"{inside(lim.max, lim.min):g}" for name, lim in c.expect.items()}]
                     for c in plan.checks.values() if c.type == "logs_query"}
        self._started: dict[str, str] = {}

    def start_query(self, log_groups: list[str], query: str, start: datetime, end: datetime) -> str:
        query_id = f"canned-{len(self._started) + 1}"
        self._started[query_id] = query
        return query_id

    def query_results(self, query_id: str) -> tuple[str, list[dict[str, str]]]:
        query = self._started.get(query_id)
        return ("Complete", self.rows[query]) if query in self.rows else ("Failed", [])


def set_flags(plan: Plan, emulator: "Emulator | str", values: dict[str, str]) -> None:
    """Put flags (any kind) at these values directly in the emulator, as a hand edit would: fixtures,
    tests and drills. A Lambda function's other variables are kept."""
    from cutover.sandbox.seed import EmulatorSeeder

    aws = EmulatorSeeder(emulator.endpoint if isinstance(emulator, Emulator) else emulator, plan.region)
    by_function: dict[str, dict[str, str]] = {}
    for f in plan.flags:
        if f.name not in values:
            continue
        if f.kind == "ssm":
            aws.put_parameter(f.parameter, values[f.name], secure=f.secure)
        else:
            by_function.setdefault(function_name(f.target.function), {})[f.target.variable] = values[f.name]
    for function, variables in by_function.items():
        aws.put_environment(function, {**aws.environment(function), **variables})


def function_environments(plan: Plan, emulator: "Emulator | str") -> dict[str, dict[str, str]]:
    """Every Lambda function's whole environment, read directly from the emulator (for checks that
    the variables cutover does not own are left alone)."""
    from cutover.sandbox.seed import EmulatorSeeder

    aws = EmulatorSeeder(emulator.endpoint if isinstance(emulator, Emulator) else emulator, plan.region)
    return {fn: aws.environment(function_name(fn)) for fn in plan.functions}


# --- the environment a sandbox user needs -------------------------------------------------------------------

# Sandbox values for well-known variables; anything else present-checked gets "sandbox".
SANDBOX_VALUES = {"SHOPIFY_SHOP_DOMAIN": "sandbox.myshopify.com"}


def sandbox_env(plan: Plan, emulator: Emulator, stub: HttpStub | None = None) -> dict[str, str]:
    """AWS_ENDPOINT_URL and dummy credentials, the values every `env` check wants, and values for the
    ${VAR}s in checks' texts (a URL-valued default points at the stub). Remove Emulator.UNSET too."""
    env = emulator.env(plan.region)
    if stub is not None:
        env["CUTOVER_HTTP_STUB"] = stub.base
    need = check_types.needs(plan).get
    for var, default in need("env_ref", ()):
        if default is not None and stub is not None and "://" in default:
            env.setdefault(var, stub.base)
        else:
            env.setdefault(var, default or SANDBOX_VALUES.get(var, "sandbox"))
    wanted = {k: v for k, v in need("env", ()) if v is not None}
    for name, _ in need("env", ()):  # the env checks' own values win over the texts' defaults
        env[name] = wanted[name] if name in wanted else SANDBOX_VALUES.get(name, "sandbox")
    return env
