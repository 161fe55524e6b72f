"""The one redactor, and the promise it keeps: nothing private leaves the process.

Unit tests pin each pattern and the false positives that must survive (ARNs, account ids, ISO
timestamps, SSM versions, durations, fingerprints). The property tests plant random secrets, emails,
tokens and sensitive flag values in every place a command reads (Secrets Manager, SSM, HTTP error
responses, command output, log events, exception messages) and run every command in-process against
the emulator: the raw values must appear in no stdout, stderr, log file or evidence file.
"""

from __future__ import annotations

import json
import os
import string
import sys
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.redact import MIN_REGISTERED_LEN, Redactor, fingerprint, sensitive_values

# --- patterns ----------------------------------------------------------------------------------------

MASKED = [
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: [REDACTED]"),
    ("authorization=Basic dXNlcjpwYXNzd29yZA== next", "authorization=[REDACTED]"),
    ("sent bearer abcdef123456 upstream", "sent Bearer [REDACTED] upstream"),
    ('{"client_secret": "s3cr3t \\" q", "n": 1}', '{"client_secret": "[REDACTED]", "n": 1}'),
    ("{'access_token': 'abc', 'ok': 'yes'}", "{'access_token': '[REDACTED]', 'ok': 'yes'}"),
    ('{"Authorization": "Bearer xyz123456"}', '{"Authorization": "[REDACTED]"}'),
    ("x-richpanel-key: rk_live_0123", "x-richpanel-key: [REDACTED]"),
    ("X-Shopify-Access-Token: abc123", "X-Shopify-Access-Token: [REDACTED]"),
    ("GET /v1/x?api_key=abc123&page=2", "GET /v1/x?api_key=[REDACTED]&page=2"),
    ('password="two words" then', "password=[REDACTED] then"),
    ("https://admin:hunter22@db.internal:5432/x", "https://[REDACTED]@db.internal:5432/x"),
    ("token shpat_0123456789abcdef0123456789abcdef ok", "token [REDACTED:shopify-token] ok"),
    ("key sk-proj-AbC_dEf-0123456789xyz", "key [REDACTED:openai-key]"),
    ("key=sk-ABCDEFGHIJKLMNOPQRSTUVWX", "key=[REDACTED:openai-key]"),
    ("id AKIAIOSFODNN7EXAMPLE used", "id [REDACTED:aws-key] used"),
    ("id ASIAY34FZKBOKMUTVV7A", "id [REDACTED:aws-key]"),
    ("mail jane.o'doe+tag@mail.example.co.uk now", "mail [REDACTED:email] now"),
    ("to=jane@example.com, <bob@example.org>", "to=[REDACTED:email], <[REDACTED:email]>"),
    ("arn:aws:sts::123456789012:assumed-role/Release/jane@example.com", "arn:aws:sts::123456789012:assumed-role/Release/[REDACTED:email]"),
    ("call +1 415 555 0132", "call [REDACTED:phone]"),
    ("call +447911123456.", "call [REDACTED:phone]."),
    ("call (415) 555-0132 or 415.555.0132 or 1-415-555-0132", "call [REDACTED:phone] or [REDACTED:phone] or [REDACTED:phone]"),
]


@pytest.mark.parametrize("text,expected", MASKED)
def test_patterns_mask(text, expected):
    assert Redactor().text(text) == expected


SURVIVES = [
    "arn:aws:iam::123456789012:role/release",
    "arn:aws:cloudwatch:us-east-2:123456789012:alarm:rp-mw-prod-worker-error-rate",
    "account 123456789012 / us-east-2",
    "2026-01-01T03:04:05Z",
    "2026-01-01T03:04:05.123456+00:00",
    "2026-01-01 03:04:05",
    "20260101T030405Z-advance-1a2b3c4d",
    "v17 -> v18, version 1 -> 2",
    "last success 2.3h ago (max 8h); quiet for >= 15m; bake 1h30m; 0.11s",
    "sha256:dc96a067",
    "sha256 dc96a06742bf0317f4a36220b3d8e81cc6da0f55f917843a07239bd73b1abc0e",
    "epoch 1732850000123 ms, ip 192.168.100.200, port 54321",
    "secret rp-mw/prod/richpanel/api_key not found",
    "grant secretsmanager:GetSecretValue and kms:Decrypt",
    "required_secrets: 2 of 5 secrets unusable",
    "token_refresh_recent PASS last success 5m ago",
    "check the alarm rp-mw-prod-sk-worker-alarm",
    "HTTP 401 from https://api.richpanel.com: authentication/authorization failed",
    "+3 more",
    "/rp-mw/prod/outbound_allowlist_emails",
    "arn:aws:secretsmanager:us-east-2:123456789012:secret:rp-mw/prod/richpanel/api_key-*",
    "ssm:PutParameter on /cutover/x/lock: AlreadyExists",
]


