"""Gates: every check type passes when it should and fails closed, with a PII-safe detail.

HTTP checks run against a real local server; AWS is faked through the ports (tests/gatefakes.py).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cutover.testing.clock import FakeClock
from cutover.clock import SystemClock
from cutover.errors import AwsError, NotFound, UsageError
from cutover.gates import FAIL, PASS, SKIPPED, run_check, run_gates
from cutover.checks.interface import Fail
from cutover.checks.fmt import duration
from cutover.gates.context import GateContext
from cutover.checks.http_gate import operation_keywords
from cutover.checks.logs import filter_pattern, values_equal
from cutover.checks.templates import Templates
from cutover.model.plan import Phase, Plan
from cutover.checks.alarm_expect import AlarmExpect
from cutover.checks.alarms import AlarmsCheck
from cutover.checks.command import CommandCheck
from cutover.checks.env import EnvCheck
from cutover.checks.http import GraphqlCheck, HttpCheck
from cutover.checks.logs import LogAbsentCheck, LogFreshnessCheck
from cutover.checks.secrets import SecretsCheck
from cutover.redact import Redactor

try:
    from gatefakes import FakeAlarms, FakeLogs, FakeSecrets, alarm, make_ctx
except ImportError:  # tests/ became a package
    from tests.gatefakes import FakeAlarms, FakeLogs, FakeSecrets, alarm, make_ctx

API_KEY = "rk_live_0123456789abcdef"
TOKEN_JSON = json.dumps({"client_id": "cid-1234567", "client_secret": "cs-abcdefghijkl"})


def plan_of(*checks, gates=None) -> Plan:
    names = tuple(gates or [c.name for c in checks])
    return Plan(
        name="t",
        region="us-east-2",
        state_prefix="/cutover/t",
        flags=(),
        checks={c.name: c for c in checks},
        phases=(Phase("shadow", {}, names),),
    )


# --- a real local HTTP server ---------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, body: bytes = b"") -> None:
        self.server.received.append({"method": self.command, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self._record()
        s, path = self.server, self.path.split("?")[0]
        if path == "/ok":
            self._reply(200, b"hello")
        elif path in ("/401", "/403", "/404", "/500", "/503"):
            self._reply(int(path[1:]), b"nope")
        elif path == "/slow":
            time.sleep(1.0)
            self._reply(200, b"late")
        elif path == "/sleep200":
            time.sleep(0.2)
            self._reply(200, b"ok")
        elif path == "/429-then-ok":
            s.hits_429 += 1
            if s.hits_429 <= 2:
                self._reply(429, b"slow down", {"Retry-After": "1"})
            else:
                self._reply(200, b"ok")
        elif path == "/429-always":
            self._reply(429, b"slow down", {"Retry-After": "1"})
        elif path == "/429-long":
            self._reply(429, b"slow down", {"Retry-After": "120"})
        elif path == "/redirect":
            self._reply(302, b"", {"Location": "http://elsewhere.example/login?next=x"})
        elif path == "/auth":
            ok = self.headers.get("x-richpanel-key") == API_KEY
            self._reply(200 if ok else 401, b'{"users": []}')
        else:
            self._reply(404, b"no such path")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._record(body)
        path = self.path.split("?")[0]
        if path == "/graphql":
            self._reply(200, b'{"data": {"shop": {"name": "x"}}}')
        elif path == "/graphql-errors":
            err = {
                "message": "Access denied for shop field. Required access: read_shop. token=shpat_0123456789abcdef "
                + "x" * 300,
                "extensions": {"code": "ACCESS_DENIED"},
            }
            self._reply(200, json.dumps({"data": None, "errors": [err, {"message": "second"}]}).encode())
        elif path == "/graphql-notjson":
            self._reply(200, b"<html>login</html>")
        else:
            self._reply(404)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.received, srv.hits_429 = [], 0
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def http_check(url: str, **kw) -> HttpCheck:
    return HttpCheck(name=kw.pop("name", "api"), url=url, **kw)


# --- formatting -------------------------------------------------------------------------------------


def test_duration_format():
    assert [duration(s) for s in (0.3, 45, 14 * 60, 90, 2.3 * 3600, 8 * 3600, 1.5 * 86400, 7 * 86400)] == [
        "0.3s", "45s", "14m", "1.5m", "2.3h", "8h", "1.5d", "7d",
    ]


# --- templates --------------------------------------------------------------------------------------


def test_templates_env_and_defaults():
    ctx = make_ctx(env={"HOST": "shop.example", "EMPTY": ""})
    t = Templates(ctx)
    assert t.expand("https://${HOST}/x") == "https://shop.example/x"
    assert t.expand("${BASE:-https://api.richpanel.com}/v1") == "https://api.richpanel.com/v1"
    assert t.expand("${EMPTY:-d}") == "d"  # shell semantics: ":-" also covers empty


@pytest.mark.parametrize("text,state", [("${MISSING}", "is not set"), ("${EMPTY}", "is empty")])
def test_templates_missing_var_fails_naming_it(text, state):
    with pytest.raises(Fail) as e:
        Templates(make_ctx(env={"EMPTY": ""})).expand(text, "url")
    assert e.value.detail.startswith("url: environment variable") and state in e.value.detail
    assert "export" in e.value.next_action


def test_templates_secret_registered_and_json_key():
    secrets = FakeSecrets({"rk": API_KEY, "tok": TOKEN_JSON})
    ctx = make_ctx(secrets=secrets)
    t = Templates(ctx)
    assert t.expand("k={{secret:rk}}") == f"k={API_KEY}"
    assert t.expand("{{ secret:tok#client_secret }}") == "cs-abcdefghijkl"
    assert API_KEY not in ctx.redactor.text(f"saw {API_KEY}")
    assert "cs-abcdefghijkl" not in ctx.redactor.text("cs-abcdefghijkl")
    assert "cid-1234567" not in ctx.redactor.text("cid-1234567")  # every piece of a JSON secret
    t.expand("{{secret:rk}}")
    assert secrets.calls.count(("get_value", "rk")) == 1  # cached within one check run
    assert t.secret_ids == ["rk", "tok"]


def test_templates_secret_failures():
    ctx = make_ctx(secrets=FakeSecrets({"plain": "not-json-value", "tok": TOKEN_JSON}))
    for text, expect in [
        ("{{secret:missing}}", "secret missing not found"),
        ("{{secret:plain#k}}", "is not a JSON object"),
        ("{{secret:tok#nokey}}", "has no value for key 'nokey'"),
    ]:
        with pytest.raises(Fail) as e:
            Templates(ctx).expand(text, "headers.x")
        assert expect in e.value.detail


def test_templates_single_pass_never_reexpands():
    ctx = make_ctx(env={"A": "{{secret:rk}}"}, secrets=FakeSecrets({"rk": API_KEY}))
    assert Templates(ctx).expand("${A}") == "{{secret:rk}}"


# --- env ----------------------------------------------------------------------------------------------


def test_env_pass_and_failures():
    check = EnvCheck("required_env", equals={"RICHPANEL_READ_ONLY": "true", "OUT": "false", "API_TOKEN_MODE": "x"},
                     present=("SHOPIFY_SHOP_DOMAIN", "EMPTY"))
    good = {"RICHPANEL_READ_ONLY": "true", "OUT": "false", "API_TOKEN_MODE": "x", "SHOPIFY_SHOP_DOMAIN": "s", "EMPTY": "v"}
    r = run_check(check, make_ctx(env=good))
    assert r.status == PASS and r.detail == "3 equal, 2 present"

    bad = {"RICHPANEL_READ_ONLY": "false", "API_TOKEN_MODE": "secretvalue", "EMPTY": ""}
    r = run_check(check, make_ctx(env=bad))
    assert r.status == FAIL
    assert "RICHPANEL_READ_ONLY is 'false', expected 'true'" in r.detail
    assert "OUT is not set, expected 'false'" in r.detail
    assert "API_TOKEN_MODE has another value (hidden)" in r.detail and "secretvalue" not in r.detail
    assert "SHOPIFY_SHOP_DOMAIN is not set" in r.detail and "EMPTY is empty" in r.detail
    assert "export RICHPANEL_READ_ONLY=true" in r.next_action


def test_every_detail_goes_through_the_redactor():
    ctx = make_ctx(env={"MW_PROD_WRITES_ACK": "no"})
    ctx.redactor.register("I_UNDERSTAND_PROD_WRITES")  # e.g. a value also stored as a secret
    r = run_check(EnvCheck("env", equals={"MW_PROD_WRITES_ACK": "I_UNDERSTAND_PROD_WRITES"}), ctx)
    assert r.status == FAIL and "I_UNDERSTAND_PROD_WRITES" not in r.detail + r.next_action
    assert "expected '[REDACTED:sensitive]'" in r.detail


# --- secrets --------------------------------------------------------------------------------------------


def test_secrets_pass_registers_values():
    ctx = make_ctx(secrets=FakeSecrets({"a/key": API_KEY, "b/tok": TOKEN_JSON}))
    r = run_check(SecretsCheck("required_secrets", ("a/key", "b/tok")), ctx)
    assert r.status == PASS and r.detail == "2 secrets exist and decrypt"
    assert API_KEY not in ctx.redactor.text(API_KEY)


def test_secrets_gate_registers_every_field_of_a_json_secret():
    """Only the whole text was registered: a field of it (the client secret) went out in clear."""
    doc = json.dumps({"client_id": "cid-Planted-77", "client_secret": "cs-Planted-9x2", "nested": {"pw": "pw-Planted-01"}})
    ctx = make_ctx(secrets=FakeSecrets({"b/tok": doc}))
    assert run_check(SecretsCheck("required_secrets", ("b/tok",)), ctx).status == PASS
    out = ctx.redactor.text("upstream said cs-Planted-9x2 for cid-Planted-77 (pw-Planted-01)")
    assert "cs-Planted-9x2" not in out and "cid-Planted-77" not in out and "pw-Planted-01" not in out


@pytest.mark.parametrize(
    "error,expect",
    [
        (NotFound("x", code="ResourceNotFoundException"), "not found"),
        (AwsError("x", code="AccessDeniedException"), "access denied"),
        (AwsError("x", code="DecryptionFailure"), "cannot be decrypted (DecryptionFailure)"),
        (AwsError("x", code="KMSAccessDeniedException"), "cannot be decrypted (KMSAccessDeniedException)"),
        (AwsError("x", code="InvalidRequestException"), "marked for deletion"),
        (AwsError("x", code="ThrottlingException"), "throttled"),
    ],
)
def test_secrets_failure_classes(error, expect):
    secrets = FakeSecrets({"ok": API_KEY}, errors={"bad": error})
    r = run_check(SecretsCheck("s", ("ok", "bad")), make_ctx(secrets=secrets))
    assert r.status == FAIL
    assert r.detail.startswith("1 of 2 secrets unusable: ") and expect in r.detail and "bad" in r.detail
    assert r.next_action and API_KEY not in r.detail + r.next_action


def test_secrets_describe_only_and_deleted_date():
    secrets = FakeSecrets({"a": API_KEY}, meta={"gone": {"Name": "gone", "DeletedDate": "2026-01-01"}})
    r = run_check(SecretsCheck("s", ("a",), decrypt=False), make_ctx(secrets=secrets))
    assert r.status == PASS and r.detail == "1 secret exists (not decrypted)"
    assert secrets.calls == [("describe", "a")]  # never read the value
    r = run_check(SecretsCheck("s", ("gone",), decrypt=False), make_ctx(secrets=secrets))
    assert r.status == FAIL and "marked for deletion" in r.detail and "restore-secret" in r.next_action


# --- http -------------------------------------------------------------------------------------------------


def test_http_200_pass(server):
    r = run_check(http_check(server.url + "/ok"), make_ctx())
    assert r.status == PASS
    assert r.detail.startswith("HTTP 200 in ") and r.detail.endswith(" ms, 5 bytes")
    assert server.received[0]["method"] == "GET"


def test_http_head(server):
    r = run_check(http_check(server.url + "/ok", method="HEAD"), make_ctx())
    assert r.status == PASS and r.detail.endswith("0 bytes")
    assert server.received[0]["method"] == "HEAD"


@pytest.mark.parametrize(
    "path,expect",
    [
        ("/401", "HTTP 401 from http://127.0.0.1"),
        ("/403", "authentication/authorization failed"),
        ("/500", "HTTP 500 from http://127.0.0.1:"),
        ("/503", "server error"),
        ("/404", "unexpected status (expected 200)"),
        ("/redirect", "redirect to http://elsewhere.example (not followed)"),
    ],
)
def test_http_status_classes(server, path, expect):
    r = run_check(http_check(server.url + path), make_ctx())
    assert r.status == FAIL and expect in r.detail and r.next_action
    assert "next=x" not in r.detail  # redirect targets are shown as origin only
    assert len(server.received) == 1  # never followed


def test_http_429_retry_after_then_ok(server):
    clock = FakeClock()
    r = run_check(http_check(server.url + "/429-then-ok", timeout=5), make_ctx(clock=clock))
    assert r.status == PASS and "after 2 retries (429)" in r.detail
    assert len(server.received) == 3
    assert clock.monotonic() - 1000.0 >= 2.0  # slept Retry-After twice, on the injected clock


def test_http_429_always_fails_after_two_retries(server):
    r = run_check(http_check(server.url + "/429-always", timeout=5), make_ctx())
    assert r.status == FAIL and "rate limited (after 2 retries; Retry-After 1s)" in r.detail
    assert len(server.received) == 3


def test_http_429_retry_after_beyond_timeout_does_not_wait(server):
    r = run_check(http_check(server.url + "/429-long", timeout=5), make_ctx())
    assert r.status == FAIL and "retry would not fit the timeout; Retry-After 2m" in r.detail
    assert len(server.received) == 1


def test_http_slow_response_times_out(server):
    t0 = time.monotonic()
    r = run_check(http_check(server.url + "/slow", timeout=0.3), make_ctx(clock=SystemClock()))
    assert r.status == FAIL and "within 0.3s (timeout)" in r.detail
    assert time.monotonic() - t0 < 0.9


def test_http_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    r = run_check(http_check(f"http://127.0.0.1:{port}/x", timeout=2), make_ctx())
    assert r.status == FAIL and r.detail == f"connection refused by http://127.0.0.1:{port}"


def test_http_dns_failure(monkeypatch):
    def no_dns(host, *a, **kw):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    r = run_check(http_check("https://no-such-host.invalid/x", timeout=2), make_ctx())
    assert r.status == FAIL and r.detail == "DNS lookup failed for https://no-such-host.invalid"


def test_http_tls_failure(server):
    r = run_check(http_check(server.url.replace("http://", "https://") + "/ok", timeout=2), make_ctx())
    assert r.status == FAIL and r.detail.startswith("TLS failure with https://127.0.0.1")


def test_http_refuses_write_methods_and_odd_schemes(server):
    r = run_check(http_check(server.url + "/ok", method="POST"), make_ctx())
    assert r.status == FAIL and "method POST refused" in r.detail
    r = run_check(http_check("file:///etc/passwd"), make_ctx())
    assert r.status == FAIL and "scheme 'file' refused" in r.detail
    assert server.received == []


def _to_local(server):
    """The sandbox's rerouting: every url goes to the local server (as `cutover sandbox` and rehearse do)."""
    from cutover.sandbox.emulator import reroute_url

    return lambda url: reroute_url(url, server.url)


