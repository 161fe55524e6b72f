"""`cutover runbook`: rendered from the plan, deterministic, never showing a sensitive value; `--check`
tells a stale committed runbook from a current one and writes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.core import machine
from cutover.compile import runbook
from cutover.cli.app import app
from cutover.plan.load import load_plan
from cutover.redact import HIDDEN, sensitive_values

ROOT = Path(__file__).resolve().parents[2]
REPO_PLAN = ROOT / "phases.yaml"
E2E_PLAN = ROOT / "tests" / "plans" / "e2e.yaml"
EVERY_CHECK = ROOT / "tests" / "plans" / "every_check.yaml"
COMMITTED = ROOT / "runbooks" / "order-status-prod.md"
PLANS = [REPO_PLAN, E2E_PLAN, EVERY_CHECK, ROOT / "tests" / "plans" / "minimal.yaml"]


# How the rollback table says where a flag lives, by kind.
LIVES = {
    "ssm": lambda f: f"SSM parameter `{f.parameter}`",
    "lambda": lambda f: f"Lambda `{f.target.function_name}`, variable `{f.target.variable}`",
}


def section(text: str, heading: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    level = heading.split(" ")[0]
    start = text.index(heading + "\n")
    stop = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(text, start + len(heading))
    return text[start: stop.start() if stop else len(text)]


# --- content -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_render_is_deterministic_and_has_no_timestamp(path, tmp_path):
    plan = load_plan(path)
    text = runbook.render(plan)
    assert runbook.render(load_plan(path)) == text
    assert not re.search(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}", text)
    # The same file elsewhere renders the same (the runbook does not depend on where it was made).
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    if path.name == "phases.yaml":
        assert runbook.render(load_plan(copy)) == text


def test_render_does_not_depend_on_what_the_process_redacted_before():
    from cutover.redact import REDACTOR

    before = runbook.render(load_plan(REPO_PLAN))
    REDACTOR.register("automated replies")  # as a gate registers a secret it read
    assert runbook.render(load_plan(REPO_PLAN)) == before


def test_a_sensitive_value_quoted_in_free_text_is_hidden_too():
    from cutover.plan.load import parse_plan

    text = E2E_PLAN.read_text().replace('rollback: "safe"', 'rollback: "safe"\n    description: canary@example.com only')
    md = runbook.render(parse_plan(text, "e2e.yaml"))
    assert "canary@example.com" not in md and HIDDEN in md


def test_rollback_section_comes_first_with_the_command_and_values_in_order():
    plan = load_plan(REPO_PLAN)
    text = runbook.render(plan)
    headings = re.findall(r"^## .*", text, re.M)
    assert headings[:3] == ["## Roll back (read this first)", "## Before you start", "## Phases"]
    rb = section(text, "## Roll back (read this first)")
    assert '```sh\ncutover rollback --yes --reason "what happened"\n```' in rb
    rows = re.findall(r"^\| (\d+) \| (\w+) \| ([^|]+) \| `([^`]+)`", rb, re.M)
    assert [(int(n), name, where) for n, name, where, _ in rows] == [
        (i, f.name, LIVES[f.kind](f)) for i, f in enumerate(plan.flags, 1)]
    restored = {name: value for _, name, _, value in rows}
    assert restored["automation_enabled"] == "false" and restored["safe_mode"] == "true"
    assert restored["outbound_allowlist_emails"] == "none"  # a public value of the sensitive flag
    assert "preempts" in rb and "exits 3" in rb and "unlock" in rb  # what happens when someone holds the lock
    assert "```sh\ncutover status --check\n```" in rb
    assert 'cutover rollback --to PHASE --yes --reason "..."' in rb and "`shadow`, `canary`" in rb


# --- flags of both kinds: where they live, and the rollback by hand ------------------------------------------
MANUAL = "### If `cutover` itself cannot run"


def manual(text: str) -> str:
    return section(text, MANUAL)


def sh_lines(text: str) -> list[str]:
    """Every line of every sh code block, in order."""
    return [line for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()]


def test_the_rollback_table_names_the_ssm_parameter_or_the_function_and_variable():
    plan = load_plan(REPO_PLAN)
    assert {f.kind for f in plan.flags} == {"ssm", "lambda"}
    rb = section(runbook.render(plan), "## Roll back (read this first)")
    assert "| # | flag | where it lives | restored value | what it does |" in rb
    assert "| 1 | automation_enabled | SSM parameter `/rp-mw/prod/automation_enabled` | `false` |" in rb
    assert ("| 4 | mw_outbound_enabled | Lambda `rp-mw-prod-worker`, variable `MW_OUTBOUND_ENABLED` | `false` |"
            in rb)
    assert "one update of its environment" in rb and "Every other variable of the function is kept" in rb
    assert "names a Lambda function" in rb  # what an exit 4 on a function means


def test_ssm_only_plans_render_as_before_and_their_manual_rollback_is_put_parameter():
    minimal = load_plan(ROOT / "tests" / "plans" / "minimal.yaml")
    text = runbook.render(minimal)
    assert "| 1 | kill_switch | SSM parameter `/app/kill_switch` | `off` |" in text
    assert "Lambda" not in text and "lambda" not in text
    pager = 'export AWS_PAGER=""  # AWS CLI v2 would page every output (and can hang without a terminal)'
    assert sh_lines(manual(text)) == [  # the pager off first: a paging CLI hangs a 2 a.m. shell
        pager, f"aws ssm put-parameter --region {minimal.region} --name /app/kill_switch --value off --type String --overwrite"]

    every = load_plan(EVERY_CHECK)  # `cohort` is sensitive and secure, and its rollback value "none" is public
    lines = sh_lines(manual(runbook.render(every)))
    put = f"aws ssm put-parameter --region {every.region} --name"
    assert lines[0] == pager
    assert lines[1] == f"{put} /app/mode --value safe --type String --overwrite"
    assert lines[2] == f"{put} /app/cohort --value none --type SecureString --overwrite"


# Flags of both kinds interleaved in rollback order, two variables of one function apart, a second function,
# and sensitive values long enough to be hidden wherever they would appear.
MIXED = """\
version: 1
name: mixed
region: us-east-2
flags:
  kill: {parameter: /mixed/kill, rollback: "off"}
  outbound:
    lambda: {function: mixed-worker, variable: MIXED_OUTBOUND}
    rollback: "off"
  mode: {parameter: /mixed/mode, rollback: "safe"}
  allow: {parameter: /mixed/allow, rollback: "nobody-allowed-zq81", sensitive: true, secure: true}
  cohort:
    lambda: {function: mixed-worker, variable: MIXED_COHORT}
    rollback: "cohort-token-zq81"
    sensitive: true
  other:
    lambda: {function: mixed-other, variable: OTHER_SWITCH}
    rollback: "off"
