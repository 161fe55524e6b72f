"""`cutover runbook`: rendered from the plan, deterministic, never showing a sensitive value; `--check`
tells a stale committed runbook from a current one and writes nothing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover import machine, runbook
from cutover.cli import app
from cutover.plan import load_plan
from cutover.redact import fingerprint, sensitive_values

ROOT = Path(__file__).resolve().parent.parent
REPO_PLAN = ROOT / "phases.yaml"
E2E_PLAN = ROOT / "tests" / "plans" / "e2e.yaml"
EVERY_CHECK = ROOT / "tests" / "plans" / "every_check.yaml"
COMMITTED = ROOT / "runbooks" / "order-status-prod.md"
PLANS = [REPO_PLAN, E2E_PLAN, EVERY_CHECK, ROOT / "tests" / "plans" / "minimal.yaml"]


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


def test_a_sensitive_value_quoted_in_free_text_is_fingerprinted_too():
    from cutover.plan import parse_plan

    text = E2E_PLAN.read_text().replace('rollback: "safe"', 'rollback: "safe"\n    description: canary@example.com only')
    md = runbook.render(parse_plan(text, "e2e.yaml"))
    assert "canary@example.com" not in md and fingerprint("canary@example.com") in md


def test_rollback_section_comes_first_with_the_command_and_values_in_order():
    plan = load_plan(REPO_PLAN)
    text = runbook.render(plan)
    headings = re.findall(r"^##+ .*", text, re.M)
    assert headings[:3] == ["## Roll back (read this first)", "## Before you start", "## Phases"]
    rb = section(text, "## Roll back (read this first)")
    assert '```sh\ncutover rollback --yes --reason "what happened"\n```' in rb
    rows = re.findall(r"^\| (\d+) \| (\w+) \| `([^`]+)` \| `([^`]+)`", rb, re.M)
    assert [(int(n), name, param) for n, name, param, _ in rows] == [
        (i, f.name, f.parameter) for i, f in enumerate(plan.flags, 1)]
    restored = {name: value for _, name, _, value in rows}
    assert restored["automation_enabled"] == "false" and restored["safe_mode"] == "true"
    assert restored["outbound_allowlist_emails"] == fingerprint("none")
    assert "preempts" in rb and "exits 3" in rb and "unlock" in rb  # what happens when someone holds the lock
    assert "```sh\ncutover status --check\n```" in rb
    assert 'cutover rollback --to PHASE --yes --reason "..."' in rb and "`shadow`, `canary`" in rb


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_sensitive_values_appear_only_as_fingerprints(path):
    plan = load_plan(path)
    text = runbook.render(plan)
    values = sensitive_values(plan)
    rows = [line for f in plan.flags if f.sensitive for line in text.splitlines() if f"| {f.name} |" in line]
    assert rows or not values
    for value in values:
        assert not [row for row in rows if f"`{value}`" in row]  # the sensitive flag's rows show no value...
        if len(value) >= 6:  # ...and it is nowhere ("none" or "*" are also plain words, globs, other flags' values)
            assert value not in text
        assert fingerprint(value) in text
    assert "@" not in text  # no email, whoever declared it


def test_each_phase_shows_its_flags_from_and_to_relative_to_the_state_before():
    plan = load_plan(E2E_PLAN)
    text = runbook.render(plan)
    fp = fingerprint
    shadow, canary, full = (section(text, f"### Phase {i}: {n}") for i, n in enumerate(plan.phase_names))
    assert "**Flags** (`pending` -> `shadow`)" in shadow
    assert "| mode | `safe` | `shadow` |" in shadow and "| kill |" not in shadow
    assert "**Flags** (`shadow` -> `canary`)" in canary
    assert "| kill | `off` | `on` |" in canary and "| mode | `shadow` | `live` |" in canary
    assert f"| allow | `{fp('none')}` | `{fp('canary@example.com')}` |" in canary
    assert re.findall(r"^\| (\w+) \|", full, re.M) == ["flag", "allow"]
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
    from cutover.plan import parse_plan

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


def test_the_state_diagram_is_the_machines():
    plan = load_plan(REPO_PLAN)
    block = re.search(r"```mermaid\n(.*?)```", runbook.render(plan), re.S)
    assert block and block.group(1) == machine.mermaid(plan)


def test_exit_codes_and_the_digest_at_the_end():
    plan = load_plan(REPO_PLAN)
    text = runbook.render(plan)
    codes = re.findall(r"^\| (\d) \| ", section(text, "## Exit codes"), re.M)
    assert codes == [str(c) for c in range(7)]
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
    r = invoke("runbook")
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


def test_cli_check_needs_out():
    r = invoke("runbook", "--check")
    assert r.exit_code == 2 and "--out" in r.stderr


def test_cli_json(tmp_path):
    import json

    r = CliRunner().invoke(app, ["--plan", str(REPO_PLAN), "--json", "runbook", "--out", str(tmp_path / "x.md"), "--check"])
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["exit_code"] == 1 and doc["current"] is False
    r = CliRunner().invoke(app, ["--plan", str(REPO_PLAN), "--json", "runbook"])
    markdown = json.loads(r.stdout)["markdown"]  # through the usual --json path (and its redactor)
    assert r.exit_code == 0 and markdown.startswith("# Runbook: order-status-prod\n")
    assert load_plan(REPO_PLAN).digest in markdown


def test_cli_invalid_plan_is_exit_2(tmp_path):
    broken = tmp_path / "phases.yaml"
    broken.write_text("version: 1\n")
    r = invoke("runbook", plan=broken)
    assert r.exit_code == 2 and "phases.yaml:" in r.stderr


def test_runbook_needs_no_boto3():
    code = ("import sys; from typer.testing import CliRunner; from cutover.cli import app; "
            f"r = CliRunner().invoke(app, ['--plan', {str(REPO_PLAN)!r}, 'runbook']); "
            "print(r.exit_code, 'boto3' in sys.modules, 'botocore' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["0", "False", "False"], p.stderr