def test_http_secret_header_sent_never_shown(server):
    ctx = make_ctx(secrets=FakeSecrets({"rp/api_key": API_KEY}), reroute_url=_to_local(server))
    check = http_check("https://api.richpanel.com/auth?k={{secret:rp/api_key}}", headers={"x-richpanel-key": "{{secret:rp/api_key}}"})
    r = run_check(check, ctx)
    assert r.status == PASS, r
    assert server.received[0]["headers"]["x-richpanel-key"] == API_KEY
    assert API_KEY not in r.detail

    ctx = make_ctx(secrets=FakeSecrets({"rp/api_key": "wrong-key-123456"}), reroute_url=_to_local(server))
    r = run_check(check, ctx)
    assert r.status == FAIL and "HTTP 401" in r.detail
    assert "rp/api_key" in r.next_action and "wrong-key-123456" not in r.detail + r.next_action


def test_a_var_in_the_host_does_not_decide_where_a_secret_goes(server):
    """${RICHPANEL_API_BASE} pointed at a local server, which received the key in clear."""
    secrets = FakeSecrets({"rp/api_key": API_KEY})
    check = http_check("${RICHPANEL_API_BASE:-https://api.richpanel.com}/auth", headers={"x-richpanel-key": "{{secret:rp/api_key}}"})
    r = run_check(check, make_ctx(secrets=secrets, env={"RICHPANEL_API_BASE": server.url}))
    assert r.status == FAIL and server.received == [] and secrets.calls == []  # nothing sent, the secret not even read
    assert r.detail == (f"refusing to send the check's secret to {server.url}: the host comes from a ${{VAR}} and is not in "
                        "allowed_hosts; nothing was sent")
    assert "allowed_hosts" in r.next_action
    # Listed, it may go there, but not over plain http.
    allowed = http_check(check.url, headers=check.headers, allowed_hosts=("127.0.0.1",))
    r = run_check(allowed, make_ctx(secrets=secrets, env={"RICHPANEL_API_BASE": server.url}))
    assert r.status == FAIL and "over plain http" in r.detail and server.received == [] and secrets.calls == []
    # Over https to a listed host the request is made (here: refused by a closed port).
    port = _closed_port()
    r = run_check(allowed, make_ctx(secrets=secrets, env={"RICHPANEL_API_BASE": f"https://127.0.0.1:{port}"}))
    assert r.status == FAIL and r.detail == f"connection refused by https://127.0.0.1:{port}"


