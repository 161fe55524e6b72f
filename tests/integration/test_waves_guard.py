"""The guard of a plan with targets (issue 17) on one emulator: two regions of the caller's account and one
region of another account, reached through its role. `guard arm` arms a document, rule and rule target
in every target (each with that target's credentials); `guard status` has a section per target; an alarm
in one target's region fires only that target's guard (the sandbox's GuardPlayer plays EventBridge and
Automation from what is armed there); `guard disarm` removes every target's; a target that cannot be
reached fails alone, the others armed, the worst exit code."""

import json
from pathlib import Path

import pytest

from cutover.compile import guard
from cutover.core import state
from cutover.model.plan import ROLLED_BACK
from cutover.plan.load import load_plan
from cutover.sandbox.guard import GuardPlayer, bootstrap_roles
from cutover.sandbox.seed import EmulatorSeeder
from tests.integration.test_cli import Cli

ROOT = Path(__file__).resolve().parents[2]
PLAN_PATH = str(ROOT / "tests" / "plans" / "waves_guard.yaml")
FLAG, STATE = "/waves-guard/kill_switch", "/cutover/waves-guard/state"
OTHER_ROLE = "arn:aws:iam::222222222222:role/cutover-operator"
WHERE = {"use2": ("us-east-2", None), "usw2": ("us-west-2", None), "euw1": ("eu-west-1", OTHER_ROLE)}
RULE = "cutover-waves-guard-rollback"


def seeder(emulator, name: str) -> EmulatorSeeder:
    region, role = WHERE[name]
    return EmulatorSeeder(emulator.endpoint, region, role)


@pytest.fixture
def plan(aws_env, emulator, monkeypatch):
    """Every target's flag live and its alarm quiet; the roles bootstrapped once per account."""
    monkeypatch.setenv("CUTOVER_EXTERNAL_ID", "ext-1")
    plan = load_plan(PLAN_PATH)
    for name in WHERE:
        s = seeder(emulator, name)
        s.put_parameter(FLAG, "on")
        s.put_alarm("app-errors", "OK")
    return plan


def bootstrap(plan, emulator, *names: str) -> None:
    for t in plan.targets:
        if t.name in names:
            bootstrap_roles(plan.at_target(t), emulator.endpoint, t.role_arn)


def rule(emulator, name: str) -> dict | None:
    return seeder(emulator, name).guard_resources().get_rule(RULE)


def value(emulator, name: str, parameter: str = FLAG) -> str | None:
    resp = seeder(emulator, name).call_api("ssm", "GetParameters", {"Names": [parameter]})
    return resp["Parameters"][0]["Value"] if resp["Parameters"] else None


