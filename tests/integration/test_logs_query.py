"""logs_query checks. moto runs only `fields`, `sort` and `limit` of the Logs Insights language and
completes every query at once, so the gate's handling of statuses and rows is tested through a fake
port (FakeInsights below), and the adapter itself on the emulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from cutover.testing.clock import FakeClock
from cutover.errors import AwsError
from cutover.gates import FAIL, PASS, run_check
from cutover.checks.logs_query import FieldLimit, LogsQueryCheck
from tests.gatefakes import make_ctx

CHECK = LogsQueryCheck("openai_failures", ("/aws/lambda/worker",),
                       "filter @message like /request_failed/ | stats count() as failures", 3600.0,
                       {"failures": FieldLimit(max=0.0)}, timeout=30.0)


class FakeInsights:
    """Answers GetQueryResults from a script of (status, rows); the last answer repeats."""

    def __init__(self, answers: list[tuple[str, list[dict]]], error: Exception | None = None) -> None:
        self.answers, self.error, self.started, self.polls = answers, error, [], 0

    def start_query(self, log_groups, query, start, end) -> str:
        if self.error:
            raise self.error
        self.started.append((tuple(log_groups), query, start, end))
        return "q-1"

    def query_results(self, query_id: str):
        self.polls += 1
        return self.answers[min(self.polls, len(self.answers)) - 1]


def run(answers, check=CHECK, error=None):
    clock = FakeClock(datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc))
    ctx = make_ctx(clock=clock)
    ctx.aws.insights = FakeInsights(answers, error)
    return run_check(check, ctx), ctx.aws.insights, clock


def test_polls_until_complete_over_the_window_then_passes():
    r, fake, clock = run([("Scheduled", []), ("Running", []), ("Complete", [{"failures": "0"}])])
    assert r.status == PASS and r.detail == "openai_failures PASS failures 0 <= max 0", r
    assert fake.polls == 3 and clock.monotonic() == 1002.0  # slept on the injected clock between polls
    groups, query, start, end = fake.started[0]
    assert groups == ("/aws/lambda/worker",) and end - start == timedelta(hours=1)
    assert r.data["window"] == {"start": "2026-03-01T11:00:00Z", "end": "2026-03-01T12:00:00Z"} and r.data["rows"] == 1


def test_a_value_beyond_its_limit_fails_naming_the_worst_row():
    r, _, _ = run([("Complete", [{"failures": "0"}, {"failures": "3"}])])
    assert r.status == FAIL and r.detail == "openai_failures FAIL failures 3 (highest of 2 rows) > max 0"
    assert r.data["outcome"] == "FAIL" and r.data["value"] == 3.0


@pytest.mark.parametrize("status", ["Failed", "Cancelled", "Timeout", "Unknown"])
def test_a_query_that_ends_badly_is_an_error(status):
    r, _, _ = run([("Running", []), (status, [])])
    assert r.status == FAIL and r.detail == f"openai_failures ERROR the Logs Insights query ended {status}"
    assert r.data["outcome"] == "ERROR"


def test_a_query_still_running_at_the_timeout_is_an_error():
    r, fake, _ = run([("Running", [])])
    assert r.status == FAIL and "still Running after 30s" in r.detail and r.data["outcome"] == "ERROR"
    assert fake.polls == 30


def test_no_rows_is_inconclusive_unless_the_check_lets_it_through():
    r, _, _ = run([("Complete", [])])
    assert r.status == FAIL and r.detail == "openai_failures INCONCLUSIVE no row has field 'failures' (0 row(s))"
    lenient = LogsQueryCheck(**{**CHECK.__dict__, "inconclusive": "pass"})
    r, _, _ = run([("Complete", [])], check=lenient)
    assert r.status == PASS and r.detail.endswith("(let through by inconclusive: pass)")


def test_access_denied_is_an_error_naming_the_permissions():
    r, _, _ = run([], error=AwsError("denied", code="AccessDeniedException"))
    assert r.status == FAIL and r.data["outcome"] == "ERROR"
    assert "access denied" in r.detail and "logs:StartQuery and logs:GetQueryResults" in r.detail


def test_the_adapter_on_the_emulator_returns_complete_rows_without_ptr(aws_ports, emulator):
    now = datetime.now(timezone.utc)
    emulator.seeder("us-east-2").put_log_event("/lq/worker", "order_status_intent.request_failed", now - timedelta(minutes=1))
    qid = aws_ports.insights.start_query(["/lq/worker"], "fields @message | limit 5", now - timedelta(hours=1), now)
    status, rows = aws_ports.insights.query_results(qid)
    assert status == "Complete" and [r["@message"] for r in rows] == ["order_status_intent.request_failed"]
    assert all("@ptr" not in r for r in rows)


def test_plan_format_and_errors():
    from cutover.errors import PlanError
    from cutover.plan.load import parse_plan

    head = ("version: 1\nname: demo\nregion: us-east-2\nflags:\n  mode: {parameter: /demo/mode, rollback: \"off\"}\n"
            "checks:\n  q:\n    type: logs_query\n    log_groups: [/aws/lambda/worker]\n    query: \"stats count() as n\"\n"
            "    window: 1h\n")
    tail = "phases:\n  - name: shadow\n    set: {mode: shadow}\n    gates: [q]\n"
    check = parse_plan(head + "    expect: {n: {max: 5, min: 1}}\n" + tail).checks["q"]
    assert check.expect == {"n": FieldLimit(max=5.0, min=1.0)} and check.timeout == 60.0
    for extra, line, message in (("    expect: {n: {}}\n", 12, "expect.n"), ("", 7, "expect"),
                                 ("    expect: {n: {max: 1, limit: 2}}\n", 12, "limit")):
        with pytest.raises(PlanError) as err:
            parse_plan(head + extra + tail)
        assert err.value.line == line and message in str(err.value), str(err.value)


def _with_query(path="tests/plans/e2e.yaml"):
    import dataclasses
    from pathlib import Path

    from cutover.plan.load import load_plan

    plan = load_plan(Path(__file__).parents[2] / path)
    shadow = dataclasses.replace(plan.phases[0], gates=(*plan.phases[0].gates, "openai_failures"))
    return dataclasses.replace(plan, checks={**plan.checks, "openai_failures": CHECK}, phases=(shadow, *plan.phases[1:]))


def test_iam_and_runbook_name_the_query():
    from cutover.compile import iam
    from cutover.compile import runbook

    stmts = {s["Sid"]: s for s in iam.policy(_with_query(), read_only=True)["Statement"]}
    assert stmts["QueryGateLogGroups"]["Action"] == ["logs:StartQuery"]
    assert stmts["QueryGateLogGroups"]["Resource"] == ["arn:aws:logs:us-east-2:ACCOUNT_ID:log-group:/aws/lambda/worker:*"]
    assert stmts["ReadGateQueryResults"] == {"Sid": "ReadGateQueryResults", "Effect": "Allow",
                                             "Action": ["logs:GetQueryResults"], "Resource": "*"}
    assert ("- `openai_failures` (logs_query): the Logs Insights query `filter @message like /request_failed/ | stats "
            "count() as failures` on `/aws/lambda/worker` over the last 1h gives, in every row, `failures` at most 0; "
            "no rows blocks; a failed query blocks") in runbook.render(_with_query())


def test_a_rehearsal_answers_logs_queries_from_canned_results(tmp_path, monkeypatch):
    from cutover.sandbox.rehearse import rehearse

    monkeypatch.chdir(tmp_path)
    out = rehearse(_with_query(), tmp_path / "evidence")
    assert out.exit_code == 0, out.lines
    assert any("logs_query checks get canned results" in line for line in out.lines)


def test_the_schema_names_every_logs_query_field():
    import dataclasses

    from cutover.plan.schema import plan_schema

    props = plan_schema()["$defs"]["logs_query_check"]["properties"]
    assert set(props) == {f.name for f in dataclasses.fields(LogsQueryCheck)} - {"name"}


def test_two_queries_share_one_statement_of_each_sid():
    """Each logs_query check asks for its own groups; the policy holds one StartQuery statement with every
    group once, in plan order, and one GetQueryResults (IAM refuses a policy with a Sid twice)."""
    import dataclasses

    from cutover.compile import iam

    plan = _with_query()
    other = dataclasses.replace(CHECK, name="more_failures", log_groups=("/aws/lambda/other", "/aws/lambda/worker"))
    plan = dataclasses.replace(plan, checks={**plan.checks, "more_failures": other})
    sids = [s["Sid"] for s in iam.policy(plan, read_only=True)["Statement"]]
    assert sids.count("QueryGateLogGroups") == 1 and sids.count("ReadGateQueryResults") == 1
    [query] = [s for s in iam.policy(plan, read_only=True)["Statement"] if s["Sid"] == "QueryGateLogGroups"]
    assert query["Resource"] == [f"arn:aws:logs:us-east-2:ACCOUNT_ID:log-group:/aws/lambda/{g}:*" for g in ("worker", "other")]
