"""`cutover rollback --in-aws` (issue 17): one SSM Automation execution across every target account and
region. moto implements no Automation execution (nor across accounts), so the use case runs on a fake
AutomationStarter port; what AWS then does in each location cannot be shown on the emulator."""

import subprocess
import sys
from pathlib import Path

import pytest

from cutover.commands.rollback_in_aws import ADMIN_ROLE, decide, rollback_in_aws
from cutover.errors import AwsError, Blocked, UsageError
from cutover.plan.load import load_plan
from cutover.ports import Identity
from tests.fakes import FakeAutomationStarter

ROOT = Path(__file__).resolve().parents[2]
PLAN = load_plan(str(ROOT / "tests" / "plans" / "waves_guard.yaml"))
CALLER = Identity("arn:aws:iam::111111111111:user/ops", "111111111111")
DOC, ROLE = "cutover-waves-guard-rollback", "cutover-waves-guard-rollback-automation"


def test_one_target_location_per_account_with_only_its_regions_and_one_failure_never_stops_the_others():
    d = decide(PLAN, CALLER.account, "db on fire")
    assert d.region == "us-east-2" and d.document == DOC
    assert d.locations == [
        {"Accounts": ["111111111111"], "Regions": ["us-east-2", "us-west-2"], "ExecutionRoleName": ROLE,
         "TargetLocationMaxErrors": "2", "TargetLocationMaxConcurrency": "2"},
        {"Accounts": ["222222222222"], "Regions": ["eu-west-1"], "ExecutionRoleName": ROLE,
         "TargetLocationMaxErrors": "1", "TargetLocationMaxConcurrency": "1"},
    ]
    assert d.max_errors == "3" and d.parameters == {"AlarmName": ["cutover rollback --in-aws: db on fire"]}
    # A reason cannot smuggle anything the document would read as a variable.
    assert decide(PLAN, CALLER.account, 'x {{y}} "z"').parameters["AlarmName"][0] == "cutover rollback --in-aws: x   y    z"


def test_it_starts_one_execution_and_says_how_to_follow_it():
    starter = FakeAutomationStarter(documents=[DOC])
    out = rollback_in_aws(PLAN, starter, CALLER, reason="drill")
    assert out.exit_code == 0 and len(starter.started) == 1
    assert starter.started[0]["locations"] == decide(PLAN, CALLER.account, "drill").locations
    assert "execution exec-1 of cutover-waves-guard-rollback across 3 target(s)" in out.headline
    assert "follow it: aws ssm get-automation-execution --region us-east-2 --automation-execution-id exec-1" in out.lines
    assert out.data["execution_id"] == "exec-1"


def test_without_the_administration_role_or_the_armed_document_nothing_is_started():
    starter = FakeAutomationStarter(roles=(), documents=[DOC])
    with pytest.raises(Blocked) as err:
        rollback_in_aws(PLAN, starter, CALLER)
    assert ADMIN_ROLE in err.value.message and "account 111111111111" in err.value.message and "nothing was started" in err.value.message
    starter = FakeAutomationStarter(documents=())
    with pytest.raises(Blocked) as err:
        rollback_in_aws(PLAN, starter, CALLER)
    assert "not armed in us-east-2" in err.value.message and "cutover guard arm" in err.value.hint
    assert starter.started == []


def test_a_dry_run_starts_nothing_and_aws_refusing_is_its_error():
    starter = FakeAutomationStarter(documents=[DOC])
    out = rollback_in_aws(PLAN, starter, CALLER, dry_run=True)
    assert out.exit_code == 0 and out.headline.startswith("dry run: would start") and starter.started == []
    refused = FakeAutomationStarter(documents=[DOC], refuse=AwsError("AWS refused", code="AccessDenied"))
    with pytest.raises(AwsError):
        rollback_in_aws(PLAN, refused, CALLER)


def test_a_plan_without_targets_is_refused_before_any_aws_call():
    e2e = load_plan(str(ROOT / "tests" / "plans" / "e2e.yaml"))
    with pytest.raises(UsageError):
        rollback_in_aws(e2e, FakeAutomationStarter(), CALLER)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nowhere: nothing may be called
    r = subprocess.run([sys.executable, "-m", "cutover", "--plan", str(ROOT / "tests" / "plans" / "e2e.yaml"), "rollback",
                        "--in-aws", "--yes"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--in-aws needs a plan with targets" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "cutover", "--plan", str(ROOT / "tests" / "plans" / "waves_guard.yaml"),
                        "rollback", "--in-aws", "--target", "use2", "--yes"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and "it takes no --target or --to" in r.stderr