@pytest.mark.parametrize("text", SURVIVES)
def test_false_positives_survive(text):
    assert Redactor().text(text) == text


def test_registered_values_become_fingerprints_and_lines_count_too():
    r = Redactor()
    r.register("first-line-secret\nsecond-line-secret\n")
    r.register("short")  # under MIN_REGISTERED_LEN: would mask ordinary words
    assert len("short") < MIN_REGISTERED_LEN
    out = r.text("a first-line-secret b second-line-secret c short")
    assert out == f"a {fingerprint('first-line-secret')} b {fingerprint('second-line-secret')} c short"


def test_longest_registered_value_wins():
    r = Redactor()
    r.register_all(["abcdef", "abcdefghij"])
    assert r.text("abcdefghij") == fingerprint("abcdefghij")


def test_value_redacts_structures_and_credential_named_keys():
    r = Redactor()
    r.register("planted-secret-1")
    doc = {"token": "abc", "client_secret": "x", "secret_ids": ["planted-secret-1"], "n": 3, "ok": True,
           "nested": [{"note": "mail a@b.io"}], "detail": None}
    assert r.value(doc) == {"token": "[REDACTED]", "client_secret": "[REDACTED]",
                            "secret_ids": [fingerprint("planted-secret-1")], "n": 3, "ok": True,
                            "nested": [{"note": "mail [REDACTED:email]"}], "detail": None}


def test_sensitive_values_of_a_plan():
    from cutover.plan import parse_plan

    plan = parse_plan(Path(__file__).parent.joinpath("plans", "e2e.yaml").read_text())
    assert set(sensitive_values(plan)) == {"none", "canary@example.com", "cohort@example.com", "*"}


def test_load_plan_registers_sensitive_values(tmp_path):
    from cutover.plan import load_plan
    from cutover.redact import REDACTOR

    text = Path(__file__).parent.joinpath("plans", "e2e.yaml").read_text()
    path = tmp_path / "p.yaml"
    path.write_text(text.replace('allow: "canary@example.com"', 'allow: "cohort-7f3a9-zz"'))
    load_plan(path)
    assert REDACTOR.text("allow=cohort-7f3a9-zz") == f"allow={fingerprint('cohort-7f3a9-zz')}"


