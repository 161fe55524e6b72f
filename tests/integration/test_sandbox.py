"""The sandbox: seeding the emulator from a plan, the HTTP stub, URL rerouting, the sandbox environment."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cutover.sandbox.seed import EmulatorSeeder
from cutover.adapters.aws import make_ports
from cutover.errors import UsageError
from cutover.model.plan import Flag, Phase, Plan, SsmTarget
from cutover.checks.alarms import AlarmsCheck
from cutover.checks.command import CommandCheck
from cutover.checks.env import EnvCheck
from cutover.checks.http import GraphqlCheck, HttpCheck
from cutover.checks.logs import LogAbsentCheck, LogFreshnessCheck
from cutover.checks.secrets import SecretsCheck
from cutover.sandbox.emulator import plan_reroutes, reroute_url, sandbox_env, secret_refs, seed

REGION = "us-east-2"
REPO = Path(__file__).resolve().parents[2]


def small_plan() -> Plan:
    checks = [
        EnvCheck("required_env", equals={"RICHPANEL_READ_ONLY": "true"}, present=("SHOPIFY_SHOP_DOMAIN",)),
        SecretsCheck("required_secrets", ("rp/api_key", "rp/shopify_token")),
        HttpCheck(
            "richpanel_read",
            url="${RICHPANEL_API_BASE:-https://api.richpanel.com}/v1/users?limit=1",
            headers={"x-richpanel-key": "{{secret:rp/api_key}}"},
        ),
        GraphqlCheck(
            "shopify_graphql",
            url="https://${SHOPIFY_SHOP_DOMAIN}/admin/api/2024-10/graphql.json",
            query="query { shop { name } }",
            headers={"X-Shopify-Access-Token": "{{secret:rp/oauth#access_token}}"},
        ),
        LogFreshnessCheck(
            "refresh_recent", "/aws/lambda/refresh", max_age=8 * 3600, json_match={"refresh_succeeded": True}
        ),
        LogFreshnessCheck("heartbeat", "/aws/lambda/beat", max_age=120, contains="heartbeat ok"),
        LogAbsentCheck("no_writes", "/aws/lambda/worker", window=3600, contains="method=POST"),
        CommandCheck("shadow_report", ("python", "report.py")),
        AlarmsCheck("alarms_quiet", names=("rp-worker-errors", "rp-openai-failures"), prefix="rp-", quiet_for=900),
        AlarmsCheck("other_alarms", prefix="other-"),
    ]
    return Plan(
        name="sandbox-test",
        region=REGION,
        state_prefix="/cutover/sandbox-test",
        flags=(
            Flag("automation_enabled", SsmTarget("/rp/automation_enabled"), "false"),
            Flag("safe_mode", SsmTarget("/rp/safe_mode"), "true"),
            Flag("allowlist", SsmTarget("/rp/allowlist"), "none", sensitive=True, secure=True),
        ),
        checks={c.name: c for c in checks},
        phases=(Phase("shadow", {"safe_mode": "true"}, tuple(c.name for c in checks)),),
    )


# --- seeding ---------------------------------------------------------------------------------------------


def test_seed_makes_every_aws_gate_passable(aws_env, emulator):
    plan = small_plan()
    summary = seed(plan, emulator)
    ports = make_ports(REGION, None, read_only=True)
    now = datetime.now(timezone.utc)

    params = ports.params.get_many([f.parameter for f in plan.flags])
    assert {n: p.value for n, p in params.items()} == {
        "/rp/automation_enabled": "false", "/rp/safe_mode": "true", "/rp/allowlist": "none"
    }
    assert params["/rp/allowlist"].type == "SecureString"

    assert sorted(summary.secrets) == ["rp/api_key", "rp/oauth", "rp/shopify_token"]
    assert ports.secrets.get_value("rp/api_key").startswith("sandbox-")
    assert set(json.loads(ports.secrets.get_value("rp/oauth"))) == {"access_token"}

    alarms = {a.name: a for a in ports.alarms.describe(["rp-worker-errors", "rp-openai-failures"], "other-")}
    assert set(alarms) == {"rp-worker-errors", "rp-openai-failures", "other-sandbox"}
    assert all(a.state == "OK" for a in alarms.values())

    fresh = list(ports.logs.events("/aws/lambda/refresh", now - timedelta(hours=8), now))
    assert [json.loads(e.message) for e in fresh] == [{"refresh_succeeded": True}]
    assert timedelta(0) < now - fresh[0].timestamp < timedelta(minutes=10)
    beat = list(ports.logs.events("/aws/lambda/beat", now - timedelta(seconds=120), now))
    assert [e.message for e in beat] == ["heartbeat ok"]
    assert list(ports.logs.events("/aws/lambda/worker", now - timedelta(hours=1), now)) == []  # exists, empty

    assert summary.warnings == []
    assert summary.log_groups == {"/aws/lambda/worker": 0, "/aws/lambda/refresh": 1, "/aws/lambda/beat": 1}
    assert all("sandbox-" not in line for line in summary.lines())


def test_seed_twice_converges(aws_env, emulator):
    seed(small_plan(), emulator)
    seed(small_plan(), emulator.endpoint)
    ports = make_ports(REGION, None, read_only=True)
    assert ports.params.get_many(["/rp/safe_mode"])["/rp/safe_mode"].version == 2


def test_incident_injection_moves_an_alarm_to_alarm(aws_env, emulator):
    seed(small_plan(), emulator)
    emulator.seeder(REGION).set_alarm_state("rp-worker-errors", "ALARM", "injected incident")
    alarm = make_ports(REGION, None, read_only=True).alarms.describe(["rp-worker-errors"])[0]
    assert (alarm.state, alarm.reason) == ("ALARM", "injected incident")


def test_a_seeded_marker_that_a_log_absent_check_would_count_is_a_warning(aws_env, emulator):
    import dataclasses

    plan = small_plan()
    clash = LogAbsentCheck("no_heartbeat_errors", "/aws/lambda/beat", window=600, contains="heartbeat")
    summary = seed(dataclasses.replace(plan, checks={**plan.checks, clash.name: clash}), emulator)
    assert summary.warnings == ["log group /aws/lambda/beat: the event seeded for heartbeat also matches no_heartbeat_errors"]
    assert summary.log_groups["/aws/lambda/beat"] == 1  # the marker, in a group created once


def test_seeder_refuses_anything_but_loopback():
    with pytest.raises(UsageError):
        EmulatorSeeder("https://ssm.us-east-2.amazonaws.com", REGION)


def test_secret_refs_collect_ids_and_json_keys():
    assert secret_refs(small_plan()) == {"rp/api_key": set(), "rp/shopify_token": set(), "rp/oauth": {"access_token"}}


# --- the environment a sandbox user needs ----------------------------------------------------------------


def test_sandbox_env(emulator, http_stub):
    env = sandbox_env(small_plan(), emulator, http_stub)
    assert env["AWS_ENDPOINT_URL"] == emulator.endpoint
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_DEFAULT_REGION"] == REGION
    assert "AWS_SESSION_TOKEN" not in env and "AWS_SESSION_TOKEN" in emulator.UNSET
    assert env["RICHPANEL_READ_ONLY"] == "true"
    assert env["SHOPIFY_SHOP_DOMAIN"] == "sandbox.myshopify.com"
    assert env["RICHPANEL_API_BASE"] == http_stub.base  # a URL-valued default points at the stub


def test_sandbox_env_sets_the_variables_of_headers_too(emulator):
    import dataclasses

    plan = small_plan()
    check = HttpCheck("tenant_read", url="https://api.example.com/v1", headers={"x-tenant": "${TENANT_ID}", "x-env": "${DEPLOY_ENV:-staging}"})
    env = sandbox_env(dataclasses.replace(plan, checks={**plan.checks, check.name: check}), emulator)
    assert (env["TENANT_ID"], env["DEPLOY_ENV"]) == ("sandbox", "staging")


# --- the HTTP stub ---------------------------------------------------------------------------------------


def call(url: str, method: str = "GET", body: dict | None = None) -> tuple[int, dict | None]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def test_stub_answers_reads_and_graphql_queries(http_stub):
    assert call(http_stub.base + "/v1/users?limit=1") == (200, {"ok": True, "sandbox": True, "path": "/v1/users"})
    assert call(http_stub.base + "/v1/users", "HEAD") == (200, None)
    status, doc = call(http_stub.base + "/admin/api/2024-10/graphql.json", "POST", {"query": "query { shop { name } }"})
    assert status == 200 and "data" in doc and "errors" not in doc
    assert http_stub.write_requests() == []
    assert [(r.method, r.path) for r in http_stub.requests] == [
        ("GET", "/v1/users"), ("HEAD", "/v1/users"), ("POST", "/admin/api/2024-10/graphql.json")
    ]


def test_stub_refuses_and_records_writes(http_stub):
    assert call(http_stub.base + "/g", "POST", {"query": "mutation { shopUpdate { id } }"})[0] == 405
    assert call(http_stub.base + "/v1/tickets", "PUT", {"x": 1})[0] == 405
    assert call(http_stub.base + "/v1/tickets/1", "DELETE")[0] == 405
    assert [(r.method, r.path) for r in http_stub.write_requests()] == [
        ("POST", "/g"), ("PUT", "/v1/tickets"), ("DELETE", "/v1/tickets/1")
    ]


def test_stub_injects_failures_until_healed(http_stub):
    http_stub.fail("/v1/users", 429)
    assert call(http_stub.base + "/v1/users")[0] == 429
    assert call(http_stub.base + "/v1/other")[0] == 200
    http_stub.graphql_errors("/graphql.json")
    status, doc = call(http_stub.base + "/graphql.json", "POST", {"query": "{ shop { name } }"})
    assert status == 200 and doc["errors"]
    http_stub.heal()
    assert call(http_stub.base + "/v1/users")[0] == 200


# --- rerouting -------------------------------------------------------------------------------------------


def test_reroute_keeps_path_and_query():
    assert reroute_url("https://api.richpanel.com/v1/users?limit=1", "http://127.0.0.1:8123") == (
        "http://127.0.0.1:8123/v1/users?limit=1"
    )
    assert reroute_url("https://shop.myshopify.com:443/admin/graphql.json", "http://127.0.0.1:9/") == (
        "http://127.0.0.1:9/admin/graphql.json"
    )


def test_plan_reroutes_list_every_http_check():
    subs = plan_reroutes(small_plan(), "http://127.0.0.1:8123", {"SHOPIFY_SHOP_DOMAIN": "x.myshopify.com"})
    assert [(s.check, s.rerouted) for s in subs] == [
        ("richpanel_read", "http://127.0.0.1:8123/v1/users?limit=1"),
        ("shopify_graphql", "http://127.0.0.1:8123/admin/api/2024-10/graphql.json"),
    ]
    assert subs[0].original.startswith("${RICHPANEL_API_BASE")


# --- the repository's own plan ---------------------------------------------------------------------------


def test_seed_the_repository_plan(aws_env, emulator):
    plan_module = pytest.importorskip("cutover.plan.load")
    path = REPO / "phases.yaml"
    if not path.exists() or not hasattr(plan_module, "load_plan"):
        pytest.skip("no phases.yaml / load_plan yet")
    plan = plan_module.load_plan(str(path))
    summary = seed(plan, emulator)
    ports = make_ports(plan.region, None, read_only=True)
    from cutover.core import flags as flagmod

    live = flagmod.read_live(plan, ports.params, functions=ports.functions)
    assert {f.name: live[f.key].value for f in plan.flags} == plan.rollback_values()
    assert summary.functions == ["rp-mw-prod-worker"]
    assert summary.warnings == []
    for sid in secret_refs(plan):
        assert ports.secrets.get_value(sid)
    env = sandbox_env(plan, emulator)
    assert env["AWS_ENDPOINT_URL"] == emulator.endpoint and os.environ["AWS_ENDPOINT_URL"] == emulator.endpoint


def test_log_markers_follow_a_fast_forwarded_clock(aws_env, emulator):
    from cutover.sandbox.emulator import refresh

    plan = small_plan()
    seed(plan, emulator)
    later = datetime.now(timezone.utc) + timedelta(minutes=90)
    assert refresh(plan, emulator, later).log_events == 2
    ports = make_ports(REGION, None, read_only=True)
    events = list(ports.logs.events("/aws/lambda/beat", later - timedelta(seconds=120), later))
    assert [e.message for e in events] == ["heartbeat ok"]


def test_log_markers_stop_at_the_newest_time_the_emulator_accepts(aws_env, emulator):
    from cutover.sandbox.emulator import refresh

    real = datetime.now(timezone.utc)
    assert refresh(small_plan(), emulator, real + timedelta(hours=5)).log_events == 2
    ports = make_ports(REGION, None, read_only=True)
    events = list(ports.logs.events("/aws/lambda/refresh", real, real + timedelta(hours=5)))
    assert len(events) == 1 and real + timedelta(hours=1) < events[0].timestamp < real + timedelta(hours=2)


def test_a_log_event_the_emulator_drops_is_an_error_not_silence(aws_env, emulator):
    from cutover.errors import AwsError

    with pytest.raises(AwsError) as exc:
        emulator.seeder(REGION).put_log_event("/t/g", "x", datetime.now(timezone.utc) + timedelta(hours=3))
    assert exc.value.code == "RejectedLogEvent"


# --- compressed time (`cutover sandbox --time-scale N`) ---------------------------------------------------


def test_time_scale_copies_the_plan_with_bakes_and_quiet_windows_shorter_and_nothing_else(tmp_path):
    from cutover.plan.load import load_plan
    from cutover.sandbox.emulator import compress_time

    plan = load_plan(REPO / "phases.yaml")
    out = compress_time(plan, 60, str(tmp_path))
    assert [p.bake for p in out.plan.phases] == [30.0, 60.0, 120.0] == [p.bake / 60 for p in plan.phases]
    alarms = [c for c in plan.checks.values() if c.type == "alarms"]
    assert alarms and all(out.plan.checks[c.name].quiet_for == c.quiet_for / 60 for c in alarms)
    assert out.changes == ["quiet_for of alarms_quiet: 15m -> 15s", "bake of shadow: 30m -> 30s",
                           "bake of canary: 1h -> 1m", "bake of full: 2h -> 2m"]
    # Byte for byte the same otherwise: comments and line numbers kept (plan errors point at the same lines).
    before, after = (REPO / "phases.yaml").read_text().splitlines(), Path(out.path).read_text().splitlines()
    assert len(before) == len(after)
    assert [(a, b) for a, b in zip(before, after) if a != b] == [
        ("    quiet_for: 15m", "    quiet_for: 15s"), ("    bake: 30m", "    bake: 30s"),
        ("    bake: 1h", "    bake: 60s"), ("    bake: 2h", "    bake: 120s")]
    assert oct(os.stat(out.path).st_mode & 0o777) == "0o600"
    assert out.lines(60)[0].startswith("Time scale x60: bakes and alarm quiet windows are 60 times shorter")


def test_time_scale_rounds_up_and_keeps_zero(tmp_path):
    from cutover.plan.load import load_plan, parse_plan
    from cutover.sandbox.emulator import compress_time

    e2e = REPO / "tests" / "plans" / "e2e.yaml"
    src = tmp_path / "src" / "e2e.yaml"
    src.parent.mkdir()
    src.write_text(e2e.read_text().replace('    set: {mode: "shadow"}\n', '    set: {mode: "shadow"}\n    bake: 90s\n', 1))
    out = compress_time(load_plan(src), 3600, str(tmp_path))
    assert out.plan.phases[0].bake == 1 and out.plan.checks["quiet"].quiet_for == 0  # 90s -> 1s; 0s stays 0
    assert out.changes == ["bake of shadow: 1m30s -> 1s"]
    assert parse_plan(Path(out.path).read_bytes(), "x").name == "e2e"  # same name: same state parameters


@pytest.mark.parametrize("scale", ["0", "3601", "x"])
def test_sandbox_time_scale_out_of_range_is_a_usage_error(scale):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "cutover", "--plan", str(REPO / "tests" / "plans" / "e2e.yaml"), "sandbox",
                           "--time-scale", scale], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "--time-scale" in done.stderr, done.stderr


def test_the_emulator_looks_each_hosts_backend_up_once(monkeypatch):
    """moto finds a request's backend by listing its package and trying every URL pattern; the
    emulator's server does that once per host, and routes as moto does."""
    import boto3
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from cutover.sandbox.moto_server import MotoServer

    lookups: list[str | None] = []
    moto_lookup = DomainDispatcherApplication.get_backend_for_host

    def counted(self, host):
        lookups.append(host)
        return moto_lookup(self, host)

    monkeypatch.setattr(DomainDispatcherApplication, "get_backend_for_host", counted)
    server = MotoServer("127.0.0.1")
    server.start()
    try:
        host, port = server.address
        clients = {name: boto3.client(name, region_name="us-east-2", endpoint_url=f"http://{host}:{port}",
                                      aws_access_key_id="testing", aws_secret_access_key="testing")
                   for name in ("ssm", "logs")}
        for _ in range(3):
            clients["ssm"].describe_parameters()
            clients["logs"].describe_log_groups()
    finally:
        server.stop()
    hosts = [h for h in lookups if h]
    assert sorted(hosts) == ["logs.us-east-2.amazonaws.com", "ssm.us-east-2.amazonaws.com"]  # once each, not 3 times
    assert {server.app.backends[h] for h in hosts} == {"ssm", "logs"}