def test_arm_every_target_status_per_target_then_disarm_every_target(plan, emulator, tmp_path):
    bootstrap(plan, emulator, "use2", "euw1")  # one stack per account: use2's covers usw2 too
    cli = Cli(tmp_path / "ev", plan=PLAN_PATH)
    dry = cli("guard", "arm", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert all(rule(emulator, n) is None for n in WHERE)  # a dry run writes nowhere

    armed = cli("guard", "arm", "--yes", json_out=True)
    assert armed.exit_code == 0, armed.output
    doc = json.loads(armed.stdout)
    assert doc["headline"] == "guard armed in 3 target(s)"
    assert [t["target"] for t in doc["targets"]] == ["use2", "usw2", "euw1"]
    for name in WHERE:  # in each target's own region and account, starting that region's document
        got = rule(emulator, name)
        assert got is not None and got["state"] == "ENABLED", name
        (target,) = seeder(emulator, name).guard_resources().list_targets(RULE)
        region, role = WHERE[name]
        account = role.split(":")[4] if role else "123456789012"
        assert target["Arn"] == f"arn:aws:ssm:{region}:{account}:automation-definition/{RULE}:$DEFAULT"
        assert target["RoleArn"] == f"arn:aws:iam::{account}:role/cutover-waves-guard-rollback-events"
    assert (tmp_path / "ev" / "euw1").is_dir()  # each target's evidence under its name

    status = cli("guard", "status", "--check")
    assert status.exit_code == 0, status.output
    assert "guard ARMED in 3 target(s), each matching the plan" in status.output
    for row in ("use2 (us-east-2, the caller's account): guard ARMED for waves-guard and it matches the plan",
                "usw2 (us-west-2, the caller's account): guard ARMED",
                "euw1 (eu-west-1, account 222222222222): guard ARMED"):
        assert row in status.output
    again = cli("guard", "arm", "--yes")
    assert again.exit_code == 0 and again.output.count("nothing to do: the guard for waves-guard is armed") == 3, again.output

    one = cli("guard", "disarm", "--yes", "--target", "usw2")
    assert one.exit_code == 0 and rule(emulator, "usw2") is None and rule(emulator, "use2") is not None, one.output
    partly = cli("guard", "status", "--check", json_out=True)
    assert partly.exit_code == 5, partly.output
    assert json.loads(partly.stdout)["not_armed"] == ["usw2"]
    assert cli("guard", "status").exit_code == 0  # without --check: a report

    gone = cli("guard", "disarm", "--yes")
    assert gone.exit_code == 0, gone.output
    assert all(rule(emulator, n) is None for n in WHERE)
    assert "kept: roles cutover-waves-guard-rollback-automation" in gone.output  # the bootstrap's
    assert cli("guard", "status", "--check").exit_code == 5


def test_an_alarm_in_one_targets_region_fires_only_that_targets_guard(plan, emulator, tmp_path):
    bootstrap(plan, emulator, "use2", "euw1")
    assert Cli(tmp_path / "ev", plan=PLAN_PATH)("guard", "arm", "--yes").exit_code == 0
    said: list[str] = []
    players = {t.name: GuardPlayer(plan.at_target(t), emulator.endpoint, said.append, role_arn=t.role_arn) for t in plan.targets}
    assert all(p.poll() == [] for p in players.values())  # the first look records the states

    seeder(emulator, "usw2").set_alarm_state("app-errors", "ALARM", "test")
    ran = {name: p.poll() for name, p in players.items()}
    assert [len(ran[n]) for n in ("use2", "usw2", "euw1")] == [0, 1, 0], said
    (execution,) = ran["usw2"]
    assert execution.status == "Success", execution.line()
    assert {n: value(emulator, n) for n in WHERE} == {"use2": "on", "usw2": "off", "euw1": "on"}
    rec = state.StateRecord.from_json(value(emulator, "usw2", STATE))
    assert (rec.phase, rec.status, rec.command) == (ROLLED_BACK, state.STABLE, "guard")
    assert rec.reason == "auto-rollback by guard: alarm app-errors" and rec.run_id == execution.execution_id
    assert value(emulator, "use2", STATE) is None and value(emulator, "euw1", STATE) is None

    # The other account's guard runs there, as that account's automation role.
    seeder(emulator, "euw1").set_alarm_state("app-errors", "ALARM", "test")
    assert [len(players[n].poll()) for n in ("use2", "usw2", "euw1")] == [0, 0, 1]
    assert value(emulator, "euw1") == "off" and value(emulator, "use2") == "on"
    rec = state.StateRecord.from_json(value(emulator, "euw1", STATE))
    assert rec.actor == "arn:aws:iam::222222222222:role/cutover-waves-guard-rollback-automation"


def test_a_target_that_cannot_be_reached_fails_alone_the_others_are_armed(plan, emulator, tmp_path, monkeypatch):
    bootstrap(plan, emulator, "use2", "euw1")
    monkeypatch.delenv("CUTOVER_EXTERNAL_ID")  # euw1's role cannot be assumed without it
    cli = Cli(tmp_path / "ev", plan=PLAN_PATH)
    result = cli("guard", "arm", "--yes")
    assert result.exit_code == 2, result.output
    assert "guard not armed in 1 of 3 target(s): euw1 (eu-west-1, account 222222222222); armed in the others" in result.output
    assert "euw1 (eu-west-1, account 222222222222): its external_id ${CUTOVER_EXTERNAL_ID} names a variable that is not set" in result.output
    assert "cutover guard arm --target euw1 --yes" in result.output
    assert rule(emulator, "use2") is not None and rule(emulator, "usw2") is not None and rule(emulator, "euw1") is None
    status = cli("guard", "status")
    assert status.exit_code == 2 and "use2 (us-east-2, the caller's account): guard ARMED" in status.output, status.output

    monkeypatch.setenv("CUTOVER_EXTERNAL_ID", "ext-1")
    assert cli("guard", "arm", "--target", "euw1", "--yes").exit_code == 0
    assert cli("guard", "status", "--check").exit_code == 0


def test_a_target_whose_account_is_not_bootstrapped_is_refused_alone(plan, emulator, tmp_path):
    bootstrap(plan, emulator, "use2")  # the other account's admin has not applied the template
    result = Cli(tmp_path / "ev", plan=PLAN_PATH)("guard", "arm", "--yes")
    assert result.exit_code == 3, result.output
    assert "euw1 (eu-west-1, account 222222222222): the guard's roles are not bootstrapped for this plan" in result.output
    assert "cutover guard bootstrap --target euw1" in result.output
    assert rule(emulator, "use2") is not None and rule(emulator, "usw2") is not None and rule(emulator, "euw1") is None
    assert guard.names(plan).rule == RULE


def test_targets_of_one_account_spelled_two_ways_are_refused_before_any_write(plan, emulator, tmp_path):
    text = Path(PLAN_PATH).read_text().replace("usw2: {region: us-west-2}", 'usw2: {region: us-west-2, account: "123456789012"}')
    path = tmp_path / "waves_guard.yaml"
    path.write_text(text)
    bootstrap(plan, emulator, "use2", "euw1")
    result = Cli(tmp_path / "ev", plan=str(path))("guard", "arm", "--yes")
    assert result.exit_code == 2, result.output
    assert "targets use2, usw2 are all in account 123456789012, but not all of them say account:" in result.output
    assert all(rule(emulator, n) is None for n in WHERE)


def test_rollback_in_aws_checks_the_administration_role_and_the_armed_document_on_the_emulator(plan, emulator, tmp_path):
    """The adapter's reads against the emulator; the start itself is tested on a fake port
    (tests/unit/test_rollback_in_aws.py): moto implements no Automation execution."""
    from cutover.adapters.aws import Clients, SsmAutomationStarter, make_session
    from cutover.commands.rollback_in_aws import ADMIN_ROLE

    cli = Cli(tmp_path / "ev", plan=PLAN_PATH)
    starter = SsmAutomationStarter(Clients(make_session("us-east-2", None, True)))
    assert not starter.role_exists(ADMIN_ROLE) and not starter.document_exists(RULE)
    refused = cli("rollback", "--in-aws", "--yes")
    assert refused.exit_code == 3 and f"account 123456789012 has no role {ADMIN_ROLE}" in refused.output, refused.output
    seeder(emulator, "use2").put_role(ADMIN_ROLE, {"Version": "2012-10-17", "Statement": []}, {})
    unarmed = cli("rollback", "--in-aws", "--yes")
    assert unarmed.exit_code == 3 and "is not armed in us-east-2" in unarmed.output, unarmed.output
    bootstrap(plan, emulator, "use2", "euw1")
    assert cli("guard", "arm", "--yes").exit_code == 0
    assert starter.document_exists(RULE)
    dry = cli("rollback", "--in-aws", "--dry-run", json_out=True)
    assert dry.exit_code == 0, dry.output
    assert [loc["Regions"] for loc in json.loads(dry.stdout)["target_locations"]] == [["us-east-2", "us-west-2"], ["eu-west-1"]]
    assert {n: value(emulator, n) for n in WHERE} == {"use2": "on", "usw2": "on", "euw1": "on"}
