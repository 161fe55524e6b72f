"""AWS's size limits, at the edge: a plan one flag under each limit is accepted, one flag over is refused
(exit 2, naming the limit) before any AWS call. Sizes are counted here the way AWS counts them,
independently of cutover.limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cutover.compile import guard
from cutover.compile import iam
from cutover.model import program
from cutover.cli.app import app
from cutover.errors import UsageError
from cutover.plan.load import load_plan

ACCOUNT = "123456789012"


def plan_file(tmp_path: Path, n: int, value_len: int = 3, prefix: str = "/edge") -> Path:
    """n SSM flags (rollback values of `value_len` characters, parameters under `prefix`), one alarm so a
    guard can be armed."""
    lines = ["version: 1", f"name: edge{n}", "region: us-east-2", "flags:"]
    for i in range(n):
        lines += [f"  f{i:04d}:", f"    parameter: {prefix}/f{i:04d}", f'    rollback: "{"x" * value_len}"']
    lines += ["checks:", "  quiet:", "    type: alarms", "    names: [edge-errors]", "phases:",
              "  - name: live", "    set: {" + ", ".join(f'f{i:04d}: "on"' for i in range(n)) + "}", "    gates: [quiet]"]
    path = tmp_path / f"edge{n}-{value_len}-{len(prefix)}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def iam_chars(doc: dict) -> int:
    """IAM's count: the policy's characters, whitespace not counted."""
    return len("".join(json.dumps(doc).split()))


def first_over(size_of, limit: int, start: int = 1) -> int:
    """The smallest flag count whose artifact is over `limit` (sizes grow with the flags)."""
    n = start
    while size_of(n) <= limit:
        n += 1 if size_of(n + 8) > limit else 8
    return n


def iam_policy(path: Path):
    return CliRunner().invoke(app, ["--plan", str(path), "iam-policy", "--account", ACCOUNT])


def grants(docs: list[dict]) -> set[tuple[str, str, str]]:
    """Every (action, resource, condition) a set of policies allows: what a split must keep."""
    out = set()
    for doc in docs:
        for s in doc["Statement"]:
            resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
            out |= {(a, r, json.dumps(s.get("Condition"), sort_keys=True)) for a in s["Action"] for r in resources}
    return out


def test_operator_policy_over_the_managed_limit_is_split_into_managed_policies(tmp_path):
    size = lambda n: iam_chars(iam.policy(load_plan(str(plan_file(tmp_path, n))), ACCOUNT))  # noqa: E731
    managed = first_over(size, 6_144)
    assert 60 < managed < 200  # reads and writes in one statement: one ARN per flag

    fits = iam_policy(plan_file(tmp_path, managed - 1))
    assert fits.exit_code == 0 and "6,144" not in fits.stderr
    one = json.loads(fits.stdout)
    assert isinstance(one, dict) and iam_chars(one) <= 6_144  # the single policy, as before
    split = iam_policy(plan_file(tmp_path, managed))
    assert split.exit_code == 0, split.output
    parts = json.loads(split.stdout)
    assert isinstance(parts, list) and len(parts) == 2 and all(iam_chars(p) <= 6_144 for p in parts)
    whole = iam.policy(load_plan(str(plan_file(tmp_path, managed))), ACCOUNT)
    assert grants(parts) == grants([whole])
    assert "printed as a JSON list of 2 managed policies" in split.stderr


def test_a_500_flag_operator_policy_is_managed_policies_within_every_limit(tmp_path):
    r = iam_policy(plan_file(tmp_path, 500))
    assert r.exit_code == 0, r.output
    parts = json.loads(r.stdout)
    assert 1 < len(parts) <= 10 and all(iam_chars(p) <= 6_144 for p in parts)
    assert grants(parts) == grants([iam.policy(load_plan(str(plan_file(tmp_path, 500))), ACCOUNT)])
    for p in parts:  # Sids stay unique within each policy
        sids = [s["Sid"] for s in p["Statement"]]
        assert len(sids) == len(set(sids))


def test_an_operator_policy_over_ten_managed_policies_is_refused(tmp_path):
    def parts(n):
        r = iam_policy(plan_file(tmp_path, n))
        return r, (json.loads(r.stdout) if r.exit_code == 0 else None)

    low, high = 500, 1500  # 10 x 6,144 characters: about 1,000 flags of these names
    while high - low > 1:  # the smallest count that is refused
        mid = (low + high) // 2
        low, high = (mid, high) if parts(mid)[0].exit_code == 0 else (low, mid)
    last, docs = parts(low)
    assert len(docs) == 10 and all(iam_chars(p) <= 6_144 for p in docs)
    refused, _ = parts(high)
    assert refused.exit_code == 2 and refused.stdout == ""
    assert "11 managed policies of 6,144, over the 10 AWS attaches to a role by default" in refused.stderr
    assert "hint: split the flags across plans" in refused.stderr


def automation_role(tmp_path: Path, n: int):
    return guard.role_specs(load_plan(str(plan_file(tmp_path, n))), ACCOUNT)[0]


def test_an_automation_role_policy_over_the_inline_limit_becomes_managed_policies(tmp_path):
    size = lambda n: iam_chars(guard.automation_policy(load_plan(str(plan_file(tmp_path, n))), ACCOUNT))  # noqa: E731
    inline = first_over(size, 10_240)
    assert 150 < inline < 250  # writes and read-backs in one statement: one ARN per flag (two before)
    under, over = automation_role(tmp_path, inline - 1), automation_role(tmp_path, inline)
    assert under.managed == {} and under.inline == {guard.POLICY_NAME: under.policy}  # one inline policy, as before
    assert over.inline == {} and len(over.managed) == 2
    assert all(iam_chars(d) <= 6_144 for d in over.managed.values())
    assert list(over.managed) == [f"{over.name}-1", f"{over.name}-2"]
    assert grants(list(over.managed.values())) == grants([over.policy])
    template = guard.bootstrap_template(load_plan(str(plan_file(tmp_path, inline))))["Resources"]
    assert template["AutomationRole"]["Properties"]["Policies"] == []
    attached = {r["Properties"]["ManagedPolicyName"]: r["Properties"] for r in template.values() if r["Type"] == "AWS::IAM::ManagedPolicy"}
    assert set(attached) == set(over.managed) and all(p["Roles"] == [{"Ref": "AutomationRole"}] for p in attached.values())


def test_guard_refuses_an_automation_role_policy_over_ten_managed_policies(tmp_path):
    low, high = 500, 1500  # 10 x 6,144 characters: about 1,000 flags of these names
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if len(automation_role(tmp_path, mid).managed) <= 10 else (low, mid)
    fits = automation_role(tmp_path, low)
    assert len(fits.managed) == 10 and all(iam_chars(d) <= 6_144 for d in fits.managed.values())
    with pytest.raises(UsageError, match=r"automation role's policy would be [\d,]+ characters: 11 managed policies of 6,144, "
                                         r"over the 10 AWS attaches to a role by default"):
        guard.check_plan(load_plan(str(plan_file(tmp_path, high))))


def document_bytes(doc: dict) -> int:
    """The document as YAML text (what `guard arm` sends), in bytes."""
    return len(yaml.safe_dump(doc, sort_keys=False, width=1000, default_flow_style=None).encode())


def test_a_document_too_large_for_one_step_per_flag_is_compact_and_keeps_the_rollback_order(tmp_path):
    """One executeAwsApi step per SSM flag while that fits 64 KB (the layout armed guards have); past it, SSM
    flags in batches of executeScript steps, the same writes in the same order as the rollback program."""
    def layout(n):
        plan = load_plan(str(plan_file(tmp_path, n)))
        doc = guard.build_document(plan, ACCOUNT)
        assert [(w["key"], w["value"]) for w in guard.document_writes(doc)[:-1]] == program.writes(program.steps(plan))
        return doc, {s["action"] for s in doc["mainSteps"][:-1]}

    small, actions = layout(100)
    assert actions == {"aws:executeAwsApi"} and len(small["mainSteps"]) == 101
    large, actions = layout(500)
    assert actions == {"aws:executeScript"} and document_bytes(large) <= 64 * 1024
    batches = [s["inputs"]["InputPayload"]["Parameters"] for s in large["mainSteps"][:-1]]
    assert [len(b) for b in batches] == [100] * 5 and {s["inputs"]["Script"] for s in large["mainSteps"][:-1]} == {guard.PUT_SCRIPT}


def test_a_500_flag_document_with_longer_parameter_names_fits(tmp_path):
    """A compact document lists each flag twice (its write, its check): as [parameter, value] and [flag,
    parameter, value], not mappings, 500 flags under a 26-character prefix fit (as mappings they did not)."""
    plan = load_plan(str(plan_file(tmp_path, 500, prefix="/cutover/orders-prod/flags")))
    doc = guard.build_document(plan, ACCOUNT)
    assert document_bytes(doc) <= 64 * 1024, document_bytes(doc)
    assert [(w["key"], w["value"]) for w in guard.document_writes(doc)[:-1]] == program.writes(program.steps(plan))
    checked = doc["mainSteps"][-1]["inputs"]["InputPayload"]["Flags"]
    assert checked[0] == ["f0000", "/cutover/orders-prod/flags/f0000", "xxx"] and len(checked) == 500


def test_guard_refuses_a_document_over_64_kb(tmp_path):
    """Long rollback values grow the document (each value is in it twice) and not the policy."""
    size = lambda n: document_bytes(guard.build_document(load_plan(str(plan_file(tmp_path, n, value_len=1500))), ACCOUNT))  # noqa: E731
    over = first_over(size, 64 * 1024)
    guard.check_plan(load_plan(str(plan_file(tmp_path, over - 1, value_len=1500))))
    with pytest.raises(UsageError, match=r"rollback document would be [\d,]+ bytes, over the 65,536"):
        guard.check_plan(load_plan(str(plan_file(tmp_path, over, value_len=1500))))


def test_a_500_flag_guard_is_within_every_limit_and_lints_clean(tmp_path):
    from test_iam import justified, parliament_findings

    plan = load_plan(str(plan_file(tmp_path, 500)))
    guard.check_plan(plan)
    role, events = guard.role_specs(plan, ACCOUNT)
    assert 1 < len(role.managed) <= 10 and all(iam_chars(d) <= 6_144 for d in role.managed.values())
    assert events.managed == {} and iam_chars(events.policy) <= 10_240
    assert document_bytes(guard.build_document(plan, ACCOUNT)) <= 64 * 1024
    operator = {st["Sid"]: st for st in guard.operator_policy(plan, ACCOUNT)["Statement"]}
    assert operator["ReadGuardRolePolicies"]["Resource"] == [f"arn:aws:iam::{ACCOUNT}:policy/{name}" for name in role.managed]
    for doc in (*role.managed.values(), events.policy):
        assert [f for f in parliament_findings(doc) if not justified(f, doc)] == []


def test_a_500_flag_guard_bootstraps_arms_and_rolls_back_on_the_emulator(tmp_path, emulator, aws_env):
    """`guard bootstrap`'s template (its managed policies attached, as CloudFormation would), `guard arm`,
    then the alarm: the sandbox runs the armed document as Automation would, every flag is restored in
    order and the record says rolled back; `guard status` finds the roles and document as the plan wants."""
    from cutover.adapters.aws import GuardResources
    from cutover.core.state import StateStore
    from cutover.sandbox.emulator import seed
    from cutover.sandbox.guard import GuardPlayer, bootstrap_roles
    from cutover.sandbox.seed import EmulatorSeeder
    from cutover.adapters.aws import Clients, SsmParameterStore, make_session

    path = plan_file(tmp_path, 500)
    plan = load_plan(str(path))
    seed(plan, emulator.endpoint)
    cli = lambda *argv: CliRunner().invoke(app, ["--plan", str(path), "--evidence-dir", str(tmp_path / "ev"), *argv])  # noqa: E731
    template = cli("guard", "bootstrap")
    assert template.exit_code == 0, template.output
    assert sum(r["Type"] == "AWS::IAM::ManagedPolicy" for r in json.loads(template.stdout)["Resources"].values()) > 1
    bootstrap_roles(plan, emulator.endpoint)
    armed = cli("guard", "arm", "--yes")
    assert armed.exit_code == 0, armed.output
    stored = GuardResources.connect(plan.region, None, read_only=True).get_document(guard.names(plan).document)
    assert len(stored["content"].encode()) <= 64 * 1024
    status = cli("guard", "status", "--json")
    assert status.exit_code == 0 and json.loads(status.stdout)["state"] == "armed", status.output

    aws = EmulatorSeeder(emulator.endpoint, plan.region)
    for f in plan.ssm_flags:
        aws.put_parameter(f.parameter, "on")
    execution = GuardPlayer(plan, emulator.endpoint, lambda _: None).deliver("edge-errors", "ALARM", "OK", "test", None)
    assert execution is not None and execution.status == "Success", execution.line()
    # Widened by hand (a policy that is not the guard's attached to its role): status says so, unread.
    iam_admin = Clients(make_session(plan.region, None, False))("iam")
    extra = iam_admin.create_policy(PolicyName="widened", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ssm:*", "Resource": "*"}]}))["Policy"]["Arn"]
    iam_admin.attach_role_policy(RoleName=guard.names(plan).automation_role, PolicyArn=extra)
    drift = cli("guard", "status", "--json")
    assert json.loads(drift.stdout)["state"] == "stale" and "extra managed policies: widened" in drift.stdout, drift.output
    store = SsmParameterStore(Clients(make_session(plan.region, None, True), endpoint_url=emulator.endpoint))
    assert {f.parameter: "xxx" for f in plan.ssm_flags} == {k: p.value for k, p in store.get_many([f.parameter for f in plan.ssm_flags]).items()}
    assert StateStore(plan, store).read().record.phase == "rolled_back"


def test_guard_bootstrap_and_arm_refuse_before_any_aws_call(tmp_path, emulator, aws_env):
    path = plan_file(tmp_path, 1200)  # over 64 KB even compact, and over 10 managed policies
    for argv in (["guard", "bootstrap"], ["guard", "arm", "--yes"]):
        r = CliRunner().invoke(app, ["--plan", str(path), "--evidence-dir", str(tmp_path / "ev"), *argv])
        assert r.exit_code == 2, r.output
        assert "too many for one guard" in r.stderr and "split the flags across plans" in r.stderr
    assert emulator.recorded_requests() == []


def test_the_batch_step_attempts_every_flag_and_fails_naming_the_ones_not_written(aws_env):
    """A refused write (here a name under the /aws prefix SSM reserves) does not stop the flags after it in the batch."""
    from cutover.adapters.aws import Clients, SsmParameterStore, make_session

    namespace: dict = {}
    exec(compile(guard.PUT_SCRIPT, "<put_parameters>", "exec"), namespace)  # noqa: S102 - as Automation runs it
    batch = [["/edge/a", "1"], ["/aws/edge-b", "2"], ["/edge/c", "3", "SecureString"]]
    with pytest.raises(RuntimeError, match=r"^1 of 3 flag\(s\) not written: /aws/edge-b \(\w+\)$"):
        namespace["handler"]({"Parameters": batch}, {})
    store = SsmParameterStore(Clients(make_session("us-east-2", None, True)))
    got = store.get_many(["/edge/a", "/edge/c"])
    assert (got["/edge/a"].value, got["/edge/c"].value, got["/edge/c"].type) == ("1", "3", "SecureString")
    assert namespace["handler"]({"Parameters": batch[:1]}, {}) == {"Written": 1}


def test_the_last_step_of_a_compact_document_names_a_flag_still_live(aws_env):
    """Compact entries ([flag, parameter, value] + "SecureString") are checked as mappings are: a flag not at
    its value is named "flag (parameter)", the record says unfinished, and the step fails."""
    from cutover.adapters.aws import Clients, SsmParameterStore, make_session

    store = SsmParameterStore(Clients(make_session("us-east-2", None, False)))
    store.put("/edge/ok", "off")
    store.put("/edge/secret", "s3", secure=True)
    store.put("/edge/live", "on")
    namespace: dict = {}
    exec(compile(guard.VERIFY_SCRIPT, "<verify_and_record>", "exec"), namespace)  # noqa: S102 - as Automation runs it
    record = {"phase": "rolled_back", "status": "stable", "reason": "auto-rollback by guard", "plan": "edge",
              "plan_digest": "0" * 64, "run_id": "exec-1"}
    flags = [["ok", "/edge/ok", "off"], ["secret", "/edge/secret", "s3", "SecureString"], ["live", "/edge/live", "off"]]
    events = {"StateParameter": "/edge/state", "Record": record, "Flags": flags, "Topic": "", "Alarm": "edge-errors"}
    with pytest.raises(RuntimeError, match=r"1 flag\(s\) still live: live \(/edge/live\);"):
        namespace["handler"](events, {})
    assert "UNFINISHED, still live: live (/edge/live)" in store.get_many(["/edge/state"])["/edge/state"].value
    store.put("/edge/live", "off")
    assert namespace["handler"](events, {})["Restored"] == 3
