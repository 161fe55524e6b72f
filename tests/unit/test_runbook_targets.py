"""`cutover runbook` of a plan with targets: the manual rollback is one section per target, later waves
first (the order `cutover rollback` restores them), each in its own region, reached as its role (the
external id as the plan's ${VAR}, never its value), ending with the command that rolls back that target."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from cutover.cli.app import app
from cutover.compile import runbook
from cutover.plan.load import load_plan

ROOT = Path(__file__).resolve().parents[2]
WAVES = ROOT / "tests" / "plans" / "waves.yaml"
CLI = f"cutover --plan {WAVES.as_posix()}"


def target_sections(text: str) -> dict[str, str]:
    """Each target's section of the manual rollback, by name, in the order they appear."""
    heads = list(re.finditer(r"^#### Target `([^`]+)`.*$", text, re.M))
    end = text.index("That restores the flags")
    return {m[1]: text[m.start(): heads[i + 1].start() if i + 1 < len(heads) else end] for i, m in enumerate(heads)}


def test_every_target_has_its_section_later_waves_first():
    sections = target_sections(runbook.render(load_plan(WAVES)))
    assert list(sections) == ["usw2", "euw1", "use2"]  # wave rest (as written), then wave pilot


def test_each_section_names_the_target_and_acts_in_its_region_only():
    sections = target_sections(runbook.render(load_plan(WAVES)))
    for name, region, account in [("usw2", "us-west-2", "your own account"), ("euw1", "eu-west-1", "account `222222222222`"),
                                  ("use2", "us-east-2", "your own account")]:
        text = sections[name]
        assert text.splitlines()[0].startswith(f"#### Target `{name}`: region `{region}`, {account}")
        regions = set(re.findall(r"--region (\S+)", text))
        assert regions == {region}, (name, regions)
        assert f"aws ssm put-parameter --region {region} --name /waves-demo/kill_switch --value off" in text
        assert f"{CLI} rollback --target {name} --yes" in text


def test_a_target_with_a_role_assumes_it_first_and_drops_it_after():
    text = target_sections(runbook.render(load_plan(WAVES)))["euw1"]
    assume = text.index("aws sts assume-role --region eu-west-1 --role-arn arn:aws:iam::222222222222:role/cutover-operator")
    assert assume < text.index("aws ssm put-parameter") < text.index("unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN")
    assert '--external-id "${CUTOVER_EXTERNAL_ID:?export CUTOVER_EXTERNAL_ID first' in text
    # The targets in the caller's own account assume nothing.
    for own in ("usw2", "use2"):
        assert "assume-role" not in target_sections(runbook.render(load_plan(WAVES)))[own]


def test_the_external_id_value_never_appears(monkeypatch):
    monkeypatch.setenv("CUTOVER_EXTERNAL_ID", "ext-secret-4711")
    text = runbook.render(load_plan(WAVES))
    assert "ext-secret-4711" not in text and "${CUTOVER_EXTERNAL_ID}" in text


def test_the_rollback_section_names_the_order():
    text = runbook.render(load_plan(WAVES))
    assert "It restores every target, later waves first (`usw2`, `euw1`, `use2`)" in text
    assert "rollback --to" not in text  # not built for targets
    assert "no alarms, so there is no guard to arm" in text  # (waves.yaml has no alarms)


def test_the_guard_is_armed_per_target_and_bootstrapped_once_per_account():
    guarded = ROOT / "tests" / "plans" / "waves_guard.yaml"
    text = runbook.render(load_plan(guarded))
    cli = f"cutover --plan {guarded.as_posix()}"
    assert "restores that target's" in text and f"{cli} guard arm --yes" in text
    assert f"{cli} guard bootstrap --target use2 > guard-roles.json   # the caller's account" in text
    assert f"{cli} guard bootstrap --target euw1 > guard-roles.json   # account 222222222222" in text
    assert "--target usw2 >" not in text  # usw2 shares use2's account, so its roles
    assert text.count("--stack-name cutover-waves-guard-guard-roles") == 2


def test_cli_writes_and_checks_a_targets_runbook(tmp_path):
    out = tmp_path / "waves.md"
    wrote = CliRunner().invoke(app, ["--plan", str(WAVES), "runbook", "--out", str(out)])
    assert wrote.exit_code == 0, wrote.output
    assert out.read_text(encoding="utf-8") == runbook.render(load_plan(WAVES))
    checked = CliRunner().invoke(app, ["--plan", str(WAVES), "runbook", "--out", str(out), "--check"])
    assert checked.exit_code == 0 and "is current" in checked.stdout