@pytest.mark.parametrize("allowed,host,ok", [
    (("*.myshopify.com",), "shop-1.myshopify.com", True),
    (("*.myshopify.com",), "a.b.myshopify.com", True),
    (("*.myshopify.com",), "myshopify.com", False),
    (("*.myshopify.com",), "evilmyshopify.com", False),
    (("API.example.com",), "api.example.com.", True),
    ((), "api.example.com", False),
])
def test_allowed_hosts_match_names_and_wildcards(allowed, host, ok):
    from cutover.model.templates import host_allowed

    assert host_allowed(host, None, allowed) is ok


def test_plain_http_never_carries_a_secret_outside_the_sandbox(server):
    secrets = FakeSecrets({"k": API_KEY})
    r = run_check(http_check(server.url + "/auth", headers={"x-richpanel-key": "{{secret:k}}"}), make_ctx(secrets=secrets))
    assert r.status == FAIL and r.detail.startswith("refusing to send the check's secret over plain http to http://127.0.0.1:")
    assert server.received == [] and secrets.calls == [] and "https://" in r.next_action
    # Without a secret, plain http is fine; and in the sandbox the secret goes to the local stub.
    assert run_check(http_check(server.url + "/ok"), make_ctx()).status == PASS
    r = run_check(http_check("http://api.richpanel.com/auth", headers={"x-richpanel-key": "{{secret:k}}"}),
                  make_ctx(secrets=secrets, reroute_url=_to_local(server)))
    assert r.status == PASS and server.received[-1]["headers"]["x-richpanel-key"] == API_KEY
    # A reroute that leaves the machine is refused.
    r = run_check(http_check("https://api.richpanel.com/auth", headers={"x-richpanel-key": "{{secret:k}}"}),
                  make_ctx(secrets=secrets, reroute_url=lambda u: u.replace("api.richpanel.com", "stub.example")))
    assert r.status == FAIL and "must stay on this machine" in r.detail


