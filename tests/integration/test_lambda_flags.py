"""Flags kept in a Lambda function's environment.

Unit tests drive the read-merge-write protocol (`cutover.core.lambdaenv`) on an in-memory function store
that has what moto lacks (RevisionId checks, updates that stay InProgress or fail). Integration tests
run mixed plans (tests/plans/e2e.yaml: SSM parameters and two variables of `e2e-worker`) on the
emulator; faults injected from outside (conflicts, denials, lost responses) are in test_faults_lambda.py.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cutover.commands import orchestrator
from cutover.testing.counter import CallCounter
from cutover.testing.clock import FakeClock
from cutover.errors import AwsError, Blocked, ExitCode
from cutover.limits import ENV_LIMIT, env_size
from cutover.core.lambdaenv import WRITE_ATTEMPTS, EnvWriter
from tests.fakes import FakeFunctionStore

WORKER = {"KEEP_ME": "yes", "LOG_LEVEL": "DEBUG", "FLAG_A": "off", "FLAG_B": "none"}


def writer(store: FakeFunctionStore) -> tuple[EnvWriter, FakeClock]:
    clock = FakeClock(datetime(2026, 11, 29, tzinfo=timezone.utc))
    return EnvWriter(store, clock), clock


# --- the protocol, on fakes ----------------------------------------------------------------------------
def test_one_update_sets_every_variable_and_keeps_the_others():
    store = FakeFunctionStore({"worker": WORKER})
    config = writer(store)[0].apply("worker", {"FLAG_A": "on", "FLAG_B": "a@example.com"})
    assert store.env["worker"] == {**WORKER, "FLAG_A": "on", "FLAG_B": "a@example.com"} == config.variables
    assert store.updates() == ["worker"]


def test_nothing_to_change_sends_no_update():
    store = FakeFunctionStore({"worker": WORKER})
    writer(store)[0].apply("worker", {"FLAG_A": "off"})
    assert store.updates() == []


def test_a_change_by_someone_else_between_read_and_write_is_kept():
    store = FakeFunctionStore({"worker": WORKER})
    theirs = iter([{"LOG_LEVEL": "INFO", "NEW_BY_THEM": "1"}])

    def someone_else(function):  # after our read, before our write: their change bumps the revision
        for change in theirs:
            store.set(function, {**store.env[function], **change})

    store.before_update = someone_else
    w, _ = writer(store)
    w.apply("worker", {"FLAG_A": "on"})
    assert store.env["worker"] == {**WORKER, "LOG_LEVEL": "INFO", "NEW_BY_THEM": "1", "FLAG_A": "on"}
    assert store.updates() == ["worker", "worker"] and w.conflicts == 1


def test_conflicts_are_bounded_and_said():
    store = FakeFunctionStore({"worker": WORKER})
    store.before_update = lambda function: store.set(function, store.env[function])  # always someone faster
    w, _ = writer(store)
    with pytest.raises(AwsError) as err:
        w.apply("worker", {"FLAG_A": "on"})
    assert f"after {WRITE_ATTEMPTS} attempts" in err.value.message and "changed" in err.value.message
    assert len(store.updates()) == WRITE_ATTEMPTS and store.env["worker"]["FLAG_A"] == "off"


def test_waits_for_the_update_to_be_applied_on_the_injected_clock():
    store = FakeFunctionStore({"worker": WORKER})
    store.in_progress_reads = 3
    w, clock = writer(store)
    start = clock.monotonic()
    w.apply("worker", {"FLAG_A": "on"})
    reads = [op for op, _ in store.calls if op == "GetFunctionConfiguration"]
    assert len(reads) == 1 + 4  # the first read, then three InProgress reads and the settled one
    assert clock.monotonic() - start >= 0.5 + 1 + 2  # backed off between them, without really sleeping


def test_an_update_lambda_could_not_apply_is_an_error_with_its_reason():
    store = FakeFunctionStore({"worker": WORKER})
    store.fail_update = "KMS key disabled"
    with pytest.raises(AwsError) as err:
        writer(store)[0].apply("worker", {"FLAG_A": "on"})
    assert "KMS key disabled" in err.value.message and err.value.code == "UpdateFailed"


def test_an_update_whose_response_was_lost_is_recognised_and_not_repeated():
    store = FakeFunctionStore({"worker": WORKER})
    store.lost_responses = 1
    writer(store)[0].apply("worker", {"FLAG_A": "on"})
    assert store.updates() == ["worker"] and store.env["worker"]["FLAG_A"] == "on"


def test_an_environment_over_4kb_is_refused_before_writing():
    big = {**WORKER, "BLOB": "x" * (ENV_LIMIT - env_size(WORKER) - 20)}
    store = FakeFunctionStore({"worker": big})
    with pytest.raises(AwsError) as err:
        writer(store)[0].apply("worker", {"FLAG_B": "a-rather-long-cohort@example.com"})
    assert "over Lambda's 4096-byte limit" in err.value.message and "nothing was written" in err.value.message
    assert store.updates() == []


def test_env_size_is_the_json_lambda_measures():
    assert env_size({"A": "1"}) == len('{"A":"1"}')
    assert env_size({"É": "é"}) == len('{"É":"é"}'.encode())


# --- mixed plans on the emulator ---------------------------------------------------------------------
def test_mixed_plan_through_every_command_keeps_the_functions_other_variables(e2e):
    plan = e2e.plan
    others = e2e.others()
    assert others["e2e-worker"] and "E2E_OUTBOUND" not in others["e2e-worker"]

    def run(step, expect_values, **kw):
        counter = CallCounter()
        out = step(e2e(counter=counter, **kw))
        assert out.exit_code == 0, out.headline
        assert e2e.live() == plan.values_for(expect_values)
        assert e2e.others() == others, f"{out.headline}: a variable cutover does not own changed"
        return counter

    run(lambda rt: orchestrator.status(rt, check=True), "pending", dry_run=True)
    c = run(lambda rt: orchestrator.advance(rt), "pending", dry_run=True)
    assert c.writes() == {}
    run(lambda rt: orchestrator.advance(rt), "shadow")
    e2e.clock.advance(3600)
    c = run(lambda rt: orchestrator.advance(rt, approve=True, reason="canary"), "canary")
    assert c["lambda:UpdateFunctionConfiguration"] == 1  # both variables of e2e-worker in one update
    assert c["lambda:GetFunctionConfiguration"] >= 1
    run(lambda rt: orchestrator.advance(rt, reason="full"), "full")
    c = run(lambda rt: orchestrator.rollback(rt, to="shadow"), "shadow")
    assert c["lambda:UpdateFunctionConfiguration"] == 1
    c = run(lambda rt: orchestrator.rollback(rt), "rolled_back")
    assert c["lambda:UpdateFunctionConfiguration"] == 0  # shadow holds the function's rollback values already
    c = run(lambda rt: orchestrator.rollback(rt), "rolled_back")
    assert c.writes() == {}  # nothing to do writes nothing, Lambda included


def test_rollback_writes_the_ssm_kill_switch_before_the_function(e2e):
    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    assert orchestrator.advance(e2e(), approve=True, reason="canary").exit_code == 0
    events = []
    rt = e2e()
    rt.log = type("Log", (), {"info": lambda self, event, **kw: events.append((event, kw.get("flag")))})()
    assert orchestrator.rollback(rt).exit_code == 0
    written = [flag for event, flag in events if event == "flag_written"]
    # kill (SSM) first; outbound and cohort (Lambda) together at outbound's place; then mode, allow.
    assert written == ["kill", "outbound", "cohort", "mode", "allow"]


def test_a_hand_edited_variable_is_drift_and_blocks_the_advance(e2e):
    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.set_flags({"outbound": "on"})
    st = orchestrator.status(e2e(dry_run=True), check=True)
    assert st.exit_code == ExitCode.DRIFT and st.data["drift"] == ["outbound"]
    assert any(line.strip() == "DRIFT outbound = on (declared off) in e2e-worker env E2E_OUTBOUND" for line in st.lines)
    e2e.clock.advance(3600)
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(), approve=True, reason="canary")
    assert "outbound" in err.value.message


def test_evidence_names_the_function_and_variable_and_hides_sensitive_values(e2e):
    import json
    from pathlib import Path

    assert orchestrator.advance(e2e()).exit_code == 0
    e2e.clock.advance(3600)
    out = orchestrator.advance(e2e(), approve=True, reason="canary")
    report = json.loads((Path(out.evidence_path) / "report.json").read_text())
    cohort = next(c for c in report["changes"] if c["flag"] == "cohort")
    assert cohort["kind"] == "lambda" and cohort["target"] == "e2e-worker env E2E_COHORT" and "parameter" not in cohort
    assert cohort["new"] == "(sensitive)" and cohort["confirmed"]
    md = (Path(out.evidence_path) / "report.md").read_text()
    assert "| cohort | `e2e-worker env E2E_COHORT` | `(sensitive)` → `(sensitive)` |" in md and "| kill | `/e2e/kill` |" in md
    assert "cohort@example.com" not in md + json.dumps(report)
