"""`advance --dry-run --out FILE` saves the exact decision; `advance --from FILE` applies it and refuses
(exit 3, nothing written) when the plan, the live flags or the state changed since (issue 15, "also
expected"). On the emulator."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.commands.saved import load
from cutover.errors import Blocked, ExitCode

ROOT = Path(__file__).resolve().parents[2]


def save_shadow(e2e, tmp_path) -> Path:
    path = tmp_path / "shadow.plan.json"
    out = orchestrator.advance(e2e(dry_run=True), save_to=path)
    assert out.exit_code == 0 and path.exists(), out.headline
    return path


def test_a_saved_advance_applies_exactly_what_was_previewed(e2e, tmp_path):
    path = save_shadow(e2e, tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    assert (doc["from"], doc["to"]) == ("pending", "shadow") and doc["basis"]["plan_digest"] == e2e.plan.digest
    from cutover.redact import is_public

    secret = [v for f in e2e.plan.flags if f.sensitive for v in (f.rollback, e2e.plan.values_for("shadow")[f.name])
              if not is_public(f, v)]
    assert all(v not in path.read_text() for v in secret)  # names, versions and shown values, never a secret
    out = orchestrator.advance(e2e(), saved=load(path))
    assert out.exit_code == 0, out.headline
    assert e2e.state().phase == "shadow"
    assert {k: v for k, v in e2e.live().items()} == {f.name: e2e.plan.values_for("shadow")[f.name] for f in e2e.plan.flags}


@pytest.mark.parametrize("change", ["flag", "state", "expired", "plan"])
def test_a_saved_advance_is_refused_when_something_changed(e2e, tmp_path, change):
    path = save_shadow(e2e, tmp_path)
    doc = load(path)
    if change == "flag":  # someone hand-edits a flag after the preview
        first = e2e.plan.ssm_flags[0]
        e2e.set_flags({first.name: "hand-edited"})
    elif change == "state":  # the cutover moved on (another operator advanced)
        assert orchestrator.advance(e2e()).exit_code == 0
    elif change == "expired":
        doc["expires_at"] = "2020-01-01T00:00:00Z"
    else:
        doc["basis"]["plan_digest"] = "0" * 64
    live, record = e2e.live(), e2e.state().record
    with pytest.raises(Blocked, match="the saved advance no longer applies") as caught:
        orchestrator.advance(e2e(), saved=doc)
    assert caught.value.exit_code == ExitCode.BLOCKED
    assert e2e.live() == live and e2e.state().record == record  # nothing written


def test_the_cli_saves_and_refuses_files_that_are_not_saved_advances(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    env = {**os.environ, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # never reached: refused before any call
    p = subprocess.run([sys.executable, "-m", "cutover", "--plan", "tests/plans/e2e.yaml", "advance", "--from", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "not a saved advance" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "cutover", "--plan", "tests/plans/e2e.yaml", "advance", "--out", str(bad)],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "--out saves a preview: it goes with --dry-run" in p.stderr
    p = subprocess.run([sys.executable, "-m", "cutover", "--plan", "tests/plans/e2e.yaml", "advance", "--from",
                        str(tmp_path / "missing.json")], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2 and "cannot read it (No such file or directory)" in p.stderr, p.stderr


def test_the_cli_round_trip_and_the_detailed_exit_code(e2e, tmp_path):
    from typer.testing import CliRunner

    from cutover.cli.app import app

    def cli(*args):
        return CliRunner().invoke(app, ["--plan", "tests/plans/e2e.yaml", "--evidence-dir", str(tmp_path / "ev"), *args])

    assert cli("rollback", "--dry-run", "--detailed-exitcode").exit_code == 0  # pending: nothing to roll back
    plan_file = tmp_path / "next.json"
    preview = cli("advance", "--dry-run", "--detailed-exitcode", "--out", str(plan_file))
    assert preview.exit_code == ExitCode.CHANGES_PENDING, preview.stdout + preview.stderr
    assert f"cutover advance --from {plan_file}" in preview.stdout
    applied = cli("advance", "--from", str(plan_file), "--yes")
    assert applied.exit_code == 0 and "entered shadow" in applied.stdout, applied.stdout + applied.stderr
    again = cli("advance", "--from", str(plan_file), "--yes")  # the state moved on: the same file no longer applies
    assert again.exit_code == ExitCode.BLOCKED and "the saved advance no longer applies" in again.stderr


def test_every_command_that_acts_on_aws_names_the_account_and_region(e2e, tmp_path):
    """Issue 15 item 9: not only `status` and the confirmation say where a command acted."""
    from typer.testing import CliRunner

    from cutover.cli.app import app

    def cli(*args):
        return CliRunner().invoke(app, ["--plan", "tests/plans/e2e.yaml", "--evidence-dir", str(tmp_path / "ev"), *args])

    where = f"  account 123456789012, region {e2e.plan.region}"
    for args in (["advance", "--dry-run"], ["preflight"], ["rollback", "--yes", "--reason", "drill"]):
        r = cli(*args)
        assert r.stdout.splitlines()[1] == where, (args, r.stdout)
    doc = json.loads(cli("--json", "advance", "--dry-run").stdout)
    assert (doc["account"], doc["region"]) == ("123456789012", e2e.plan.region)
    assert cli("status").stdout.count("account 123456789012") == 1  # status says it itself, once