def test_http_missing_env_var_fails_before_any_request(server):
    r = run_check(http_check("https://${SHOPIFY_SHOP_DOMAIN}/x"), make_ctx())
    assert r.status == FAIL and r.detail == "url: environment variable SHOPIFY_SHOP_DOMAIN is not set"


def test_http_reroute(server):
    ctx = make_ctx(reroute_url=lambda u: u.replace("https://api.richpanel.com", server.url))
    r = run_check(http_check("https://api.richpanel.com/ok"), ctx)
    assert r.status == PASS and server.received[0]["path"] == "/ok"


# --- graphql ----------------------------------------------------------------------------------------------


def test_graphql_pass_posts_query_as_json(server):
    check = GraphqlCheck("gql", server.url + "/graphql", "query { shop { name } }", variables={"a": 1})
    r = run_check(check, make_ctx())
    assert r.status == PASS and r.detail.startswith("HTTP 200 in ")
    got = server.received[0]
    assert got["method"] == "POST" and got["headers"]["content-type"] == "application/json"
    assert json.loads(got["body"]) == {"query": "query { shop { name } }", "variables": {"a": 1}}


def test_graphql_errors_fail_redacted_and_truncated(server):
    r = run_check(GraphqlCheck("gql", server.url + "/graphql-errors", "query { shop { name } }"), make_ctx())
    assert r.status == FAIL
    assert r.detail.startswith("GraphQL errors: 2; first ACCESS_DENIED: Access denied for shop field.")
    assert "shpat_0123456789abcdef" not in r.detail
    message = r.detail.split("ACCESS_DENIED: ", 1)[1]
    assert len(message) <= 120


def test_graphql_non_json_body_fails(server):
    r = run_check(GraphqlCheck("gql", server.url + "/graphql-notjson", "{ shop { name } }"), make_ctx())
    assert r.status == FAIL and "not JSON" in r.detail


@pytest.mark.parametrize(
    "query",
    [
        "mutation { shopUpdate(input: {}) { id } }",
        "subscription { orders { id } }",
        'query A { shop { name } }\n# harmless\nmutation B($x: String = "}") { y }',
    ],
)
def test_graphql_mutation_refused(server, query):
    r = run_check(GraphqlCheck("gql", server.url + "/graphql", query), make_ctx())
    assert r.status == FAIL and "mutation/subscription refused" in r.detail
    assert server.received == []


def test_graphql_query_words_in_strings_or_comments_are_fine():
    assert "mutation" not in operation_keywords('query { a(x: "mutation { b }") } # mutation')
    assert "mutation" not in operation_keywords('{ mutationLog { id } }')
    assert "mutation" in operation_keywords('mutation{a}')


# --- log_freshness / log_absent ---------------------------------------------------------------------------

GROUP = "/aws/lambda/rp-mw-prod-shopify-token-refresh"


def lambda_line(payload: dict) -> str:
    return f"2026-01-01T00:00:00.000Z 6f1c-request-id INFO {json.dumps(payload)}"


def fresh_check(**kw) -> LogFreshnessCheck:
    return LogFreshnessCheck("refresh_recent", GROUP, max_age=8 * 3600, **kw)


def test_log_freshness_pass_newest_match_with_lambda_prefix():
    clock = FakeClock()
    logs = FakeLogs({GROUP: []}, honour_filter=False)
    now = clock.now()
    logs.add(GROUP, now - timedelta(hours=6), lambda_line({"refresh_succeeded": True}))
    logs.add(GROUP, now - timedelta(hours=2.3), lambda_line({"refresh_succeeded": True, "shop": "x"}))
    logs.add(GROUP, now - timedelta(hours=1), lambda_line({"refresh_succeeded": False}))
    logs.add(GROUP, now - timedelta(minutes=30), "START RequestId: abc refresh_succeeded true")
    r = run_check(fresh_check(json_match={"refresh_succeeded": True}), make_ctx(logs=logs, clock=clock))
    assert r.status == PASS and r.detail == "last success 2.3h ago (max 8h)"
    assert logs.calls[0][3] == ""  # no coarse pattern for a boolean


def test_log_freshness_types_are_strict():
    clock = FakeClock()
    logs = FakeLogs({GROUP: []}, honour_filter=False)
    for bad in ({"refresh_succeeded": 1}, {"refresh_succeeded": "yes"}, {"other": True}):
        logs.add(GROUP, clock.now() - timedelta(hours=1), json.dumps(bad))
    r = run_check(fresh_check(json_match={"refresh_succeeded": True}), make_ctx(logs=logs, clock=clock))
    assert r.status == FAIL and "none in the last 7d" in r.detail
    assert values_equal("true", True) and values_equal("200", 200) and not values_equal(True, "true")


def test_log_freshness_stale_says_how_old_and_disabled():
    clock = FakeClock()
    logs = FakeLogs({GROUP: []})
    now = clock.now()
    logs.add(GROUP, now - timedelta(hours=20), lambda_line({"refresh_succeeded": True}))
    logs.add(GROUP, now - timedelta(hours=3), lambda_line({"refresh_attempted": False, "refresh_error": "refresh_disabled"}))
    r = run_check(fresh_check(json_match={"refresh_succeeded": True}), make_ctx(logs=logs, clock=clock))
    assert r.status == FAIL
    assert r.detail.startswith(f"no success within 8h in {GROUP}; newest is 20h old")
    assert "refresh is disabled (refresh_error=refresh_disabled at 2025-12-31T21:00:00Z)" in r.detail
    assert "re-enable" in r.next_action
    assert len(logs.calls) == 2  # the look-back found it in its first (newest) day


def test_log_freshness_lookback_is_bounded():
    clock = FakeClock()
    logs = FakeLogs({GROUP: []})
    r = run_check(fresh_check(json_match={"refresh_succeeded": True}), make_ctx(logs=logs, clock=clock))
    assert r.status == FAIL and r.detail.endswith("none in the last 7d")
    assert min(c[1] for c in logs.calls) == clock.now() - timedelta(days=7) and len(logs.calls) == 8

    slow = FakeLogs({GROUP: []}, clock=clock, call_cost=10)  # 10 s per call against a 30 s timeout
    r = run_check(fresh_check(json_match={"refresh_succeeded": True}), make_ctx(logs=slow, clock=clock))
    assert r.status == FAIL and r.detail.endswith("none in the last 2.3d (look-back stopped at the timeout)")
    assert len(slow.calls) == 3


