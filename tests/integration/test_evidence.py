"""Evidence: report.json (versioned, complete) and report.md (reads well in a pull request), PII-safe.

Unit tests on the Report model and renderers; then the real use cases on the emulator write it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from cutover.core import evidence
from cutover.commands import orchestrator
from cutover.core.evidence import SCHEMA_VERSION, Report, markdown, render_markdown, write
from cutover.redact import HIDDEN, REGISTERED_MASK, Redactor

GATES = [
    {"check": "required_env", "type": "env", "status": "PASS", "detail": "2 equal, 1 present", "next_action": "", "duration": 0.0012},
    {"check": "alarms_quiet", "type": "alarms", "status": "FAIL", "detail": "rp-x in ALARM since 2026-01-01T03:04:05Z (12m)",
     "next_action": "do not advance", "duration": 0.31},
    {"check": "report", "type": "command", "status": "SKIPPED", "detail": "skipped by --skip", "next_action": "", "duration": 0.0},
]
CHANGES = [
    {"flag": "automation_enabled", "parameter": "/rp/automation_enabled", "old": "false", "new": "true",
     "old_version": 3, "new_version": 4, "written": True, "confirmed": True},
    {"flag": "allowlist", "parameter": "/rp/allowlist", "old": None, "new": HIDDEN,
     "old_version": None, "new_version": 1, "written": True, "confirmed": True},
]


def report(**kw) -> Report:
    base = dict(command="advance", run_id="1a2b3c4d", plan="order-status-prod", plan_digest="ab" * 32, region="us-east-2",
                started_at="2026-01-01T03:04:05Z", ended_at="2026-01-01T03:04:07Z", actor="arn:aws:sts::123456789012:assumed-role/release/ci",
                account="123456789012", from_state="shadow", to_state="canary", reason="CHG-1234", exit_code=0,
                final_status="entered canary: 2 flag(s) changed and confirmed", gates=[GATES[0]], changes=list(CHANGES))
    return Report(**{**base, **kw})


# --- report.json ---------------------------------------------------------------------------------------


def test_json_has_everything_a_reviewer_needs():
    d = report().to_dict()
    assert d["schema_version"] == SCHEMA_VERSION == 2
    for key in ("plan_digest", "actor", "account", "region", "run_id", "started_at", "ended_at", "gates", "changes",
                "final_status", "exit_code", "reason", "from_state", "to_state", "tool_version"):
        assert d[key] not in ("", None), key
    assert (d["outcome"], d["duration_seconds"]) == ("ok", 2.0)
    assert d["counts"] == {"gates": {"total": 1, "passed": 1, "failed": 0, "skipped": 0},
                           "changes": {"total": 2, "written": 2, "confirmed": 2}}
    assert set(d["gates"][0]) >= {"check", "status", "detail", "next_action", "duration"}
    assert set(d["changes"][0]) >= {"flag", "old", "new", "old_version", "new_version", "confirmed"}
    json.dumps(d)  # JSON-able


@pytest.mark.parametrize("code,word", [(1, "gate_failed"), (3, "blocked"), (4, "incomplete"), (6, "rolled_back"), (None, "unfinished")])
def test_outcome_names_the_exit_code(code, word):
    assert report(exit_code=code).outcome == word


# --- report.md -------------------------------------------------------------------------------------------


def test_markdown_reads_well():
    md = render_markdown(report(gates=GATES[:2], notes=["took over a stale lock from arn:aws:iam::123456789012:user/bob"]))
    lines = md.splitlines()
    assert lines[0] == "# cutover advance: entered canary: 2 flag(s) changed and confirmed"
    assert lines[2] == "**OK** (exit 0) · shadow → canary · gates: 1 passed, 1 failed · flags: 2 of 2 changed, 2 confirmed · took 2s"
    assert "| account / region | `123456789012` / `us-east-2` |" in md
    assert "| transition | `shadow` → `canary` |" in md
    assert "| 2 | alarms_quiet | alarms | **FAIL** | rp-x in ALARM since 2026-01-01T03:04:05Z (12m) | do not advance | 0.31s |" in md
    assert "| 1 | required_env | env | PASS | 2 equal, 1 present | — | 0.00s |" in md
    assert "| automation_enabled | `/rp/automation_enabled` | `false` → `true` | v3 → v4 | yes |" in md
    assert f"| allowlist | `/rp/allowlist` | (missing) → `{HIDDEN}` | (new) → v1 | yes |" in md
    assert "## Notes" in md and "- took over a stale lock" in md
    assert lines[-1] == "final status: entered canary: 2 flag(s) changed and confirmed"


def test_dry_run_changes_say_not_written():
    dry = [{**c, "new_version": None, "written": False, "confirmed": False} for c in CHANGES]
    md = render_markdown(report(dry_run=True, changes=dry, exit_code=0, final_status="gates pass; would change 2 flag(s)"))
    assert md.startswith("# cutover advance (dry run): gates pass")
    said = render_markdown(report(dry_run=True, final_status="dry run: gates pass"))
    assert said.startswith("# cutover advance: dry run: gates pass")  # said once
    assert "| v3 (not written) | no |" in md and "| (not written) | no |" in md and "flags: 2 would change" in md


def test_advance_without_changes_says_so():
    md = render_markdown(report(changes=[], final_status="entered shadow: 0 flag(s) changed and confirmed"))
    assert "None: every flag was already at its target value." in md and "flags: no change" in md


def test_preflight_ends_with_overall_status_and_marks_skips():
    r = report(command="preflight", dry_run=True, from_state="", to_state="canary", gates=GATES, changes=[], reason="",
               exit_code=1, final_status="preflight for canary: FAIL", overall_status="FAIL")
    md = render_markdown(r)
    assert md.splitlines()[-1] == "overall_status FAIL"
    assert md.startswith("# cutover preflight: preflight for canary: FAIL")  # no "(dry run)": preflight is read-only
    assert "**FAIL** (exit 1) · phase canary · gates: 1 passed, 1 failed, 1 skipped" in md
    assert "> **Not valid for sign-off:** skipped report." in md
    assert "| phase | `canary` |" in md and "transition" not in md and "## Flag changes" not in md
    ok = render_markdown(report(command="preflight", gates=GATES[:1], changes=[], exit_code=0, overall_status="PASS"))
    assert ok.rstrip().endswith("overall_status PASS")


def test_table_cells_cannot_break_the_table():
    r = report(gates=[{**GATES[1], "detail": "exit 1; last output: a | b\nc", "next_action": "run `x | y`"}])
    row = next(line for line in render_markdown(r).splitlines() if line.startswith("| 1 |"))
    assert "a \\| b c" in row and "`x \\| y`" in row
    assert len(re.split(r"(?<!\\)\|", row)) - 2 == 7  # seven cells, as in the header


def test_rehearse_steps_table():
    steps = [{"step": "advance into shadow", "expected": "gates pass", "outcome": "exit 0", "ok": True},
             {"step": "rollback", "expected": "flags safe", "outcome": "exit 4", "ok": False}]
    md = render_markdown(report(command="rehearse", steps=steps, gates=[], changes=[], from_state="", to_state=""))
    assert "| advance into shadow | gates pass | exit 0 | yes |" in md and "| rollback | flags safe | exit 4 | **NO** |" in md


# --- writing, PII safety ------------------------------------------------------------------------------------


PII = ["jane.doe@example.com", "+1 415 555 0132", "shpat_0123456789abcdef0123", "Bearer eyJhbGciOi.payload",
       "AKIAIOSFODNN7EXAMPLE", "sk-proj-abcdefghijklmnop1234"]


def leaky_report(secret: str) -> Report:
    gates = [{**GATES[1], "detail": f"GraphQL errors: 1; first ACCESS_DENIED: token {PII[2]} for {PII[0]} key {secret}",
              "next_action": f"call {PII[1]} with Authorization: {PII[3]}"}]
    changes = [{**CHANGES[0], "old": secret, "new": PII[0]}]
    return report(gates=gates, changes=changes, reason=f"incident reported by {PII[0]}", notes=[f"key {PII[4]} / {PII[5]}"],
                  steps=[{"step": secret, "expected": PII[0], "outcome": "x", "ok": True}])


def test_written_evidence_is_pii_safe(tmp_path):
    redactor = Redactor()
    secret = "pl4nted|secret  with-spaces"  # a pipe and double space: markdown escaping must not defeat redaction
    redactor.register(secret)
    folder = write(leaky_report(secret), tmp_path, redactor)
    assert folder.name == "20260101T030405Z-advance-1a2b3c4d"
    assert sorted(p.name for p in folder.iterdir()) == ["report.json", "report.md"]  # no temp files left
    for path in folder.iterdir():
        text = path.read_text()
        for value in (secret, "pl4nted\\|secret", "pl4nted|secret with-spaces", *PII):
            assert value not in text, (value, path.name)
    data = json.loads((folder / "report.json").read_text())
    assert data["account"] == "123456789012" and data["actor"].startswith("arn:aws:sts::123456789012:")
    assert data["changes"][0]["old"] == REGISTERED_MASK
    md = (folder / "report.md").read_text()
    assert REGISTERED_MASK in md and "[REDACTED:email]" in md


def test_markdown_helper_redacts_like_write():
    redactor = Redactor()
    redactor.register("another-Secret-42")
    md = markdown(report(reason="another-Secret-42 by jane@example.com"), redactor)
    assert "another-Secret-42" not in md and "jane@example.com" not in md


# --- the use cases write it ----------------------------------------------------------------------------------


def _reports(folder: Path, command: str) -> list[Path]:
    return sorted(folder.glob(f"*-{command}-*"))


def test_advance_evidence_on_the_emulator(e2e):
    out = orchestrator.advance(e2e(), reason="CHG-1 by jane@example.com")
    assert out.exit_code == 0
    [folder] = _reports(e2e.evidence, "advance")
    assert str(folder) == out.evidence_path
    data = json.loads((folder / "report.json").read_text())
    assert (data["schema_version"], data["command"], data["outcome"]) == (SCHEMA_VERSION, "advance", "ok")
    assert data["plan_digest"] == e2e.plan.digest and data["region"] == "us-east-2"
    assert data["actor"] == "arn:aws:sts::123456789012:user/moto" and data["account"] == "123456789012"
    assert data["run_id"] and data["started_at"] <= data["ended_at"]
    # The phase's gates, then the rollback-readiness results (cutover.commands.readiness).
    assert [g["check"] for g in data["gates"]] == [*e2e.plan.phase("shadow").gates, "rollback_readable", "rollback_allowed"]
    assert all(g["status"] == "PASS" and g["duration"] >= 0 for g in data["gates"])
    [mode] = data["changes"]
    assert (mode["flag"], mode["old"], mode["new"], mode["old_version"], mode["new_version"], mode["confirmed"]) == (
        "mode", "safe", "shadow", 1, 2, True)
    assert data["reason"] == "CHG-1 by [REDACTED:email]"
    md = (folder / "report.md").read_text()
    assert "| mode | `/e2e/mode` | `safe` → `shadow` | v1 → v2 | yes |" in md and "jane@example.com" not in md


def test_failed_gate_and_sensitive_change_evidence(e2e, emulator):
    orchestrator.advance(e2e())  # shadow
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM", "injected")
    out = orchestrator.advance(e2e(), approve=True, reason="test")
    assert out.exit_code == 1
    data = json.loads((Path(out.evidence_path) / "report.json").read_text())
    assert data["outcome"] == "gate_failed" and data["changes"] == [] and data["counts"]["gates"]["failed"] == 1
    failed = next(g for g in data["gates"] if g["status"] == "FAIL")
    assert failed["check"] == "quiet" and failed["next_action"].startswith("do not advance")

    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "OK", "recovered")
    out = orchestrator.advance(e2e(), approve=True, reason="test")  # canary: writes the sensitive allowlist
    folder = Path(out.evidence_path)
    allow = next(c for c in json.loads((folder / "report.json").read_text())["changes"] if c["flag"] == "allow")
    assert (allow["old"], allow["new"]) == (HIDDEN, HIDDEN)
    assert all("canary@example.com" not in p.read_text() for p in folder.iterdir())


def test_preflight_evidence_and_out_md(e2e, tmp_path):
    from cutover.commands.preflight import preflight

    out_md = tmp_path / "preflight.md"
    out = preflight(e2e(dry_run=True), None, ("secrets_ok",), out_md)
    assert out.exit_code == 0 and out.lines[-1] == "overall_status PASS"
    text = out_md.read_text()
    assert text.splitlines()[-1] == "overall_status PASS" and "Not valid for sign-off" in text
    folder = Path(out.evidence_path)
    assert (folder / "report.md").read_text() == text
    data = json.loads((folder / "report.json").read_text())
    assert data["overall_status"] == "PASS" and data["counts"]["gates"]["skipped"] == 1
    assert evidence.folder_name(Report(**{k: v for k, v in data.items() if k in Report.__dataclass_fields__})) == folder.name


# --- private files, and evidence that cannot be written ----------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_written_evidence_is_private_whatever_the_umask(tmp_path, umask_022):
    folder = write(report(), tmp_path / "evidence")
    assert (tmp_path / "evidence").stat().st_mode & 0o777 == 0o700
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {"report.json": 0o600, "report.md": 0o600}


def test_the_log_file_is_private_and_an_old_one_is_tightened(tmp_path, umask_022):
    from cutover import logs

    log = tmp_path / "evidence" / "cutover.log.jsonl"
    logs.configure(False, log)
    logs.get().info("first")
    assert log.stat().st_mode & 0o777 == 0o600 and log.parent.stat().st_mode & 0o777 == 0o700
    log.chmod(0o644)  # as an older cutover left it
    logs.configure(False, log)
    logs.get().info("second")
    assert log.stat().st_mode & 0o777 == 0o600
    assert [json.loads(line)["event"] for line in log.read_text().splitlines()] == ["first", "second"]
    logs.configure(False, None)


def test_a_log_that_cannot_be_opened_or_written_breaks_nothing(tmp_path):
    from cutover import logs

    (tmp_path / "file").write_text("")
    logs.configure(False, tmp_path / "file" / "cutover.log.jsonl")  # under a file: cannot be opened
    logs.get().warning("still logged to stderr")

    class DiskFull:
        def write(self, text):
            raise OSError(28, "No space left on device")

        flush = close = write

    logs.configure(False, tmp_path / "cutover.log.jsonl")
    logs._current.file = DiskFull()  # the disk fills up mid-run
    logs.get().warning("the disk is full")
    logs.get().info("and logging goes on")
    logs.configure(False, None)


def test_a_finished_rollback_keeps_its_exit_code_when_evidence_cannot_be_written(e2e, tmp_path):
    assert orchestrator.advance(e2e()).exit_code == 0
    blocked = tmp_path / "evidence.txt"
    blocked.write_text("a file, not a folder\n")
    rt = e2e()
    rt.evidence_dir = blocked
    out = orchestrator.rollback(rt, reason="incident")
    assert out.exit_code == 0 and e2e.live() == e2e.plan.values_for("pending")
    [warning] = [line for line in out.lines if line.startswith("warning:")]
    assert warning == f"warning: evidence could not be written: {blocked} is a file: pass a directory"
    assert out.evidence_path is None and out.data["evidence_error"] == warning.removeprefix("warning: ")
