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
from cutover.cli.app import app
from cutover.errors import UsageError
from cutover.plan.load import load_plan

ACCOUNT = "123456789012"


def plan_file(tmp_path: Path, n: int, value_len: int = 3) -> Path:
    """n SSM flags (rollback values of `value_len` characters), one alarm so a guard can be armed."""
    lines = ["version: 1", f"name: edge{n}", "region: us-east-2", "flags:"]
    for i in range(n):
        lines += [f"  f{i:04d}:", f"    parameter: /edge/f{i:04d}", f'    rollback: "{"x" * value_len}"']
    lines += ["checks:", "  quiet:", "    type: alarms", "    names: [edge-errors]", "phases:",
              "  - name: live", "    set: {" + ", ".join(f'f{i:04d}: "on"' for i in range(n)) + "}", "    gates: [quiet]"]
    path = tmp_path / f"edge{n}-{value_len}.yaml"
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


def test_guard_refuses_an_automation_role_policy_over_its_limit(tmp_path):
    size = lambda n: iam_chars(guard.automation_policy(load_plan(str(plan_file(tmp_path, n))), ACCOUNT))  # noqa: E731
    over = first_over(size, 10_240)
    guard.check_plan(load_plan(str(plan_file(tmp_path, over - 1))))
    with pytest.raises(UsageError, match=r"automation role's policy would be [\d,]+ characters, over the 10,240"):
        guard.check_plan(load_plan(str(plan_file(tmp_path, over))))


def test_guard_refuses_a_document_over_64_kb(tmp_path):
    """Long rollback values grow the document (each step holds its value) and not the policy."""
    def size(n):
        doc = guard.build_document(load_plan(str(plan_file(tmp_path, n, value_len=1500))), ACCOUNT)
        return len(yaml.safe_dump(doc, sort_keys=False, width=1000).encode())

    over = first_over(size, 64 * 1024)
    guard.check_plan(load_plan(str(plan_file(tmp_path, over - 1, value_len=1500))))
    with pytest.raises(UsageError, match=r"rollback document would be [\d,]+ bytes, over the 65,536"):
        guard.check_plan(load_plan(str(plan_file(tmp_path, over, value_len=1500))))


def test_guard_bootstrap_and_arm_refuse_before_any_aws_call(tmp_path, emulator, aws_env):
    path = plan_file(tmp_path, 400)
    for argv in (["guard", "bootstrap"], ["guard", "arm", "--yes"]):
        r = CliRunner().invoke(app, ["--plan", str(path), "--evidence-dir", str(tmp_path / "ev"), *argv])
        assert r.exit_code == 2, r.output
        assert "too many for one guard" in r.stderr and "split the flags across plans" in r.stderr
    assert emulator.recorded_requests() == []