def test_log_freshness_contains_uses_quoted_literal_and_python_match():
    clock = FakeClock()
    logs = FakeLogs({GROUP: []}, honour_filter=False)
    logs.add(GROUP, clock.now() - timedelta(hours=1), "token refresh DONE")
    r = run_check(fresh_check(contains="refresh ok"), make_ctx(logs=logs, clock=clock))
    assert r.status == FAIL  # the fake returned it despite the pattern; Python matching rejected it
    assert logs.calls[0][3] == '"refresh ok"'
    assert filter_pattern(fresh_check(json_match={"status": "ok", "n": 1})) == '"ok"'


@pytest.mark.parametrize(
    "logs,expect",
    [
        (FakeLogs({}), f"log group {GROUP} not found"),
        (FakeLogs(error=AwsError("x", code="AccessDeniedException")), "access denied"),
        (FakeLogs(error=AwsError("x", code="ExpiredTokenException")), "credentials rejected or expired"),
    ],
)
def test_log_checks_aws_failures(logs, expect):
    for check in (fresh_check(contains="x"), LogAbsentCheck("absent", GROUP, 3600, contains="x")):
        r = run_check(check, make_ctx(logs=logs))
        assert r.status == FAIL and expect in r.detail and r.next_action


def test_log_absent():
    clock = FakeClock()
    worker = "/aws/lambda/rp-mw-prod-worker"
    logs = FakeLogs({worker: []})
    now = clock.now()
    logs.add(worker, now - timedelta(hours=2), "method=POST to customer@example.com")  # outside the window
    check = LogAbsentCheck("no_writes", worker, window=3600, contains="method=POST")
    r = run_check(check, make_ctx(logs=logs, clock=clock))
    assert r.status == PASS and r.detail == "no match in the last 1h"

    logs.add(worker, now - timedelta(minutes=12), "richpanel method=POST ticket for customer@example.com")
    logs.add(worker, now - timedelta(minutes=40), "method=POST again")
    r = run_check(check, make_ctx(logs=logs, clock=clock))
    assert r.status == FAIL
    assert r.detail == "2 matching events in the last 1h; newest at 2025-12-31T23:48:00Z (12m ago)"
    assert "customer" not in r.detail + r.next_action


def test_log_absent_json_match():
    clock = FakeClock()
    logs = FakeLogs({"g": []}, honour_filter=False)
    logs.add("g", clock.now() - timedelta(minutes=5), json.dumps({"method": "GET"}))
    check = LogAbsentCheck("no_writes", "g", window=3600, json_match={"method": "POST"})
    assert run_check(check, make_ctx(logs=logs, clock=clock)).status == PASS
    logs.add("g", clock.now() - timedelta(minutes=5), "prefix " + json.dumps({"method": "POST"}))
    assert run_check(check, make_ctx(logs=logs, clock=clock)).status == FAIL


# --- command ------------------------------------------------------------------------------------------------


def test_command_pass_and_cwd(tmp_path):
    (tmp_path / "report.py").write_text("import sys; print('shadow ok'); sys.exit(0)\n")
    r = run_check(CommandCheck("report", (sys.executable, "report.py")), make_ctx(cwd=str(tmp_path)))
    assert r.status == PASS and r.detail.startswith("exit 0 (")


def test_command_failure_tail_is_redacted(tmp_path):
    ctx = make_ctx(cwd=str(tmp_path))
    ctx.redactor.register("hunter2-secret-value")
    code = (
        "import sys\n"
        "for i in range(10): print('line', i)\n"
        "print('mailed bob@example.com')\n"
        "print('key hunter2-secret-value')\n"
        "print('boom', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    r = run_check(CommandCheck("report", (sys.executable, "-u", "-c", code)), ctx)
    assert r.status == FAIL and r.detail.startswith("exit 3; last output: ")
    assert "boom" in r.detail and "line 9" not in r.detail  # only the last 3 lines
    assert "bob@example.com" not in r.detail and "hunter2-secret-value" not in r.detail + r.next_action


def test_command_not_found_and_override(tmp_path):
    r = run_check(CommandCheck("report", ("no-such-program-xyz", "--flag")), make_ctx(cwd=str(tmp_path)))
    assert r.status == FAIL and r.detail.startswith("command not found: no-such-program-xyz")
    ctx = make_ctx(cwd=str(tmp_path), command_override=(sys.executable, "-c", "pass"))
    assert run_check(CommandCheck("report", ("no-such-program-xyz",)), ctx).status == PASS


def _child_env(tmp_path, check: CommandCheck, env: dict) -> dict:
    out = tmp_path / "env.json"
    code = f"import json, os; open({str(out)!r}, 'w').write(json.dumps(dict(os.environ)))"
    check = CommandCheck(check.name, (sys.executable, "-c", code), env=check.env, aws_credentials=check.aws_credentials)
    assert run_check(check, make_ctx(cwd=str(tmp_path), env=env)).status == PASS
    return json.loads(out.read_text())


OPERATOR_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/op", "LANG": "C.UTF-8", "SHADOW_MODE": "on", "OTHER": "x",
                "RICHPANEL_TOKEN": "rp-op-token", "AWS_ACCESS_KEY_ID": "AKIAOPERATOR0000KEY1", "AWS_SECRET_ACCESS_KEY": "op-secret",
                "AWS_SESSION_TOKEN": "op-session", "AWS_PROFILE": "prod-release", "AWS_REGION": "us-east-2"}