checks:
  quiet: {type: alarms, names: [mixed-errors]}
phases:
  - name: canary
    set: {kill: "on", outbound: "on", mode: "live", allow: "canary@example.com", cohort: "cohort@example.com", other: "on"}
    gates: [quiet]
"""


def mixed(**replace: str):
    from cutover.plan.load import parse_plan

    text = MIXED
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    return parse_plan(text, "mixed.yaml")


def test_the_manual_rollback_follows_rollback_order_with_one_step_per_function():
    plan = mixed()
    text = manual(runbook.render(plan))
    steps = re.findall(r"^\*\*Step (\d+): (.*?)\*\* \((.*?)\)", text, re.M)
    assert steps == [
        ("1", "SSM parameter", "`kill`"),
        ("2", "Lambda function `mixed-worker`", "`outbound`, `cohort`"),  # at the place of its first flag
        ("3", "SSM parameters, one command each, in this order", "`mode`, `allow`"),
        ("4", "Lambda function `mixed-other`", "`other`"),
    ]
    writes = [" ".join(line.split()[:3] + [line.split()[6]]) for line in sh_lines(text)
              if line.startswith(("aws ssm put-parameter", "aws lambda update-function-configuration"))]
    assert writes == ["aws ssm put-parameter /mixed/kill", "aws lambda update-function-configuration mixed-worker",
                      "aws ssm put-parameter /mixed/mode", "aws ssm put-parameter /mixed/allow",
                      "aws lambda update-function-configuration mixed-other"]


@pytest.mark.parametrize("which", ["phases.yaml", "mixed"])
def test_the_manual_lambda_update_reads_first_merges_and_writes_once_per_function(which):
    plan = load_plan(REPO_PLAN) if which == "phases.yaml" else mixed()
    text = manual(runbook.render(plan))
    lines = sh_lines(text)
    assert plan.functions
    for function in plan.functions:
        name = function.split(":function:")[-1]
        mine = [line for line in lines if f"--function-name {function} " in line + " "]
        updates = [i for i, line in enumerate(mine) if line.startswith("aws lambda update-function-configuration")]
        assert len(updates) == 1  # one update for the function, never one per variable
        update = mine[updates[0]]
        rev, read = mine[0], mine[1]
        assert rev.startswith("REV=$(aws lambda get-function-configuration") and "--query RevisionId --output text" in rev
        assert read.startswith("aws lambda get-function-configuration") and updates[0] > 1  # read before write
        assert f"--query '{{Variables: Environment.Variables}}' --output json > {name}-env.json" in read
        assert f"--environment file://{name}-env.json" in update and '--revision-id "${REV:?' in update
        assert "Variables=" not in update  # the whole merged environment from the file, never an inline map
        assert "--query LastUpdateStatus --output text" in update  # the environment is not echoed
        assert mine[updates[0] + 1] == f"aws lambda wait function-updated --region {plan.region} --function-name {function}"
        assert lines.index(f"rm {name}-env.json") > lines.index(update)  # the file holds every variable: removed
        # The edit table names every variable of the function, and nothing else.
        block = text[text.index(f"Lambda function `{name}`"):]
        variables = re.findall(r"^\| `(\w+)` \| ", block.split("If a command fails")[0], re.M)
        assert variables == [f.target.variable for f in plan.flags if f.kind == "lambda" and f.target.function == function]
    # In words: an update replaces the whole environment, so sending only the flags would wipe the rest.
    assert "replaces the function's WHOLE environment" in text and "delete every other variable" in text
    assert "never one per variable" in text and "change nothing else" in text
    assert "PreconditionFailedException" in text and "start again at step a" in text.lower()
    assert 'If the file says `"Variables": null`, STOP' in text  # nothing read: writing would wipe the rest


def test_the_manual_read_gives_the_shape_the_update_takes():
    import jmespath

    config = {"RevisionId": "r-1", "Environment": {"Variables": {"OTHER": "kept", "MIXED_OUTBOUND": "on",
                                                                 "MIXED_COHORT": "x"}}}
    lines = sh_lines(manual(runbook.render(mixed())))
    read = next(line for line in lines if "Environment.Variables}" in line)
    query = re.search(r"--query '([^']+)'", read).group(1)
    assert jmespath.search(query, config) == {"Variables": config["Environment"]["Variables"]}
    check = next(line for line in lines if "Environment.Variables.{" in line)
    assert jmespath.search(re.search(r"--query '([^']+)'", check).group(1), config) == {"MIXED_OUTBOUND": "on"}


def test_sensitive_lambda_values_are_never_in_the_runbook():
    plan = mixed()
    assert plan.flag("cohort").kind == "lambda" and plan.flag("cohort").sensitive
    text = runbook.render(plan)
    for value in ("cohort-token-zq81", "cohort@example.com", "nobody-allowed-zq81", "canary@example.com"):
        assert value not in text
    assert "| 5 | cohort | Lambda `mixed-worker`, variable `MIXED_COHORT` | `" + HIDDEN + "` " in text
    assert f"| cohort | `{HIDDEN}` | `{HIDDEN}` |" in text
    hand = manual(text)
    assert "| `MIXED_COHORT` | the `rollback:` value of `cohort` in `mixed.yaml` (sensitive: not shown here) |" in hand
    check = next(line for line in sh_lines(hand) if "--function-name mixed-worker --query 'Environment.Variables.{" in line)
    assert "MIXED_OUTBOUND" in check and "MIXED_COHORT" not in check  # the check prints no sensitive variable
    put = next(line for line in sh_lines(hand) if "--name /mixed/allow" in line)  # a sensitive SSM flag
    assert '--value "${ROLLBACK_ALLOW:?' in put and put.endswith("--type SecureString --overwrite")


def test_a_value_the_redactor_would_mask_is_not_typed_into_a_manual_command():
    hand = manual(runbook.render(mixed(**{'MIXED_OUTBOUND}\n    rollback: "off"': 'MIXED_OUTBOUND}\n    rollback: "ops@example.com"'})))
    assert "@" not in hand and "| `MIXED_OUTBOUND` | the `rollback:` value of `outbound` in `mixed.yaml` (not shown here) |" in hand


def test_ssm_values_the_aws_cli_would_misread_are_passed_literally():
    lines = sh_lines(manual(runbook.render(mixed(**{'/mixed/kill, rollback: "off"': '/mixed/kill, rollback: "-1"',
                                                    '/mixed/mode, rollback: "safe"': '/mixed/mode, rollback: "https://x.test/"'}))))
    assert "aws ssm put-parameter --region us-east-2 --name /mixed/kill --value=-1 --type String --overwrite" in lines
    assert ("aws ssm put-parameter --region us-east-2 --cli-input-json '{\"Name\": \"/mixed/mode\", \"Value\": "
            "\"https://x.test/\", \"Type\": \"String\", \"Overwrite\": true}'") in lines  # not fetched from the URL


def test_a_function_named_by_arn_is_called_by_its_arn_and_shown_by_its_name():
    arn = "arn:aws:lambda:us-east-2:123456789012:function:mixed-worker"
    plan = mixed(**{"function: mixed-worker": f"function: '{arn}'"})
    text = runbook.render(plan)
    assert "| 2 | outbound | Lambda `mixed-worker`, variable `MIXED_OUTBOUND` |" in text
    lines = [line for line in sh_lines(manual(text)) if "mixed-worker" in line]
    assert sum(line.startswith("aws lambda update-function-configuration") for line in lines) == 1
    assert all(f"--function-name {arn} " in line + " " for line in lines if "aws lambda" in line)
    assert "rm mixed-worker-env.json" in lines
    pre = section(text, "## Before you start")
    assert "- **Lambda functions** whose environment holds flags: `mixed-worker`, `mixed-other`." in pre


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_sensitive_values_are_hidden_and_no_hash_of_them_is_shown(path):
    plan = load_plan(path)
    text = runbook.render(plan)
    values = sensitive_values(plan)
    rows = [line for f in plan.flags if f.sensitive for line in text.splitlines() if f"| {f.name} |" in line]
    assert rows or not values
    for value in values:
        assert not [row for row in rows if f"`{value}`" in row]  # the sensitive flag's rows show no value...
        if len(value) >= 6:  # ...and it is nowhere ("none" or "*" are also plain words, globs, other flags' values)
            assert value not in text
        assert hashlib.sha256(value.encode()).hexdigest()[:8] not in text
    assert HIDDEN in text or not values
    assert "@" not in text  # no email, whoever declared it


def test_each_phase_shows_its_flags_from_and_to_relative_to_the_state_before():
    plan = load_plan(E2E_PLAN)
    text = runbook.render(plan)
    fp = lambda value: HIDDEN  # noqa: E731 - every value of `allow` is hidden
    shadow, canary, full = (section(text, f"### Phase {i}: {n}") for i, n in enumerate(plan.phase_names))
    assert "**Flags** (`pending` -> `shadow`)" in shadow
    assert "| mode | `safe` | `shadow` |" in shadow and "| kill |" not in shadow
    assert "**Flags** (`shadow` -> `canary`)" in canary
    assert "| kill | `off` | `on` |" in canary and "| mode | `shadow` | `live` |" in canary
    assert f"| allow | `{fp('none')}` | `{fp('canary@example.com')}` |" in canary
    assert re.findall(r"^\| (\w+) \|", full, re.M) == ["flag", *(f.name for f in plan.flags if f.name in plan.phase("full").set)]
    assert f"| allow | `{fp('canary@example.com')}` | `{fp('*')}` |" in full


def test_a_phase_that_changes_nothing_says_so():
    shadow = section(runbook.render(load_plan(REPO_PLAN)), "### Phase 0: shadow")
    assert "No flag changes: every flag keeps its rollback value." in shadow


def test_gates_are_described_in_one_line_each():
    plan = load_plan(EVERY_CHECK)
    d = {name: runbook.describe_check(c) for name, c in plan.checks.items()}
    assert d["env_ok"] == "your shell has `APP_ENV=prod`, `DRY=true`, `HOME` set"
    assert d["secrets_ok"].startswith("secrets `app/db`, ") and d["secrets_ok"].endswith("(not read)")
    assert d["http_ok"] == "HEAD `${API:-https://api.example.com}/health` answers 200 or 204, with header `Authorization`"
    assert d["graphql_ok"] == 'GraphQL query to `https://api.example.com/graphql` answers 200 with no "errors"'
    assert d["fresh"] == "a log event containing `refresh ok` in `/aws/lambda/app-refresh` within the last 1d"
    assert d["quiet_logs"] == 'no log event matching `{"code": 500, "level": "ERROR"}` in `/aws/lambda/app` in the last 45m'
    assert d["report"].startswith("`python scripts/report.py --days 7` exits 0 within 2m")
    assert d["alarms_ok"] == ("alarms `app-errors` and every alarm named `app-*` OK and quiet for 10m; "
                              "no data (INSUFFICIENT_DATA) counts as OK")
    for line in d.values():
        assert "\n" not in line

    repo = load_plan(REPO_PLAN)
    alarms = runbook.describe_check(repo.checks["alarms_quiet"])
    assert alarms.startswith("alarms `rp-mw-prod-worker-error-rate`, ") and "OK and quiet for 15m" in alarms
    assert "no data (INSUFFICIENT_DATA) fails" in alarms


def test_phase_commands_bake_approval_and_what_to_watch():
    plan = load_plan(REPO_PLAN)
    text = runbook.render(plan)
    shadow, canary, full = (section(text, f"### Phase {i}: {n}") for i, n in enumerate(plan.phase_names))
    for sec, name in ((shadow, "shadow"), (canary, "canary"), (full, "full")):
        assert f"cutover preflight --phase {name}" in sec and "cutover watch --auto-rollback" in sec
        for gate in plan.phase(name).gates:
            assert f"- `{gate}` ({plan.checks[gate].type}): " in sec
        for alarm in plan.checks["alarms_quiet"].names:
            assert f"`{alarm}`" in sec.split("**Watch**")[1]
    assert 'cutover advance --dry-run --approve --reason "' in canary and 'cutover advance --approve --reason "' in canary
    assert "**Approval**: required" in canary and "--approve" not in shadow + full
    assert "hold 30m" in shadow and "hold 1h" in canary and "hold 2h" in full
    assert "phase must be pending or rolled_back" in shadow and "phase must be shadow" in canary
    assert "the next advance (canary) may start" in shadow and "the cutover is complete" in full


TOPIC = "arn:aws:sns:us-east-2:123456789012:cutover-e2e"


def e2e_with_operator_options():
    """The e2e plan plus a notification topic, restricted four-eyes approval and auto-rollback."""
    from cutover.plan.load import parse_plan

    text = E2E_PLAN.read_text().replace("flags:\n", f"notify:\n  sns_topic_arn: {TOPIC}\nflags:\n", 1)
    text = text.replace("    approval: true\n", "    approval: true\n    approvers: ['arn:aws:sts::123456789012:assumed-role/release-*/*']\n"
                        "    separate_approver: true\n    auto_rollback: true\n")
    return parse_plan(text, "e2e.yaml")


def test_approvers_four_eyes_auto_rollback_and_notifications():
    plan = e2e_with_operator_options()
    text = runbook.render(plan)
    canary = section(text, "### Phase 1: canary")
    assert "Only an identity matching `arn:aws:sts::123456789012:assumed-role/release-*/*` may approve." in canary
    assert "The approver must not be whoever entered `shadow` (four eyes)." in canary
    assert 'advance --dry-run --approve --reason "CHANGE-TICKET"' in canary
    assert "rolls back on its own" in canary and "rolls back on its own" not in section(text, "### Phase 0: shadow")
    assert f"SNS topic `{TOPIC}`" in section(text, "## Before you start")


def test_prerequisites_name_what_the_operator_needs():
    pre = section(runbook.render(load_plan(REPO_PLAN)), "## Before you start")
    assert "`cutover iam-policy --account ACCOUNT`" in pre and "`cutover iam-policy --read-only --account ACCOUNT`" in pre
    assert "`RICHPANEL_READ_ONLY=true`" in pre and "`SHOPIFY_SHOP_DOMAIN` set" in pre
    assert pre.count("SHOPIFY_SHOP_DOMAIN") == 1  # required by the env check and a URL: listed once
    assert "`RICHPANEL_API_BASE` optional (default `https://api.richpanel.com`)" in pre
    assert "`rp-mw/prod/shopify/admin_api_token`" in pre and "`rp-mw-prod-openai-intent-failures`" in pre
    assert "`/aws/lambda/rp-mw-prod-worker`" in pre
    assert "- **Lambda functions** whose environment holds flags: `rp-mw-prod-worker`." in pre


def test_the_state_diagram_is_the_machines():
    plan = load_plan(REPO_PLAN)
    block = re.search(r"```mermaid\n(.*?)```", runbook.render(plan), re.S)
    assert block and block.group(1) == machine.mermaid(plan)


def test_exit_codes_and_the_digest_at_the_end():
    plan = load_plan(REPO_PLAN)
    text = runbook.render(plan)
    codes = re.findall(r"^\| (\d) \| ", section(text, "## Exit codes"), re.M)
    assert codes == [str(c) for c in range(8)]
    assert re.findall(r"^##+ .*", text, re.M)[-1] == "## Plan"
    assert plan.digest in section(text, "## Plan")
    assert text.endswith("render it again.\n")


def test_commands_name_a_plan_that_is_not_phases_yaml():
    text = runbook.render(load_plan(E2E_PLAN))
    assert f"cutover --plan {E2E_PLAN.as_posix()} rollback --yes" in text


def test_the_committed_runbook_is_current():
    assert COMMITTED.read_text(encoding="utf-8") == runbook.render(load_plan(REPO_PLAN)), (
        "runbooks/order-status-prod.md is stale: cutover runbook --out runbooks/order-status-prod.md")


# --- the command ------------------------------------------------------------------------------------------
def invoke(*args: str, plan: Path = REPO_PLAN):
    result = CliRunner().invoke(app, ["--plan", str(plan), *args])
    assert "Traceback" not in result.output
    return result


def test_cli_prints_the_runbook():
    r = invoke("runbook", "--out", "-")
    assert r.exit_code == 0 and r.stdout == runbook.render(load_plan(REPO_PLAN))


def test_cli_writes_then_checks(tmp_path):
    out = tmp_path / "runbooks" / "order-status-prod.md"
    r = invoke("runbook", "--out", str(out))
    assert r.exit_code == 0 and "wrote" in r.stdout
    assert out.read_bytes() == runbook.render(load_plan(REPO_PLAN)).encode()
    stamp = out.stat().st_mtime_ns
    again = invoke("runbook", "--out", str(out))
    assert again.exit_code == 0 and "unchanged" in again.stdout and out.stat().st_mtime_ns == stamp

    ok = invoke("runbook", "--out", str(out), "--check")
    assert ok.exit_code == 0 and "is current" in ok.stdout and out.stat().st_mtime_ns == stamp


def test_cli_check_on_a_stale_file_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "rb.md"
    stale = runbook.render(load_plan(REPO_PLAN)).replace("hold 30m", "hold 5m")
    out.write_text(stale, encoding="utf-8")
    r = invoke("runbook", "--out", str(out), "--check")
    assert r.exit_code == 1
    assert f"{out} is stale" in r.stdout and "first at line" in r.stdout
    assert "-- **Bake**: hold 5m" in r.stdout and "+- **Bake**: hold 30m" in r.stdout  # the diff shows what changed
    assert f"re-run without --check to rewrite it, then commit it: cutover runbook --out {out}" in r.stdout
    assert out.read_text(encoding="utf-8") == stale


def test_cli_check_on_a_missing_file_exits_1_and_creates_nothing(tmp_path):
    out = tmp_path / "none.md"
    r = invoke("runbook", "--out", str(out), "--check")
    assert r.exit_code == 1 and "does not exist" in r.stdout and not out.exists()


def test_cli_check_needs_a_file():
    r = invoke("runbook", "--out", "-", "--check")
    assert r.exit_code == 2 and "--out" in r.stderr


def test_cli_json(tmp_path):
    import json

    r = CliRunner().invoke(app, ["--plan", str(REPO_PLAN), "--json", "runbook", "--out", str(tmp_path / "x.md"), "--check"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["exit_code"] == 1 and doc["current"] is False
    r = CliRunner().invoke(app, ["--plan", str(REPO_PLAN), "--json", "runbook", "--out", "-"])
    markdown = json.loads(r.stdout)["markdown"]  # through the usual --json path (and its redactor)
    assert r.exit_code == 0 and markdown.startswith("# Runbook: order-status-prod\n")
    assert load_plan(REPO_PLAN).digest in markdown


def test_cli_invalid_plan_is_exit_2(tmp_path):
    broken = tmp_path / "phases.yaml"
    broken.write_text("version: 1\n")
    r = invoke("runbook", plan=broken)
    assert r.exit_code == 2 and "phases.yaml:" in r.stderr


def test_runbook_needs_no_boto3():
    code = ("import sys; from typer.testing import CliRunner; from cutover.cli.app import app; "
            f"r = CliRunner().invoke(app, ['--plan', {str(REPO_PLAN)!r}, 'runbook', '--check']); "
            "print(r.exit_code, 'boto3' in sys.modules, 'botocore' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["0", "False", "False"], p.stderr


def test_the_rollback_by_hand_needs_no_cutover_to_finish():
    """Issue 15 item 15: where to run from, the pager off, how to tell the guard fired, and how the state
    record catches up after a rollback by hand."""
    text = runbook.render(load_plan(REPO_PLAN))
    box = text.split("### If `cutover` itself cannot run", 1)[0]
    assert "from the folder that holds `phases.yaml`" in box
    assert 'export AWS_PAGER=""' in manual(text)
    assert "finds the flags restored (writing none of them" in manual(text)
    assert "Did it fire? `cutover history` shows a change by `guard`" in text
    assert "describe-automation-executions --region us-east-2 --filters Key=DocumentNamePrefix,Values=cutover-order-status-prod-rollback" in text
    assert "run `cutover runbook` again" in text and "--out FILE" not in text


@pytest.mark.parametrize("hidden_set", [True, False])
def test_step_b_is_a_command_that_sets_the_variables_and_keeps_the_others(tmp_path, hidden_set):
    """Issue 15 item 15: no hand-edited JSON at 2 a.m. The runbook's own step b, run as written."""
    plan = mixed()
    text = manual(runbook.render(plan))
    block = text[text.index("Lambda function `mixed-worker`"):].split("If a command fails")[0]
    script = re.search(r"```sh\n([^`]*?python3 - (\S+) <<'PY'\n[^`]*?\nPY)\n```", block)
    assert script, block
    env_file = tmp_path / script.group(2)
    env_file.write_text(json.dumps({"Variables": {"LOG_LEVEL": "INFO", "MIXED_OUTBOUND": "on", "MIXED_COHORT": "beta"}}))
    hidden = [f for f in plan.flags if f.kind == "lambda" and f.target.function == "mixed-worker" and f.sensitive]
    env = {"PATH": os.environ["PATH"], **({runbook._shell_var(f): f.rollback for f in hidden} if hidden_set else {})}
    p = subprocess.run(["bash", "-c", script.group(1)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    got = json.loads(env_file.read_text())["Variables"]
    if hidden_set or not hidden:
        assert p.returncode == 0, p.stderr
        assert got == {"LOG_LEVEL": "INFO", **{f.target.variable: f.rollback for f in plan.flags
                                               if f.kind == "lambda" and f.target.function == "mixed-worker"}}
    else:  # a value the runbook may not show, not given: it stops and changes nothing
        assert p.returncode != 0 and "set ROLLBACK_" in p.stderr
        assert got == {"LOG_LEVEL": "INFO", "MIXED_OUTBOUND": "on", "MIXED_COHORT": "beta"}
