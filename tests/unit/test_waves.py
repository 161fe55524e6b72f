"""targets:, waves: and fanout: (issue 17): parsed into the model, every broken rule one line naming
its line in phases.yaml, and refused by every command but validate until they act on every target."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.core.state import StateRecord
from cutover.cli.wiring import TARGET_COMMANDS, listed
from cutover.model.targets import Fanout, steps
from cutover.plan.load import load_plan, parse_plan
from tests.fakes import FakeIdentity, FakeParameterStore
from tests.unit.test_plan import assert_error, plan_text

ROOT = Path(__file__).resolve().parents[2]
WAVES_PLAN = ROOT / "tests" / "plans" / "waves.yaml"


def with_targets(targets: str, waves: str = "", fanout: str = "") -> str:
    return plan_text() + targets + waves + fanout


TWO = "targets:\n  a: {region: us-east-2}\n  b: {region: us-west-2}\n"


def test_the_issue_example_parses_into_targets_and_waves():
    plan = load_plan(WAVES_PLAN)
    assert [(t.name, t.region, t.account) for t in plan.targets] == [
        ("use2", "us-east-2", None), ("usw2", "us-west-2", None), ("euw1", "eu-west-1", "222222222222")]
    euw1 = plan.targets[2]
    assert euw1.role_arn == "arn:aws:iam::222222222222:role/cutover-operator"
    assert euw1.external_id == "${CUTOVER_EXTERNAL_ID}"  # expanded when the role is assumed, never stored expanded
    assert [(w.name, w.targets, w.bake) for w in plan.waves] == [("pilot", ("use2",), 0.0), ("rest", ("usw2", "euw1"), 1800.0)]
    assert plan.fanout == Fanout(first_wave_max=1, factor=3)
    assert steps(plan.phase_names, plan.waves) == [("shadow", "pilot"), ("shadow", "rest"), ("canary", "pilot"), ("canary", "rest")]


def test_a_plan_without_targets_is_unchanged():
    plan = parse_plan(plan_text())
    assert (plan.targets, plan.waves, plan.fanout) == ((), (), None)


def test_the_account_comes_from_the_role_when_not_given():
    plan = parse_plan(with_targets("targets:\n  x: {region: eu-west-1, role_arn: 'arn:aws:iam::333333333333:role/r'}\n"))
    assert plan.targets[0].account == "333333333333" and [w.targets for w in plan.waves] == [("x",)]


@pytest.mark.parametrize("text,words", [
    (with_targets(TWO, "waves:\n  - {name: one, targets: [a, c]}  # <-\n  - {name: two, targets: [b]}\n"),
     ["waves[0].targets[1]", "unknown target 'c'", ]),
    (with_targets(TWO, "waves:\n  - {name: one, targets: [a]}\n  - {name: two, targets: [b, a]}  # <-\n"),
     ["waves[1].targets[1]", "'a' is already in wave 'one'"]),
    (with_targets("targets:\n  a: {region: us-east-2}\n  b: {region: us-east-2}  # <-\n", "waves:\n  - {name: one, targets: [a, b]}\n"),
     ["targets.b", "the same account and region as target 'a' (us-east-2, the caller's account)"]),
    (with_targets(TWO, "waves:  # <-\n  - {name: one, targets: [a]}\n"), ["target(s) b in no wave"]),
    (with_targets(TWO, "waves:\n  - {name: one, targets: [a]}\n  - {name: one, targets: [b]}  # <-\n"),
     ["duplicate wave 'one'", "first on line"]),
    (with_targets(TWO + "  c: {region: eu-west-1}\n",
                  "waves:\n  - {name: one, targets: [a, b]}  # <-\n  - {name: two, targets: [c]}\n", "fanout: {first_wave_max: 1}\n"),
     ["waves[0] (one): 2 targets", "the first wave may hold 1"]),
    (with_targets("targets:\n" + "".join(f"  t{i}: {{region: {r}}}\n" for i, r in enumerate(
        ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"])),
        "waves:\n  - {name: one, targets: [t0]}\n  - {name: two, targets: [t1, t2, t3, t4]}  # <-\n", "fanout: {factor: 3}\n"),
     ["waves[1] (two): 4 targets", "after 1 target(s), fanout allows at most 3 (factor 3)"]),
    (with_targets("targets:\n  x: {region: eu-west-1, account: '111111111111', role_arn: 'arn:aws:iam::222222222222:role/r'}  # <-\n"),
     ["targets.x.role_arn", "the role is in account 222222222222, the target says 111111111111"]),
    (with_targets("targets:\n  x: {region: eu-west-1, external_id: abc}  # <-\n"),
     ["targets.x.external_id", "only sent when assuming role_arn"]),
    (plan_text() + "waves:  # <-\n  - {name: one, targets: [a]}\n", ["waves: needs targets:"]),
    (with_targets(TWO + "fanout: {factor: 3}\n").replace("targets:\n", "targets:  # <-\n", 1), ["2 targets and no waves:"]),
    (with_targets("targets:\n  x: {region: mars-1}  # <-\n"), ["region"]),
    (with_targets("targets:\n  x: {region: us-east-2, role_arn: 'arn:aws:iam::1:role/r'}  # <-\n"), ["role_arn"]),
    (with_targets("targets:\n  x: {region: us-east-2, colour: red}  # <-\n"), ["colour"]),
])
def test_each_broken_rule_is_one_line_on_its_line(text, words):
    assert_error(text, *words)


def test_the_fanout_allows_exactly_its_growth():
    names = ["us-east-1", "us-east-2", "us-west-1", "us-west-2"]
    targets = "targets:\n" + "".join(f"  t{i}: {{region: {r}}}\n" for i, r in enumerate(names))
    plan = parse_plan(with_targets(targets, "waves:\n  - {name: one, targets: [t0]}\n  - {name: two, targets: [t1, t2, t3]}\n",
                                   "fanout: {first_wave_max: 1, factor: 3}\n"))
    assert [len(w.targets) for w in plan.waves] == [1, 3]


def cutover(*args: str, plan: Path = WAVES_PLAN) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nowhere: nothing may be called
    return subprocess.run([sys.executable, "-m", "cutover", "--plan", str(plan), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_validate_shows_the_waves_and_says_what_is_not_built():  # (status and rollback: tests/integration/test_waves_targets.py)
    r = cutover("validate")
    assert r.returncode == 0, r.stderr
    assert "wave pilot: use2 (us-east-2, the caller's account)" in r.stdout
    assert ("wave rest: usw2 (us-west-2, the caller's account); euw1 (eu-west-1, account 222222222222, as "
            "arn:aws:iam::222222222222:role/cutover-operator); bake 30m after the wave before") in r.stdout
    assert "`sandbox` refuses the plan" in r.stdout or "sandbox refuses the plan" in r.stdout


@pytest.mark.parametrize("command", [["sandbox"]])
def test_every_other_command_refuses_a_plan_with_targets_before_any_aws_call(command):
    r = cutover(*command)
    assert r.returncode == 2, (r.stdout, r.stderr)
    line = r.stderr.strip().splitlines()[0]
    assert "declares 3 target(s) in 2 wave(s)" in line and f"acts on targets with {listed(TARGET_COMMANDS)} only; nothing was done" in line
    assert "`runbook`" in line
    assert "Traceback" not in r.stderr


def test_guard_bootstrap_prints_one_template_per_account_with_no_aws_call():
    import json

    guarded = ROOT / "tests" / "plans" / "waves_guard.yaml"
    r = cutover("guard", "bootstrap", plan=guarded)  # two accounts: which one?
    assert r.returncode == 2 and "the targets are in 2 accounts" in r.stderr, r.stderr
    assert "--target use2 (us-east-2, the caller's account); --target euw1 (eu-west-1, account 222222222222)" in r.stderr
    for target, regions, other in (("use2", ["us-east-2", "us-west-2"], "eu-west-1"), ("usw2", ["us-east-2", "us-west-2"], "eu-west-1"),
                                   ("euw1", ["eu-west-1"], "us-")):
        r = cutover("guard", "bootstrap", "--target", target, plan=guarded)
        assert r.returncode == 0, r.stderr
        template = json.loads(r.stdout)
        roles = [res["Properties"] for res in template["Resources"].values() if res["Type"] == "AWS::IAM::Role"]
        # The same two names in every account (IAM is global: one pair per account covers its regions).
        assert [p["RoleName"] for p in roles] == ["cutover-waves-guard-rollback-automation", "cutover-waves-guard-rollback-events"]
        text = json.dumps(template)
        assert all(f"arn:aws:ssm:{region}:" in text for region in regions) and other not in text
        assert "--stack-name cutover-waves-guard-guard-roles" in r.stderr and f"--target {target}" in r.stderr
    assert cutover("guard", "bootstrap", "--target", "mars", plan=guarded).returncode == 2


def test_iam_policy_gives_a_policy_per_account_and_each_roles_trust_policy():
    import json

    r = cutover("iam-policy", "--account", "111111111111")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(a["account"], a["targets"]) for a in doc["accounts"]] == [("111111111111", ["use2", "usw2"]), ("222222222222", ["euw1"])]
    first = json.dumps(doc["accounts"][0]["policies"])
    assert "arn:aws:ssm:us-east-2:111111111111:parameter/waves-demo/kill_switch" in first
    assert "arn:aws:ssm:us-west-2:111111111111:parameter/waves-demo/kill_switch" in first and "eu-west-1" not in first
    assert "arn:aws:ssm:eu-west-1:222222222222:parameter/cutover/waves-demo/state" in json.dumps(doc["accounts"][1]["policies"])
    sids = [s["Sid"] for a in doc["accounts"] for p in a["policies"] for s in p["Statement"]]
    assert len(sids) == len(set(sids)) and all(sid.isalnum() for sid in sids)
    assert sum(s["Sid"].startswith("IdentifyCaller") for s in doc["accounts"][0]["policies"][0]["Statement"]) == 1
    [trust] = doc["trust_policies"]
    assert trust["role_arn"] == "arn:aws:iam::222222222222:role/cutover-operator"
    stmt = trust["policy"]["Statement"][0]
    assert stmt["Principal"] == {"AWS": "arn:aws:iam::111111111111:root"} and stmt["Action"] == "sts:AssumeRole"
    assert stmt["Condition"] == {"StringEquals": {"sts:ExternalId": "${CUTOVER_EXTERNAL_ID}"}}
    assert "shown as written" in r.stderr


def fake_runtime(plan, target, store):
    """A Runtime of one target of `plan` on in-memory fakes, its parameter store `store`."""
    from cutover.commands.runtime import Runtime
    from cutover.ports import AwsPorts
    from cutover.testing.clock import FakeClock
    from tests.gatefakes import FakeAlarms, FakeLogs, FakeSecrets

    single = dataclasses.replace(plan, region=target.region, account=target.account, targets=(), waves=(), fanout=None)
    ports = AwsPorts(params=store, alarms=FakeAlarms([]), secrets=FakeSecrets(), logs=FakeLogs(),
                     identity=FakeIdentity(), region=target.region)
    return Runtime(plan=single, aws=ports, env={}, clock=FakeClock(), evidence_dir=None)


def test_a_rollback_goes_on_past_a_target_that_breaks_and_restores_later_waves_first():
    """On in-memory fakes: one target's runtime raises a bug (not a CutoverError); the others are still
    restored, in rollback order, and the broken one is named with its retry (exit 4)."""
    from cutover.commands import waves

    plan = load_plan(WAVES_PLAN)
    stores, order = {}, []

    def runtime_for(target):
        if target.name == "usw2":
            raise RuntimeError("a bug")
        store = stores[target.name] = FakeParameterStore()
        store.put("/waves-demo/kill_switch", "on")
        order.append(target.name)
        return fake_runtime(plan, target, store)

    out = waves.rollback(plan, runtime_for, reason="test")
    assert out.exit_code == 4
    assert "1 of 3 target(s) not restored: usw2" in out.headline and "cutover rollback --target usw2 --yes" in out.hint
    assert any("usw2" in line and "unexpected error (RuntimeError)" in line for line in out.lines)
    assert order == ["euw1", "use2"]  # the wave `rest` (usw2, euw1) before `pilot` (use2)
    assert {n: s.get_many(["/waves-demo/kill_switch"])["/waves-demo/kill_switch"].value for n, s in stores.items()} == {
        "euw1": "off", "use2": "off"}


def test_status_says_under_each_target_what_a_killed_rollback_left_and_that_it_stopped_between_waves():
    """What a rollback SIGKILLed half-way leaves (tests/integration/test_waves_killpoints.py): wave rest
    restored, euw1's record still `rolling_back`, wave pilot still in canary. Each target alone has its
    explanation; together, a rollback that stopped between waves (status used to say only
    'is unfinished' per target, and nothing at all once every target of wave rest was finished)."""
    from cutover.commands import waves

    plan = load_plan(WAVES_PLAN)
    records = {"use2": ("on", StateRecord("canary")), "usw2": ("off", StateRecord("rolled_back")),
               "euw1": ("off", StateRecord("canary", status="rolling_back", target="rolled_back", command="rollback"))}
    stores = {}
    for name, (flag, record) in records.items():
        store = stores[name] = FakeParameterStore()
        store.put("/waves-demo/kill_switch", flag)
        store.put("/cutover/waves-demo/state", dataclasses.replace(record, plan=plan.name).to_json())

    def runtime_for(target):
        return fake_runtime(plan, target, stores[target.name])

    out = waves.status(plan, runtime_for, check=True)
    assert out.exit_code == 5 and out.headline == "2 of 3 target(s) need attention: use2, euw1", out.headline
    row = out.lines.index(next(line for line in out.lines if line.strip().startswith("euw1 (")))
    assert out.lines[row + 1] == "        rolling_back was interrupted: finish it by re-running `cutover rollback`"
    assert ("wave rest is rolled back (usw2) but use2 of an earlier wave is still in canary: a rollback that stopped "
            "between waves (or `cutover rollback --target`); `cutover rollback` restores every target") in out.lines

    stores["euw1"].put("/cutover/waves-demo/state", StateRecord("rolled_back", plan=plan.name).to_json())
    finished_rest = waves.status(plan, runtime_for, check=True)  # each target alone healthy now
    assert finished_rest.exit_code == 5 and "need attention: use2" in finished_rest.headline
    assert any("a rollback that stopped between waves" in line for line in finished_rest.lines)
    assert waves.status(plan, runtime_for).exit_code == 0  # (without --check: informative only)


def test_iam_policy_guard_adds_each_targets_guard_permissions_the_roles_once_per_account():
    import json

    r = cutover("iam-policy", "--guard", "--account", "111111111111", plan=ROOT / "tests" / "plans" / "waves_guard.yaml")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    sids = {a["account"]: [s["Sid"] for p in a["policies"] for s in p["Statement"]] for a in doc["accounts"]}
    assert {"ManageGuardRuleUse2", "ManageGuardRuleUsw2", "ReadGuardRolesUse2"} <= set(sids["111111111111"])
    assert "ReadGuardRolesUsw2" not in sids["111111111111"]  # one pair of roles per account: read once
    assert {"ManageGuardDocumentEuw1", "PassEventsRoleToEventBridgeEuw1"} <= set(sids["222222222222"])
    text = json.dumps(doc["accounts"][0])
    assert "arn:aws:events:us-west-2:111111111111:rule/cutover-waves-guard-rollback" in text
    plain = json.loads(cutover("iam-policy", "--account", "111111111111").stdout)  # waves.yaml: no auto_rollback, no --guard
    assert "Guard" not in json.dumps(plain)