def test_command_gets_a_minimal_environment_and_no_aws_credentials(tmp_path):
    """The program ran with the operator's whole environment, AWS credentials included."""
    env = _child_env(tmp_path, CommandCheck("report", ("x",), env=("SHADOW_MODE",)), {**OPERATOR_ENV, "PATH": os.environ["PATH"]})
    assert {k for k in env if not k.startswith(("AWS_", "LC_CTYPE", "__CF", "PYTHON"))} == {"PATH", "HOME", "LANG", "SHADOW_MODE"}
    assert env["SHADOW_MODE"] == "on" and "RICHPANEL_TOKEN" not in env and "OTHER" not in env
    # No AWS variable of the operator's; the SDKs are pointed away from ~/.aws and the metadata service.
    assert {k: v for k, v in env.items() if k.startswith("AWS_")} == {
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true"}


def test_command_gets_aws_credentials_only_when_the_check_says_so(tmp_path):
    path = os.environ["PATH"]
    env = _child_env(tmp_path, CommandCheck("report", ("x",), aws_credentials=True), {**OPERATOR_ENV, "PATH": path})
    assert env["AWS_ACCESS_KEY_ID"] == "AKIAOPERATOR0000KEY1" and env["AWS_PROFILE"] == "prod-release"
    assert env["AWS_SESSION_TOKEN"] == "op-session" and "AWS_SHARED_CREDENTIALS_FILE" not in env and "OTHER" not in env
    # An AWS name listed in env: without aws_credentials is still not passed (the plan loader refuses it too).
    env = _child_env(tmp_path, CommandCheck("report", ("x",), env=("AWS_SECRET_ACCESS_KEY",)), {**OPERATOR_ENV, "PATH": path})
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_command_cannot_find_the_operators_aws_files(tmp_path):
    """HOME is passed, so ~/.aws/credentials would still hand the program the operator's keys."""
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = AKIAHOMEFILE00000001\n"
                                              "aws_secret_access_key = home-file-secret\n")
    code = ("import botocore.session; c = botocore.session.get_session().get_credentials(); "
            "print('creds', c.access_key if c else None); raise SystemExit(0 if c is None else 7)")
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    r = run_check(CommandCheck("report", (sys.executable, "-c", code)), make_ctx(cwd=str(tmp_path), env=env))
    assert r.status == PASS, r.detail


def test_command_is_skipped_in_a_dry_run_unless_read_only(tmp_path):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'a').write('x')"
    check = CommandCheck("report", (sys.executable, "-c", code))
    r = run_check(check, make_ctx(cwd=str(tmp_path), dry_run=True))
    assert r.status == SKIPPED and not marker.exists()
    assert r.detail.startswith("not run in a dry run: the check is not marked read_only")
    assert "read_only: true" in r.next_action and "real advance runs it" in r.next_action
    assert run_check(check, make_ctx(cwd=str(tmp_path))).status == PASS and marker.read_text() == "x"  # a real advance
    read_only = CommandCheck("report", check.run, read_only=True)
    assert run_check(read_only, make_ctx(cwd=str(tmp_path), dry_run=True)).status == PASS and marker.read_text() == "xx"
    # A rehearsal replaces the program with cutover's own stub: that one runs.
    stub = make_ctx(cwd=str(tmp_path), dry_run=True, command_override=(sys.executable, "-c", "pass"))
    assert run_check(check, stub).status == PASS


def test_command_timeout_kills(tmp_path):
    t0 = time.monotonic()
    check = CommandCheck("report", (sys.executable, "-c", "import time; print('started', flush=True); time.sleep(4)"), timeout=0.3)
    r = run_check(check, make_ctx(cwd=str(tmp_path)))
    assert r.status == FAIL and r.detail.startswith("still running after 0.3s, killed; last output: started")
    assert time.monotonic() - t0 < 2


# --- alarms -------------------------------------------------------------------------------------------------

QUIET = 15 * 60


def alarms_check(**kw) -> AlarmsCheck:
    kw.setdefault("names", ("rp-mw-prod-worker-error-rate", "rp-mw-prod-openai-intent-failures"))
    return AlarmsCheck("alarms_quiet", quiet_for=QUIET, **kw)


def test_alarms_pass_with_prefix():
    clock = FakeClock()
    src = FakeAlarms([
        alarm("rp-mw-prod-worker-error-rate", "OK", clock, 3600),
        alarm("rp-mw-prod-openai-intent-failures", "OK", clock, 3600),
        alarm("rp-mw-prod-shopify-429-spike", "OK", clock, 7200),
        alarm("other-team-alarm", "ALARM", clock, 10),
    ])
    r = run_check(alarms_check(prefix="rp-mw-prod-"), make_ctx(alarms=src, clock=clock))
    assert r.status == PASS and r.detail == "3 alarms OK, quiet for >= 15m"


def test_alarms_failure_classes():
    clock = FakeClock()
    ctx = lambda *alarms: make_ctx(alarms=FakeAlarms(list(alarms)), clock=clock)  # noqa: E731
    ok = alarm("rp-mw-prod-openai-intent-failures", "OK", clock, 3600)

    r = run_check(alarms_check(), ctx(alarm("rp-mw-prod-worker-error-rate", "ALARM", clock, 720), ok))
    assert r.status == FAIL
    assert r.detail == "rp-mw-prod-worker-error-rate in ALARM since 2025-12-31T23:48:00Z (12m)"
    assert "do not advance" in r.next_action

    r = run_check(alarms_check(), ctx(ok))
    assert r.status == FAIL and r.detail == "alarm not found: rp-mw-prod-worker-error-rate"

    r = run_check(alarms_check(), ctx(alarm("rp-mw-prod-worker-error-rate", "INSUFFICIENT_DATA", clock, 3600), ok))
    assert r.status == FAIL and r.detail == "INSUFFICIENT_DATA: rp-mw-prod-worker-error-rate"
    r = run_check(alarms_check(insufficient_data="ok"),
                  ctx(alarm("rp-mw-prod-worker-error-rate", "INSUFFICIENT_DATA", clock, 3600), ok))
    assert r.status == PASS and r.detail == "1 alarm OK, 1 INSUFFICIENT_DATA (allowed), quiet for >= 15m"

    r = run_check(alarms_check(), ctx(alarm("rp-mw-prod-worker-error-rate", "OK", clock, 300), ok))
    assert r.status == FAIL and r.detail == "rp-mw-prod-worker-error-rate OK for only 5m, quiet in 10m"
    assert r.next_action.startswith("wait 10m")


def test_alarms_empty_selection_and_aws_error():
    r = run_check(alarms_check(names=(), prefix="rp-mw-prod-"), make_ctx(alarms=FakeAlarms([])))
    assert r.status == FAIL and "no alarms matched" in r.detail and "vacuously" in r.detail
    r = run_check(alarms_check(), make_ctx(alarms=FakeAlarms(error=AwsError("x", code="AccessDenied"))))
    assert r.status == FAIL and "access denied" in r.detail and "cloudwatch:DescribeAlarms" in r.next_action


# --- runner ----------------------------------------------------------------------------------------------