def test_registration_is_thread_safe():
    r = Redactor()
    values = [f"value-{i:04d}-xyz" for i in range(200)]

    def reg(chunk):
        for v in chunk:
            r.register(v)
            assert v not in r.text(f"<{v}>")

    threads = [threading.Thread(target=reg, args=(values[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(v not in r.text(" ".join(values)) for v in values)


# --- strategies: plausible secrets ------------------------------------------------------------------------

SECRET_CHARS = string.ascii_letters + string.digits + "-_./+=!@#$%^&*~:"


def secrets_() -> st.SearchStrategy[str]:
    # Printable, no whitespace (a stored secret is stripped), at least one letter so it is not a number.
    return st.text(SECRET_CHARS, min_size=12, max_size=40).filter(lambda s: any(c.isalpha() for c in s))


emails = st.from_regex(r"[a-z][a-z0-9._+'-]{2,18}[a-z0-9]@[a-z][a-z0-9-]{1,14}\.(com|io|net|co\.uk)", fullmatch=True)
shopify_tokens = st.from_regex(r"shpat_[0-9a-f]{32}", fullmatch=True)
openai_keys = st.from_regex(r"sk-(proj-[A-Za-z0-9_-]{24,40}|[A-Za-z0-9]{48})", fullmatch=True)
aws_keys = st.from_regex(r"AKIA[A-Z0-9]{16}", fullmatch=True)
phones = st.from_regex(r"\+1 [2-9][0-9]{2} [2-9][0-9]{2} [0-9]{4}", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(secret=secrets_(), before=st.text(max_size=30), after=st.text(max_size=30))
def test_a_registered_secret_never_survives_in_any_text(secret, before, after):
    r = Redactor()
    r.register(secret)
    out = r.text(before + secret + after + secret)
    assert secret not in out
    assert r.value({"k": [before + secret]}) != {"k": [before + secret]}


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(emails, shopify_tokens, openai_keys, aws_keys, phones),
       before=st.sampled_from(["", " ", "x=", "to: ", "(", "<", '"']), after=st.sampled_from(["", " ", ".", ",", ")", ">", '"']))
def test_shaped_values_are_masked_without_registration(value, before, after):
    assert value not in Redactor().text(f"{before}{value}{after}")


# --- every command, planted values everywhere --------------------------------------------------------------


@dataclass
class Planted:
    secret: str  # a Secrets Manager value, sent as a header, echoed back by the upstream
    json_secret: str  # one field of a JSON secret
    flag: str  # the sensitive flag's value in the plan
    live_flag: str  # a different value someone put in SSM by hand
    email: str
    token: str
    phone: str

    def values(self) -> dict[str, str]:
        return dict(self.__dict__)


planted = st.builds(
    Planted,
    secret=secrets_(),
    json_secret=secrets_(),
    flag=st.one_of(secrets_(), st.lists(emails, min_size=1, max_size=3).map(",".join)),
    live_flag=st.one_of(secrets_(), emails),
    email=emails,
    token=st.one_of(shopify_tokens, openai_keys, aws_keys),
    phone=phones,
)


class _Echo(BaseHTTPRequestHandler):
    """An upstream that leaks: every error echoes the credential it received, and the planted values."""

    def log_message(self, *args):
        pass

    def _leak(self) -> str:
        p = self.server.planted
        return f"key={self.headers.get('x-api-key')} user={p.email} tok={p.token} tel={p.phone} json={p.json_secret}"

    def _reply(self, status: int, body: str, headers: dict | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        leak = self._leak()
        path = self.path.split("?")[0]
        if path == "/ok":
            self._reply(200, leak, {"X-Echo": leak})  # bodies are never stored, even on success
        elif path == "/redirect":
            self._reply(302, leak, {"Location": f"https://u:{self.headers.get('x-api-key')}@elsewhere.example/?t={leak}"})
        elif path == "/429":
            self._reply(429, leak, {"Retry-After": "0", "X-Echo": leak})
        else:
            self._reply(int(path.strip("/") or 500), leak, {"WWW-Authenticate": f'Bearer error="{leak}"'})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        message = f"Access denied for {self._leak()}"
        self._reply(200, json.dumps({"data": None, "errors": [{"message": message, "extensions": {"code": self.server.planted.token}}]}))


@pytest.fixture(scope="module")
def upstream():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


# The shadow report misbehaving: it prints (to stderr and stdout) values the tool knows are private:
# pattern-shaped ones, and the secret another gate of the same phase reads.
LEAK_COMMAND = (
    "import os, sys\n"
    "e = os.environ\n"
    "print('Traceback (most recent call last):', e['PLANTED_PHONE'], file=sys.stderr, flush=True)\n"
    "print('user', e['PLANTED_EMAIL'], 'token', e['PLANTED_TOKEN'])\n"
    "print('phone', e['PLANTED_PHONE'])\n"
    "print('key', e['PLANTED_SECRET'])\n"
    "sys.exit(3)\n"
)


def plan_text(p: Planted, base: str) -> str:
    """Phase `shadow` passes (reading every planted secret, writing the planted sensitive value);
    phase `canary` fails on every gate, each fed planted values."""
    q = json.dumps  # a YAML double-quoted scalar
    return f"""\
version: 1
name: leak
region: us-east-2
write_rate: 10
flags:
  kill: {{parameter: /leak/kill, rollback: "off"}}
  allow: {{parameter: /leak/allow, rollback: "nobody", sensitive: true, secure: true}}
  cohort: {{lambda: {{function: leak-worker, variable: LEAK_COHORT}}, rollback: "nobody", sensitive: true}}
checks:
  env_ok: {{type: env, equals: {{LEAK_MODE: "shadow"}}}}
  secrets_ok: {{type: secrets, secret_ids: [leak/api_key, leak/json]}}
  upstream_ok:
    type: http
    url: "{base}/ok"
    headers: {{x-api-key: "{{{{secret:leak/api_key}}}}", x-other: "{{{{secret:leak/json#client_secret}}}}"}}
  quiet: {{type: alarms, names: [leak-errors], quiet_for: 0s}}
  env_bad: {{type: env, equals: {{LEAK_ACTUAL: "expected-value"}}}}
  http_401: {{type: http, url: "{base}/401", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  http_403: {{type: http, url: "{base}/403", headers: {{x-api-key: "{{{{secret:leak/json#client_secret}}}}"}}}}
  http_500: {{type: http, url: "{base}/500", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  http_429: {{type: http, url: "{base}/429", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}, timeout: 5s}}
  http_redirect: {{type: http, url: "{base}/redirect", headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}}}
  graphql_errors:
    type: graphql
    url: "{base}/graphql"
    query: "query {{ shop {{ name }} }}"
    headers: {{x-api-key: "{{{{secret:leak/api_key}}}}"}}
  report: {{type: command, run: [{q(sys.executable)}, -c, {q(LEAK_COMMAND)}], timeout: 20s}}
  writes: {{type: log_absent, log_group: /leak/worker, contains: "method=POST", window: 1h}}
  fresh: {{type: log_freshness, log_group: /leak/refresh, json_match: {{ok: true}}, max_age: 1h}}
  alarms_bad: {{type: alarms, names: [leak-firing], quiet_for: 0s}}
  denied: {{type: log_absent, log_group: /leak/denied, contains: x, window: 1h}}
  crash: {{type: log_absent, log_group: /leak/crash, contains: x, window: 1h}}
phases:
  - name: shadow
    set: {{allow: {q(p.flag)}, cohort: {q(p.flag)}}}
    gates: [env_ok, secrets_ok, upstream_ok, quiet]
  - name: canary
    set: {{kill: "on"}}
    gates: [env_ok, env_bad, http_401, http_403, http_500, http_429, http_redirect, graphql_errors, report, writes, fresh,
            alarms_bad, denied, crash]
"""


def seed_emulator(emulator, p: Planted) -> None:
    seeder = emulator.seeder("us-east-2")
    now = datetime.now(timezone.utc)
    seeder.put_secret("leak/api_key", p.secret)
    seeder.put_secret("leak/json", json.dumps({"client_secret": p.json_secret, "owner": p.email}))
    seeder.put_parameter("/leak/kill", "off")
    seeder.put_parameter("/leak/allow", "nobody", secure=True)
    # The function's other variables are none of cutover's business, and may hold anything.
    seeder.put_function("leak-worker", {"LEAK_COHORT": "nobody", "LEAK_OTHER_KEY": p.secret, "LEAK_OWNER": p.email})
    seeder.put_alarm("leak-errors", "OK")
    seeder.put_alarm("leak-firing", "ALARM", reason=f"threshold crossed by {p.email} {p.secret}")
    seeder.put_log_group("/leak/worker")
    seeder.put_log_event("/leak/worker", f"method=POST to={p.email} key={p.secret} {p.token}", now - timedelta(minutes=3))
    seeder.put_log_group("/leak/refresh")
    seeder.put_log_event("/leak/refresh", json.dumps({"ok": False, "user": p.email, "secret": p.secret}), now - timedelta(minutes=2))


DRIFT = "<someone sets the sensitive flag by hand>"
COMMANDS = [  # (argv, expected exit code)
    (["validate"], 0),
    (["status"], 0),
    (["preflight"], 0),
    (["advance", "--dry-run"], 0),
    (["advance", "--yes", "--reason", "R"], 0),  # shadow: the planted flag value written
    (["--json", "status"], 0),
    (["preflight", "--phase", "canary", "--out-md", "OUT_MD"], 1),  # every leaky gate fails
    (["--json", "preflight", "--phase", "canary"], 1),
    (["advance", "--dry-run", "--approve", "--reason", "R"], 1),
    (["-v", "advance", "--yes", "--approve", "--reason", "R"], 1),
    ([DRIFT], None),
    (["status", "--check"], 5),
    (["--json", "status"], 0),
    (["rollback", "--dry-run"], 0),
    (["-v", "rollback", "--yes", "--reason", "R"], 0),  # old value: the one set by hand
    (["history"], 0),
    (["--json", "history"], 0),
]


def _files(folder: Path) -> dict[str, str]:
    return {str(f): f.read_text(errors="replace") for f in folder.rglob("*") if f.is_file()}


def run_every_command(p: Planted, base_url: str, workdir: Path) -> tuple[list[tuple[list[str], object]], dict[str, str]]:
    from typer.testing import CliRunner

    from cutover.cli import app

    out = workdir / "out"  # everything cutover writes (the plan file itself holds the planted flag value)
    plan_file, evidence, out_md = workdir / "phases.yaml", out / "evidence", out / "preflight.md"
    out.mkdir()
    plan_file.write_text(plan_text(p, base_url))
    env = {"LEAK_MODE": "shadow", "LEAK_ACTUAL": p.email,
           **{f"PLANTED_{k.upper()}": getattr(p, k) for k in ("secret", "email", "token", "phone")}}
    runner = CliRunner()
    results = []
    reason = f"incident for {p.email} call {p.phone}"
    for argv, _ in COMMANDS:
        if argv == [DRIFT]:
            from cutover.aws import EmulatorSeeder, make_ports

            make_ports("us-east-2", None, read_only=False).params.put("/leak/allow", p.live_flag, secure=True)
            seeder = EmulatorSeeder(os.environ["AWS_ENDPOINT_URL"], "us-east-2")
            seeder.put_environment("leak-worker", {**seeder.environment("leak-worker"), "LEAK_COHORT": p.live_flag})
            continue
        argv = [reason if a == "R" else str(out_md) if a == "OUT_MD" else a for a in argv]
        r = runner.invoke(app, ["--plan", str(plan_file), "--evidence-dir", str(evidence), *argv], env=env)
        assert r.exception is None or isinstance(r.exception, SystemExit), (argv, repr(r.exception))
        results.append((argv, r))
    return results, _files(out)


def assert_never_shown(p: Planted, results, files) -> None:
    # The scenario really ran: shadow entered (the planted flag written), canary refused, rolled back.
    expected = [code for argv, code in COMMANDS if argv != [DRIFT]]
    assert [r.exit_code for _, r in results] == expected, [(a, r.exit_code, r.stderr[-300:]) for a, r in results]
    assert any(f.endswith("cutover.log.jsonl") for f in files) and sum(f.endswith("report.json") for f in files) == 9
    outputs = {f"{' '.join(argv)} {stream}": getattr(r, stream) for argv, r in results for stream in ("stdout", "stderr")}
    everything = {**outputs, **files}
    for name, value in p.values().items():
        for where, text in everything.items():
            assert value not in text, f"planted {name} {value!r} appears in {where}"


@pytest.fixture
def leaky_aws(monkeypatch, upstream):
    """AWS failing with exception messages that echo planted values: an AccessDenied naming them, and
    an unexpected exception (a bug) carrying them."""
    from cutover.aws import CloudWatchLogs
    from cutover.errors import AwsError

    real = CloudWatchLogs.events

    def events(self, log_group, start, end, filter_pattern=""):
        p = upstream.planted
        if log_group == "/leak/denied":
            raise AwsError(f"User {p.email} with key {p.secret} is not authorized ({p.token})", code="AccessDeniedException")
        if log_group == "/leak/crash":
            raise RuntimeError(f"unexpected {p.secret} {p.json_secret} {p.email} {p.flag} {p.phone}")
        return real(self, log_group, start, end, filter_pattern)

    monkeypatch.setattr(CloudWatchLogs, "events", events)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(p=planted)
def test_planted_values_never_leave_the_process(p, emulator, aws_env, upstream, leaky_aws):
    emulator.reset()
    seed_emulator(emulator, p)
    upstream.planted = p
    with tempfile.TemporaryDirectory() as tmp:
        results, files = run_every_command(p, upstream.url, Path(tmp))
    assert_never_shown(p, results, files)


def test_every_failure_class_was_exercised(emulator, aws_env, upstream, leaky_aws, tmp_path):
    """One fixed example, checking the scenario reaches each leaky path (so the property means something)."""
    p = Planted(secret="S3cr3t-Value-0001", json_secret="Js0n-Secret-0002", flag="cohort-a@example.com,cohort-b@example.com",
                live_flag="by-hand-value-0003", email="jane.doe@example.com", token="shpat_" + "ab12" * 8, phone="+1 415 555 0132")
    emulator.reset()
    seed_emulator(emulator, p)
    upstream.planted = p
    results, files = run_every_command(p, upstream.url, tmp_path)
    assert_never_shown(p, results, files)
    [pre] = [json.loads(r.stdout) for a, r in results if a[:2] == ["--json", "preflight"]]
    details = {g["check"]: g["detail"] for g in pre["gates"]}
    assert details["env_bad"] == "LEAK_ACTUAL has another value (hidden), expected 'expected-value'"
    assert "authentication/authorization failed" in details["http_401"] and "HTTP 403" in details["http_403"]
    assert "server error" in details["http_500"] and "rate limited" in details["http_429"]
    assert "redirect to https://elsewhere.example (not followed)" in details["http_redirect"]
    assert details["graphql_errors"].startswith("GraphQL errors: 1; first [REDACTED:shopify-token]: Access denied for key=sha256:")
    assert details["report"].startswith("exit 3; last output: ")
    assert details["writes"].startswith("1 matching event in the last 1h; newest at ")
    assert details["fresh"].startswith("no success within 1h in /leak/refresh")
    assert details["alarms_bad"].startswith("leak-firing in ALARM since ")
    assert details["denied"] == "access denied to log group /leak/denied (AccessDeniedException)"
    assert details["crash"] == "internal error in the log_absent check: RuntimeError"
    status = [json.loads(r.stdout) for a, r in results if a == ["--json", "status"]][-1]
    allow = next(f for f in status["flags"] if f["flag"] == "allow")
    assert allow["live"] == fingerprint(p.live_flag) and allow["declared"] == fingerprint(p.flag)
    rollback = json.loads(next(f for name, f in files.items() if "-rollback-" in name and name.endswith("report.json")
                               and '"dry_run": false' in f))
    assert {"flag": "allow", "old": fingerprint(p.live_flag), "new": fingerprint("nobody")}.items() <= rollback["changes"][0].items()
    # The Lambda flag: as private as the SSM one, hand edit included; the function's other variables untouched.
    cohort = next(f for f in status["flags"] if f["flag"] == "cohort")
    assert cohort["live"] == fingerprint(p.live_flag) and cohort["target"] == "leak-worker env LEAK_COHORT"
    assert {"flag": "cohort", "kind": "lambda", "old": fingerprint(p.live_flag), "new": fingerprint("nobody")}.items() <= \
        rollback["changes"][1].items()
    assert emulator.seeder("us-east-2").environment("leak-worker") == {
        "LEAK_COHORT": "nobody", "LEAK_OTHER_KEY": p.secret, "LEAK_OWNER": p.email}


# --- logs and exception messages ---------------------------------------------------------------------------


def test_log_events_are_redacted_on_the_console_and_in_the_file(tmp_path, capsys):
    from cutover import logs
    from cutover.redact import REDACTOR

    secret = "log-planted-Secret-77"
    REDACTOR.register(secret)
    log_file = tmp_path / "cutover.log.jsonl"
    logs.configure(verbose=True, log_file=log_file)
    logs.get().warning(f"upstream said {secret}", who="jane@example.com", headers={"Authorization": "Bearer abcdef123456"},
                       note=["token=shpat_0123456789abcdef"])
    err = capsys.readouterr().err
    text = log_file.read_text()
    for leaked in (secret, "jane@example.com", "abcdef123456", "shpat_0123456789abcdef"):
        assert leaked not in err and leaked not in text
    assert json.loads(text.splitlines()[-1])["headers"] == {"Authorization": "[REDACTED]"}


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexpected_exception_never_shows_its_message(e2e, tmp_path, monkeypatch, verbose):
    from typer.testing import CliRunner

    from cutover import orchestrator
    from cutover.cli import app
    from cutover.redact import REDACTOR

    secret = "exc-planted-Secret-88"
    REDACTOR.register(secret)

    def boom(rt):
        raise RuntimeError(f"failed for jane@example.com with {secret}")

    monkeypatch.setattr(orchestrator, "history", boom)
    argv = ["--plan", str(Path(__file__).parent / "plans" / "e2e.yaml"), "--evidence-dir", str(tmp_path)]
    r = CliRunner().invoke(app, [*argv, *(["-v"] if verbose else []), "history"])
    assert r.exit_code == 4 and "internal error: RuntimeError in history" in r.stderr
    for stream in (r.stdout, r.stderr):
        assert secret not in stream and "jane@example.com" not in stream


def test_a_logged_exception_is_redacted(tmp_path, capsys):
    from cutover import logs
    from cutover.redact import REDACTOR

    REDACTOR.register("exc-secret-value-99")
    logs.configure(verbose=True, log_file=tmp_path / "log.jsonl")
    try:
        raise RuntimeError("boom exc-secret-value-99 jane@example.com")
    except RuntimeError:
        logs.get().exception("failed")
    out = capsys.readouterr().err + (tmp_path / "log.jsonl").read_text()
    assert "Traceback" in out  # plain frames, no local variables
    assert "exc-secret-value-99" not in out and "jane@example.com" not in out