def test_runner_concurrent_in_order_with_skip(server):
    checks = [http_check(server.url + "/sleep200", name=f"slow{i}") for i in range(4)]
    fast = http_check(server.url + "/ok", name="fast")
    env = EnvCheck("env", equals={"A": "1"})
    plan = plan_of(*checks, fast, env, gates=["slow0", "fast", "slow1", "env", "slow2", "slow3"])
    ctx = make_ctx(clock=SystemClock(), env={"B": "2"})
    t0 = time.monotonic()
    results = run_gates(plan, "shadow", ctx, skip=["env"])
    total = time.monotonic() - t0
    assert [r.check for r in results] == ["slow0", "fast", "slow1", "env", "slow2", "slow3"]
    assert [r.status for r in results] == [PASS, PASS, PASS, SKIPPED, PASS, PASS]
    slow_sum = sum(r.duration for r in results if r.check.startswith("slow"))
    assert slow_sum >= 0.8 and total < 0.8 * slow_sum


def test_runner_unknown_phase_or_skip_is_usage_error():
    plan = plan_of(EnvCheck("env", equals={"A": "1"}))
    with pytest.raises(UsageError):
        run_gates(plan, "nope", make_ctx())
    with pytest.raises(UsageError):
        run_gates(plan, "shadow", make_ctx(), skip=["typo"])


def test_runner_internal_exception_becomes_fail():
    class Boom:
        def describe(self, names, prefix=None):
            raise RuntimeError("leaked sk-abcdefghijklmnop in message")

    ctx = make_ctx()
    ctx.aws.alarms = Boom()
    [r] = run_gates(plan_of(alarms_check()), "shadow", ctx)
    assert r.status == FAIL and r.detail == "internal error in the alarms check: RuntimeError"
    assert "sk-" not in r.detail + r.next_action


def test_runner_times_out_a_hung_check():
    logs = FakeLogs({GROUP: []}, delay=0.8)
    check = LogAbsentCheck("hung", GROUP, window=3600, contains="x", timeout=0.1)
    t0 = time.monotonic()
    [r] = run_gates(plan_of(check), "shadow", make_ctx(logs=logs), grace=0.1)
    assert r.status == FAIL and r.detail == "timed out after 0.1s"
    assert time.monotonic() - t0 < 0.6


def test_unknown_check_type_fails_closed():
    class Weird:
        name, type, timeout = "w", "mystery", 1.0

    r = run_check(Weird(), make_ctx())
    assert r.status == FAIL and "unknown check type 'mystery'" in r.detail


def test_http_bad_url_and_newline_in_secret_header(server):
    for url in ("http:///nohost", "http://127.0.0.1:notaport/x"):
        r = run_check(http_check(url), make_ctx())
        assert r.status == FAIL and "no usable host/port" in r.detail
    ctx = make_ctx(secrets=FakeSecrets({"k": API_KEY + "\n"}), reroute_url=_to_local(server))
    r = run_check(http_check("https://api.richpanel.com/auth", headers={"x-richpanel-key": "{{secret:k}}"}), ctx)
    assert r.status == FAIL and "line break" in r.detail and API_KEY not in r.detail
    assert server.received == []


# --- against the emulator: the real adapters, moto's filter patterns -----------------------------------


def test_log_and_secret_gates_on_emulator(emulator, aws_ports):
    """The coarse filter patterns must never drop a real match on the way through FilterLogEvents."""
    seed, now = emulator.seeder("us-east-2"), SystemClock().now()
    seed.put_log_event(GROUP, lambda_line({"refresh_succeeded": True, "status": "ok"}), now - timedelta(hours=2))
    seed.put_log_event("/w", "GET x method=POST done", now - timedelta(minutes=5))
    seed.put_secret("rp/api_key", API_KEY)
    ctx = GateContext(aws=aws_ports, env={}, clock=SystemClock(), redactor=Redactor())
    results = [
        run_check(c, ctx)
        for c in (
            fresh_check(json_match={"refresh_succeeded": True}),
            fresh_check(json_match={"status": "ok"}),
            fresh_check(contains="refresh_succeeded"),
            LogAbsentCheck("absent", "/w", 3600, contains="method=POST"),
            SecretsCheck("s", ("rp/api_key",)),
        )
    ]
    assert [r.status for r in results] == [PASS, PASS, PASS, FAIL, PASS], results
    assert results[0].detail == "last success 2h ago (max 8h)"
    r = run_check(LogAbsentCheck("absent", "/missing", 3600, contains="x"), ctx)
    assert r.status == FAIL and r.detail == "log group /missing not found"


# --- failure classes against real things, through `advance`: each fails the gate, nothing is written ------


def _boto(service: str):
    import boto3

    return boto3.client(service, region_name="us-east-2")


def _delete_secret(seed, secret_id: str) -> None:
    seed.put_secret(secret_id, API_KEY)
    _boto("secretsmanager").delete_secret(SecretId=secret_id, RecoveryWindowInDays=7)


def _alarm(seed, name: str, state: str, **config) -> None:
    seed.put_alarm(name, "OK")
    if config:
        _boto("cloudwatch").put_metric_alarm(AlarmName=name, Namespace="Cutover/Sandbox", MetricName="Sandbox",
                                             Statistic="Sum", Period=60, EvaluationPeriods=1,
                                             ComparisonOperator="GreaterThanThreshold", **config)
    if state != "OK":
        seed.set_alarm_state(name, state, "injected")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


_NOW = lambda: SystemClock().now()  # noqa: E731
PY = sys.executable

# (id, check built from the local server's url, emulator set-up, words the detail must contain)
FAILURE_CLASSES = [
    ("env-missing", lambda url: EnvCheck("g", equals={"E2E_NOT_SET": "true"}), None, "E2E_NOT_SET is not set"),
    ("secret-not-found", lambda url: SecretsCheck("g", ("e2e/nope",)), None, "secret e2e/nope not found"),
    ("secret-deleted", lambda url: SecretsCheck("g", ("e2e/gone",)), lambda s: _delete_secret(s, "e2e/gone"),
     "secret e2e/gone is marked for deletion"),
    ("secret-deleted-describe", lambda url: SecretsCheck("g", ("e2e/gone",), decrypt=False),
     lambda s: _delete_secret(s, "e2e/gone"), "secret e2e/gone is marked for deletion"),
    ("http-401", lambda url: http_check(url + "/401", name="g"), None, "HTTP 401 from http://127.0.0.1:"),
    ("http-403", lambda url: http_check(url + "/403", name="g"), None, "authentication/authorization failed"),
    ("http-429", lambda url: http_check(url + "/429-always", name="g", timeout=5), None,
     "rate limited (after 2 retries; Retry-After 1s)"),
    ("http-500", lambda url: http_check(url + "/500", name="g"), None, "HTTP 500 from http://127.0.0.1:"),
    ("http-slow", lambda url: http_check(url + "/slow", name="g", timeout=0.3), None, "(timeout)"),
    ("http-closed-port", lambda url: http_check(f"http://127.0.0.1:{_closed_port()}/x", name="g", timeout=2), None,
     "connection refused by http://127.0.0.1:"),
    ("graphql-errors", lambda url: GraphqlCheck("g", url + "/graphql-errors", "query { shop { name } }"), None,
     "GraphQL errors: 2; first ACCESS_DENIED"),
    ("log-group-missing", lambda url: LogFreshnessCheck("g", "/e2e/nowhere", 8 * 3600, json_match={"ok": True}), None,
     "log group /e2e/nowhere not found"),
    ("log-stale", lambda url: LogFreshnessCheck("g", "/e2e/stale", 8 * 3600, json_match={"ok": True}),
     lambda s: s.put_log_event("/e2e/stale", '{"ok": true}', _NOW() - timedelta(hours=10)),
     "no success within 8h in /e2e/stale; newest is 10h old"),
    ("log-absent-match", lambda url: LogAbsentCheck("g", "/e2e/worker", 3600, contains="method=POST"),
     lambda s: s.put_log_event("/e2e/worker", "GET ok; method=POST to=jane@example.com", _NOW() - timedelta(minutes=5)),
     "1 matching event in the last 1h; newest at "),
    ("command-exit", lambda url: CommandCheck("g", (PY, "-c", "raise SystemExit(4)")), None, "exit 4; last output"),
    ("command-not-found", lambda url: CommandCheck("g", ("cutover-no-such-program",)), None,
     "command not found: cutover-no-such-program"),
    ("command-timeout", lambda url: CommandCheck("g", (PY, "-c", "import time; time.sleep(3)"), timeout=0.5), None,
     "still running after 0.5s, killed"),
    ("alarm-firing", lambda url: AlarmsCheck("g", ("e2e-errors",)), lambda s: _alarm(s, "e2e-errors", "ALARM"),
     "e2e-errors in ALARM since "),
    ("alarm-missing", lambda url: AlarmsCheck("g", ("e2e-errors", "e2e-absent")), None, "alarm not found: e2e-absent"),
    ("alarm-insufficient", lambda url: AlarmsCheck("g", ("e2e-errors",)),
     lambda s: _alarm(s, "e2e-errors", "INSUFFICIENT_DATA"), "INSUFFICIENT_DATA: e2e-errors"),
    ("alarm-not-quiet", lambda url: AlarmsCheck("g", ("e2e-errors",), quiet_for=3600), None, "e2e-errors OK for only "),
    ("alarm-expect", lambda url: AlarmsCheck("g", ("e2e-errors",), expect={"e2e-errors": AlarmExpect(threshold=5)}),
     lambda s: _alarm(s, "e2e-errors", "OK", Threshold=50.0), "e2e-errors: expected threshold 5, AWS has 50"),
]


@pytest.mark.parametrize("build,setup,words", [c[1:] for c in FAILURE_CLASSES], ids=[c[0] for c in FAILURE_CLASSES])
def test_failure_class_fails_the_gate_and_writes_nothing(e2e, emulator, server, build, setup, words):
    import dataclasses

    from cutover.commands import orchestrator
    from cutover.core import state
    from cutover.testing.counter import CallCounter

    if setup is not None:
        setup(emulator.seeder("us-east-2"))
    plan = e2e.plan
    shadow = dataclasses.replace(plan.phases[0], gates=("env_ok", "g"))
    plan = dataclasses.replace(plan, checks={**plan.checks, "g": build(server.url)}, phases=(shadow, *plan.phases[1:]))
    counter = CallCounter()
    out = orchestrator.advance(e2e(plan=plan, counter=counter))

    assert out.exit_code == 1 and out.headline == "gates for shadow failed: g; nothing was written"
    [gate] = [g for g in out.data["gates"] if g["check"] == "g"]
    assert gate["status"] == FAIL and words in gate["detail"], gate["detail"]
    assert gate["next_action"] and API_KEY not in gate["detail"] + gate["next_action"]
    assert "jane@example.com" not in json.dumps(out.data)
    assert counter.calls["ssm:PutParameter"] == 1  # the lock; no flag, no state record
    assert set(counter.writes()) <= {"ssm:PutParameter", "ssm:DeleteParameter"}
    assert state.StateStore(plan, e2e().aws.params).read().record is None
    assert e2e.live() == plan.rollback_values()


# A gate program that writes to SSM with whatever credentials it finds.
WRITER = ("import os, boto3\n"
          "boto3.client('ssm', region_name='us-east-2', endpoint_url=os.environ.get('AWS_ENDPOINT_URL'))"
          ".put_parameter(Name='/e2e/written-by-gate', Value='x', Type='String', Overwrite=True)\n")


def _written_by_gate(e2e) -> bool:
    return "/e2e/written-by-gate" in e2e.direct().get_many(["/e2e/written-by-gate"])


@pytest.mark.parametrize("read_only", [False, True])
def test_a_gate_program_cannot_write_during_a_dry_run(e2e, read_only):
    """A gate program wrote to SSM during `advance --dry-run` (it had the operator's credentials)."""
    import dataclasses

    from cutover.commands import orchestrator

    plan = e2e.plan
    check = CommandCheck("report", (sys.executable, "-c", WRITER), timeout=60, read_only=read_only)
    shadow = dataclasses.replace(plan.phases[0], gates=("env_ok", "report"))
    plan = dataclasses.replace(plan, checks={**plan.checks, "report": check}, phases=(shadow, *plan.phases[1:]))
    out = orchestrator.advance(e2e(plan=plan, dry_run=True))
    [gate] = [g for g in out.data["gates"] if g["check"] == "report"]
    assert not _written_by_gate(e2e)
    if read_only:  # it runs, without credentials: its write fails, and so does the gate
        assert gate["status"] == FAIL and "NoCredentialsError" in gate["detail"] and out.exit_code == 1
    else:  # skipped: the dry run still shows what would change, and says what it did not run
        assert gate["status"] == SKIPPED and out.exit_code == 0 and out.headline.startswith("dry run: gates pass")
        assert "dry run: not run (not read_only): report; the real advance runs them first" in out.data["notes"]
        # A real advance runs it (without credentials, so the write fails there too) and is refused.
        real = orchestrator.advance(e2e(plan=plan))
        assert real.exit_code == 1 and [g["status"] for g in real.data["gates"] if g["check"] == "report"] == [FAIL]
        assert not _written_by_gate(e2e)
