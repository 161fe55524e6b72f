"""CLI tests: every command's main paths, exit codes and messages, human and --json.

In-process through typer's CliRunner against the session's moto server over real HTTP (the `e2e`
fixture seeds tests/plans/e2e.yaml and points AWS_ENDPOINT_URL at it). Nothing patches boto3.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cutover.cli import app as cli_app
from cutover.cli import options as cli_options
from cutover.cli import render as cli_render
from cutover.cli import wiring as cli_wiring
from cutover.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
E2E = str(ROOT / "tests" / "plans" / "e2e.yaml")
REPO_PLAN = str(ROOT / "phases.yaml")
REGION = "us-east-2"
STATE = "/cutover/e2e/state"
LOCK = "/cutover/e2e/lock"

# The e2e plan's declared values per phase (allow is sensitive: never printed).
PENDING_VALUES = {"kill": "off", "mode": "safe", "allow": "none"}
SHADOW_VALUES = {"kill": "off", "mode": "shadow", "allow": "none"}
CANARY_VALUES = {"kill": "on", "mode": "live", "allow": "canary@example.com"}
FULL_VALUES = {"kill": "on", "mode": "live", "allow": "*"}


# --- helpers -----------------------------------------------------------------------------------------
class Cli:
    def __init__(self, evidence_dir: Path, plan: str = E2E) -> None:
        self.runner = CliRunner()
        self.evidence_dir = evidence_dir
        self.plan = plan

    def __call__(self, *args: str, json_out: bool = False, plan: str | None = None, input: str | None = None):
        argv = ["--plan", plan or self.plan, "--evidence-dir", str(self.evidence_dir)]
        if json_out:
            argv.append("--json")
        result = self.runner.invoke(app, [*argv, *args], input=input)
        # Errors are one line and a hint: never a traceback, never an uncaught exception.
        assert "Traceback" not in result.output, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        return result

    def json(self, *args: str, **kw) -> tuple[object, dict]:
        """Invoke with --json; stdout must be exactly one JSON document."""
        result = self(*args, json_out=True, **kw)
        doc = json.loads(result.stdout)  # raises on anything but one document
        assert isinstance(doc, dict)
        assert doc["exit_code"] == result.exit_code
        assert doc["ok"] is (result.exit_code == 0)
        assert doc["command"] == args[0] and doc["headline"]
        return result, doc


@pytest.fixture
def cli(e2e, tmp_path) -> Cli:
    return Cli(tmp_path / "ev")


@pytest.fixture
def params(aws_env):
    from cutover.adapters.aws import make_ports

    return make_ports(REGION, None, read_only=False).params


def live(params) -> dict[str, str]:
    """The e2e flags' live values (on the test's own client: quicker than a new session per read)."""
    names = {"kill": "/e2e/kill", "mode": "/e2e/mode", "allow": "/e2e/allow"}
    got = params.get_many(list(names.values()))
    return {flag: got[name].value for flag, name in names.items() if name in got}


def state_param(params):
    return params.get_many([STATE]).get(STATE)


def state_record(params) -> dict:
    p = state_param(params)
    assert p is not None, "no state record"
    return json.loads(p.value)


def advance_to(cli: Cli, phase: str) -> None:
    """Through the CLI, one phase per call (slow: use put_phase where the path does not matter)."""
    order = ["shadow", "canary", "full"]
    for name in order[: order.index(phase) + 1]:
        r = cli("advance", "--yes", "--approve", "--reason", f"test to {name}")
        assert r.exit_code == 0, r.output
        assert f"entered {name}" in r.stdout


def put_phase(e2e, params, phase: str) -> None:
    """Put the emulator in `phase` as a finished advance would leave it: its flag values and a stable
    state record (through the project's own state API, so the record format stays the real one)."""
    from cutover.core import state
    from cutover.clock import SystemClock

    plan = e2e.plan
    e2e.set_flags(plan.values_for(phase))
    state.StateStore(plan, params).write(state.StateRecord(
        phase=phase, status=state.STABLE, entered_at=state.iso(SystemClock().now()),
        actor="arn:aws:iam::123456789012:user/tester", run_id="seeded00", plan_digest=plan.digest,
        command="advance", reason="seeded by test"), SystemClock())


# --- global options ----------------------------------------------------------------------------------
def test_options_are_per_invocation(tmp_path):
    """The global options live on the invocation's click context (ctx.obj), not in a module global: a
    --json run leaves the next run plain, and no module keeps an instance of them."""
    cli = Cli(tmp_path / "ev")
    _, doc = cli.json("validate")
    r = cli("validate")
    assert r.exit_code == 0
    assert not r.stdout.lstrip().startswith("{")
    assert cli_options.options() == cli_options.Globals()  # outside a command: the defaults
    for module in (cli_options, cli_app, cli_render, cli_wiring):
        assert not any(isinstance(v, cli_options.Globals) for v in vars(module).values()), module.__name__


def test_no_args_shows_help():
    r = CliRunner().invoke(app, [])
    assert "Usage" in r.output
    assert "advance" in r.output and "rollback" in r.output


# --- validate ----------------------------------------------------------------------------------------
def test_validate_repo_plan(tmp_path):
    r = Cli(tmp_path / "ev", plan=REPO_PLAN)("validate")
    assert r.exit_code == 0, r.output
    assert "plan 'order-status-prod' is valid" in r.stdout
    assert "phase 0 shadow" in r.stdout and "rollback order:" in r.stdout


def test_validate_e2e_plan(tmp_path):
    r = Cli(tmp_path / "ev")("validate")
    assert r.exit_code == 0, r.output
    assert "plan 'e2e' is valid: 3 phases, 5 flags, 4 checks" in r.stdout
    assert "phase 1 canary" in r.stdout and "approval required" in r.stdout
    assert "canary@example.com" not in r.output  # `allow` is sensitive: hidden, and no hash of it either
    assert "allow=(sensitive)" in r.stdout and "sha256:" not in r.stdout


def test_validate_does_not_show_a_bake_the_phase_lacks(tmp_path):
    r = Cli(tmp_path / "ev")("validate")
    assert "bake" not in r.stdout  # no phase of the e2e plan has one
    r = Cli(tmp_path / "ev", plan=REPO_PLAN)("validate")
    assert "bake 30m" in r.stdout


def test_validate_json(tmp_path):
    r, doc = Cli(tmp_path / "ev").json("validate")
    assert r.exit_code == 0
    assert doc["command"] == "validate"
    assert "is valid" in doc["headline"]
    assert [p["name"] for p in doc["phases"]] == ["shadow", "canary", "full"]


def test_validate_broken_plan_points_at_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(E2E).read_text().replace("write_rate: 10\n", "write_rate: 10\nbogus_key: 1\n"))
    line = bad.read_text().splitlines().index("bogus_key: 1") + 1
    r = Cli(tmp_path / "ev", plan=str(bad))("validate")
    assert r.exit_code == 2
    assert f"{bad}:{line}:1:" in r.stderr
    assert "bogus_key" in r.stderr
    assert "hint:" in r.stderr
    assert r.stdout == ""


def test_validate_broken_plan_json(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nname: x\nbogus: 1\n")
    r, doc = Cli(tmp_path / "ev", plan=str(bad)).json("validate")
    assert r.exit_code == 2
    assert doc["error"].startswith(f"{bad}:3:1:")
    assert doc["hint"]


def test_validate_unquoted_boolean_value_hints_to_quote(tmp_path):
    bad = tmp_path / "bool.yaml"
    bad.write_text(Path(E2E).read_text().replace('rollback: "off"', "rollback: off"))
    r = Cli(tmp_path / "ev", plan=str(bad))("validate")
    assert r.exit_code == 2
    assert f"{bad}:" in r.stderr
    assert "quot" in r.stderr.lower()


def test_validate_missing_plan(tmp_path):
    missing = tmp_path / "nope.yaml"
    r = Cli(tmp_path / "ev", plan=str(missing))("validate")
    assert r.exit_code == 2
    assert "not found" in r.stderr and str(missing) in r.stderr
    assert "hint:" in r.stderr


def test_validate_schema(tmp_path):
    r = Cli(tmp_path / "ev")("validate", "--schema")
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert "$schema" in schema
    assert "phases" in json.dumps(schema)


def test_validate_schema_needs_no_plan(tmp_path):
    r = Cli(tmp_path / "ev", plan=str(tmp_path / "absent.yaml"))("validate", "--schema")
    assert r.exit_code == 0
    assert "$schema" in json.loads(r.stdout)


def test_unknown_option_is_usage_error(tmp_path):
    r = Cli(tmp_path / "ev")("advance", "--no-such-option")
    assert r.exit_code == 2
    assert "No such option" in r.output


# --- status ------------------------------------------------------------------------------------------
def test_status_pending(cli):
    r = cli("status")
    assert r.exit_code == 0, r.output
    assert "pending: flags match the declared values" in r.stdout
    assert "lock: free" in r.stdout
    assert "e2e-errors: OK" in r.stdout
    assert cli("status", "--check").exit_code == 0
    r, doc = cli.json("status")
    assert r.exit_code == 0
    assert doc["command"] == "status"
    assert doc["headline"] == "pending: flags match the declared values"
    assert doc["drift"] == []
    assert {f["flag"] for f in doc["flags"]} == {"kill", "outbound", "mode", "allow", "cohort"}
    assert doc["state"]["phase"] == "pending"
    assert doc["lock"] is None
    assert doc["alarms"][0]["name"] == "e2e-errors"


def test_status_check_reports_hand_edited_flag_as_drift(cli, params):
    params.put("/e2e/mode", "live")
    r = cli("status")
    assert r.exit_code == 0  # without --check drift is reported, not an error
    assert "DRIFT mode = live (declared safe)" in r.stdout
    r = cli("status", "--check")
    assert r.exit_code == 5
    assert "DRIFT" in r.stdout and "mode" in r.stdout
    assert "cutover rollback" in r.stdout
    r, doc = cli.json("status", "--check")
    assert r.exit_code == 5
    assert doc["drift"] == ["mode"]
    assert [f["flag"] for f in doc["flags"] if f["drift"]] == ["mode"]


def test_status_explains_corrupt_state_record(cli, params):
    params.put(STATE, "{not json")
    r = cli("status")
    assert r.exit_code == 0
    assert "corrupt" in r.stdout
    assert "cutover rollback" in r.stdout  # the fix
    r = cli("status", "--check")
    assert r.exit_code == 5
    assert "corrupt" in r.stdout
    r, doc = cli.json("status", "--check")
    assert r.exit_code == 5
    assert "corrupt" in doc["state"]["problem"]


def test_status_never_shows_a_sensitive_value(cli, e2e, params):
    put_phase(e2e, params, "canary")
    r = cli("status")
    assert r.exit_code == 0, r.output
    assert "canary: flags match the declared values" in r.stdout
    assert "canary@example.com" not in r.output
    r, doc = cli.json("status")
    assert "canary@example.com" not in r.output


# --- advance -----------------------------------------------------------------------------------------
def test_advance_without_yes_and_without_tty_writes_nothing(cli, e2e, params):
    r = cli("advance")
    assert r.exit_code == 2
    assert "--yes" in r.stderr
    assert "nothing was written" in r.stderr
    r, doc = cli.json("advance")
    assert r.exit_code == 2
    assert "--yes" in doc["error"] and doc["hint"]
    assert state_param(params) is None
    assert live(params) == PENDING_VALUES


def test_advance_dry_run_writes_nothing(cli, e2e, emulator, params, tmp_path):
    emulator.start_recording()
    try:
        r = cli("advance", "--dry-run")
        r2, doc = cli.json("advance", "--dry-run")
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert r.exit_code == 0, r.output
    assert "dry run: gates pass; advancing pending -> shadow would change 1 flag(s)" in r.stdout
    assert "mode (/e2e/mode): safe -> shadow" in r.stdout
    assert "evidence:" in r.stdout
    assert r2.exit_code == 0
    assert doc["dry_run"] is True
    assert doc["target"] == "shadow"
    assert [c["flag"] for c in doc["changes"]] == ["mode"]
    assert all(g["status"] == "PASS" for g in doc["gates"])
    assert Path(doc["evidence"]).is_dir()
    assert writes == []
    assert state_param(params) is None
    assert live(params) == PENDING_VALUES


def test_advance_at_a_terminal_asks(cli, e2e, params, monkeypatch):
    # As if run from a terminal (CliRunner's stdin is never one): the prompt reads the given input.
    monkeypatch.setattr("cutover.cli.app.require_yes_or_tty", lambda *a: None)
    for answer in ("n\n", ""):  # "no", and end of input (Ctrl-D)
        r = cli("advance", input=answer)
        assert r.exit_code == 3, (answer, r.output)
        assert "Proceed?" in r.stderr and "mode (/e2e/mode): safe -> shadow" in r.stderr
        assert "not confirmed; nothing was written" in r.stderr
        assert "internal error" not in r.output
        assert live(params) == PENDING_VALUES
        assert state_param(params) is None
        assert params.get_many([LOCK]) == {}
    r = cli("advance", input="y\n")
    assert r.exit_code == 0, r.output
    assert "entered shadow" in r.stdout
    assert live(params) == SHADOW_VALUES


def test_advance_yes_enters_shadow(cli, e2e, params):
    r = cli("advance", "--yes", "--reason", "CHG-1")
    assert r.exit_code == 0, r.output
    assert "entered shadow: 1 flag(s) changed and confirmed" in r.stdout
    assert "env_ok PASS" in r.stdout
    assert "evidence:" in r.stdout
    assert live(params) == SHADOW_VALUES
    rec = state_record(params)
    assert rec["phase"] == "shadow" and rec["status"] == "stable" and rec["reason"] == "CHG-1"
    assert params.get_many([LOCK]) == {}  # lock released


def test_advance_into_approval_phase_needs_approve(cli, e2e, params):
    put_phase(e2e, params, "shadow")
    version = state_param(params).version
    r = cli("advance", "--yes")
    assert r.exit_code == 3
    assert "approval" in r.stderr and "--approve" in r.stderr
    r, doc = cli.json("advance", "--yes")
    assert r.exit_code == 3 and "--approve" in doc["hint"]
    assert live(params) == SHADOW_VALUES
    assert state_param(params).version == version

    r, doc = cli.json("advance", "--approve", "--yes", "--reason", "go")
    assert r.exit_code == 0, r.output
    assert doc["headline"].startswith("entered canary")
    assert doc["phase"] == "shadow" and doc["target"] == "canary"
    assert [c["flag"] for c in doc["changes"]] == ["kill", "outbound", "mode", "allow", "cohort"]
    assert live(params) == CANARY_VALUES
    assert state_record(params)["approved_by"]
    assert "canary@example.com" not in r.output


def test_advance_at_last_phase_is_nothing_to_do(cli, e2e, params):
    put_phase(e2e, params, "full")
    assert live(params) == FULL_VALUES
    r = cli("advance", "--yes")
    assert r.exit_code == 0
    assert "nothing to do" in r.stdout and "full is the last phase" in r.stdout
    r, doc = cli.json("advance", "--yes")
    assert r.exit_code == 0 and doc["headline"].startswith("nothing to do")


def test_advance_failing_gate_names_alarm_and_writes_nothing(cli, e2e, emulator, params):
    emulator.seeder(REGION).set_alarm_state("e2e-errors", "ALARM")
    emulator.start_recording()
    try:
        r = cli("advance", "--yes")
        writes = [w for w in emulator.write_requests() if w["service"] == "ssm"]
    finally:
        emulator.stop_recording()
    assert r.exit_code == 1, r.output
    assert "gates for shadow failed: quiet; nothing was written" in r.stdout
    assert "e2e-errors" in r.stdout
    assert "quiet FAIL" in r.stdout
    # Only the lease lock may be touched (taken and released); no flag and no state record.
    assert {json.loads(w["body"] or "{}").get("Name") for w in writes} <= {LOCK}
    assert live(params) == PENDING_VALUES
    assert state_param(params) is None
    r, doc = cli.json("advance", "--yes")
    assert r.exit_code == 1
    assert [g["check"] for g in doc["gates"] if g["status"] == "FAIL"] == ["quiet"]
    assert doc["changes"] == []


def test_advance_missing_env_fails_its_gate(cli, e2e, monkeypatch, params):
    monkeypatch.delenv("E2E_READ_ONLY")
    r = cli("advance", "--yes")
    assert r.exit_code == 1, r.output
    assert "env_ok" in r.stdout and "E2E_READ_ONLY" in r.stdout
    assert live(params) == PENDING_VALUES
    assert state_param(params) is None


# --- rollback ----------------------------------------------------------------------------------------
def test_rollback_after_advancing(cli, e2e, params):
    put_phase(e2e, params, "canary")
    r = cli("rollback", "--yes", "--reason", "incident")
    assert r.exit_code == 0, r.output
    assert "rolled back canary -> rolled_back: 5 flag(s) changed, every flag confirmed" in r.stdout
    assert "canary@example.com" not in r.output
    assert live(params) == PENDING_VALUES
    rec = state_record(params)
    assert rec["phase"] == "rolled_back" and rec["status"] == "stable"


def test_rollback_json_then_nothing_to_do(cli, e2e, params):
    put_phase(e2e, params, "shadow")
    r, doc = cli.json("rollback", "--yes")
    assert r.exit_code == 0
    assert doc["from"] == "shadow" and doc["to"] == "rolled_back"
    assert [c["flag"] for c in doc["changes"]] == ["mode"]
    assert live(params) == PENDING_VALUES
    version = state_param(params).version
    r = cli("rollback", "--yes")
    assert r.exit_code == 0
    assert "nothing to do" in r.stdout
    r, doc = cli.json("rollback", "--yes")
    assert r.exit_code == 0 and doc["headline"].startswith("nothing to do")
    assert state_param(params).version == version


def test_rollback_dry_run_or_without_yes_writes_nothing(cli, e2e, emulator, params):
    put_phase(e2e, params, "canary")
    version = state_param(params).version
    emulator.start_recording()
    try:
        r_noyes = cli("rollback")  # no terminal, no --yes
        r = cli("rollback", "--dry-run")
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert r_noyes.exit_code == 2
    assert "--yes" in r_noyes.stderr and "nothing was written" in r_noyes.stderr
    assert r.exit_code == 0, r.output
    assert "dry run: rollback canary -> rolled_back would change 5 flag(s)" in r.stdout
    assert "kill (/e2e/kill): on -> off" in r.stdout
    assert writes == []
    assert live(params) == CANARY_VALUES
    assert state_param(params).version == version


def test_rollback_to_an_earlier_phase_or_the_current_one_only(cli, e2e, params):
    put_phase(e2e, params, "canary")
    version = state_param(params).version
    same = cli("rollback", "--to", "canary", "--yes")  # the current phase: its drift converged; here, none
    assert same.exit_code == 0 and "nothing to do: every flag is already at its canary value" in same.stdout
    for to in ("full", "nope"):
        r = cli("rollback", "--to", to, "--yes")
        assert r.exit_code == 2, (to, r.output)
        assert f"--to {to}" in r.stderr
        assert "hint:" in r.stderr
    assert "phases are: shadow, canary, full" in r.stderr
    assert live(params) == CANARY_VALUES
    assert state_param(params).version == version

    r = cli("rollback", "--to", "shadow", "--yes")
    assert r.exit_code == 0, r.output
    assert "rolled back canary -> shadow" in r.stdout
    assert live(params) == SHADOW_VALUES
    assert state_record(params)["phase"] == "shadow"


def test_rollback_with_nothing_to_do(cli, e2e, emulator, params):
    emulator.start_recording()
    try:
        r = cli("rollback", "--yes")
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert r.exit_code == 0, r.output
    assert "nothing to do" in r.stdout
    assert writes == []
    assert state_param(params) is None


def test_rollback_works_with_a_corrupt_state_record(cli, e2e, params):
    put_phase(e2e, params, "shadow")
    params.put(STATE, "{not json")
    r = cli("rollback", "--yes")
    assert r.exit_code == 0, r.output
    assert "rolled back" in r.stdout
    assert live(params) == PENDING_VALUES
    assert state_record(params)["phase"] == "rolled_back"
    assert cli("status", "--check").exit_code == 0


# --- history -----------------------------------------------------------------------------------------
def test_history_lists_transitions(cli):
    r = cli("history")
    assert r.exit_code == 0
    assert "0 state change(s)" in r.stdout
    advance_to(cli, "canary")
    assert cli("rollback", "--yes", "--reason", "drill").exit_code == 0
    r = cli("history")
    assert r.exit_code == 0, r.output
    assert "pending -> shadow (stable)" in r.stdout
    assert "shadow -> canary (stable)" in r.stdout
    assert "canary -> rolled_back (stable) by `rollback`, reason: drill" in r.stdout
    r, doc = cli.json("history")
    assert r.exit_code == 0
    stable = [(h["from"], h["to"]) for h in doc["history"] if h["status"] == "stable"]
    assert stable == [("pending", "shadow"), ("shadow", "canary"), ("canary", "rolled_back")]
    assert all({"from", "to", "when", "who"} <= set(h) for h in doc["history"])


# --- unlock ------------------------------------------------------------------------------------------
def test_unlock_without_force_is_usage_error(tmp_path):
    cli = Cli(tmp_path / "ev")  # refused before any AWS call
    r = cli("unlock", "--reason", "stuck")
    assert r.exit_code == 2
    assert "--force" in r.stderr
    r = cli("unlock", "--force")
    assert r.exit_code == 2
    assert "--reason" in r.stderr
    r, doc = cli.json("unlock")
    assert r.exit_code == 2 and "--force" in doc["error"]


def test_unlock(cli, e2e, params):
    from cutover.core import state
    from cutover.clock import SystemClock

    r = cli("unlock", "--force", "--reason", "stuck")
    assert r.exit_code == 0, r.output
    assert "no lock" in r.stdout
    r, doc = cli.json("unlock", "--force", "--reason", "stuck")
    assert r.exit_code == 0 and doc["lock"] is None

    state.acquire(e2e.plan, params, SystemClock(), holder="arn:aws:iam::123456789012:user/alice",
                  command="advance", run_id="other123")
    assert "lock: held by arn:aws:iam::123456789012:user/alice" in cli("status").stdout
    r = cli("advance", "--yes")
    assert r.exit_code == 3
    assert "lock is held by arn:aws:iam::123456789012:user/alice" in r.stderr
    assert "unlock --force" in r.stderr
    assert live(params) == PENDING_VALUES

    r = cli("unlock", "--force", "--reason", "alice's laptop died")
    assert r.exit_code == 0, r.output
    assert "lock broken" in r.stdout and "alice" in r.stdout
    assert params.get_many([LOCK]) == {}
    assert cli("advance", "--yes").exit_code == 0


# --- preflight ---------------------------------------------------------------------------------------
def test_preflight_pass(cli, emulator):
    emulator.start_recording()
    try:
        r = cli("preflight", "--phase", "shadow")
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert r.exit_code == 0, r.output
    assert "preflight for shadow: PASS" in r.stdout
    assert "overall_status PASS" in r.stdout
    assert "secrets_ok PASS" in r.stdout
    assert writes == []

    r = cli("preflight")  # default: the next phase
    assert r.exit_code == 0, r.output
    assert "preflight for shadow: PASS" in r.stdout

    r, doc = cli.json("preflight", "--phase", "shadow")
    assert r.exit_code == 0
    assert doc["overall_status"] == "PASS"
    assert {g["check"] for g in doc["gates"]} == {"env_ok", "secrets_ok", "quiet", "rollback_readable", "rollback_allowed"}

    r = cli("preflight", "--phase", "shadow", "--skip", "quiet")
    assert r.exit_code == 0, r.output
    assert "NOT VALID FOR SIGN-OFF: skipped quiet" in r.stdout

    r = cli("preflight", "--phase", "nope")
    assert r.exit_code == 2
    assert "--phase nope" in r.stderr and "shadow, canary, full" in r.stderr
    r = cli("preflight", "--phase", "shadow", "--skip", "nope")
    assert r.exit_code == 2
    assert "--skip nope" in r.stderr


def test_preflight_fail_on_alarm(cli, emulator, tmp_path):
    emulator.seeder(REGION).set_alarm_state("e2e-errors", "ALARM")
    md = tmp_path / "preflight.md"
    r = cli("preflight", "--phase", "shadow", "--out-md", str(md))
    assert r.exit_code == 1, r.output
    assert "overall_status FAIL" in r.stdout
    assert "quiet FAIL" in r.stdout and "e2e-errors" in r.stdout
    assert md.exists() and "e2e-errors" in md.read_text()
    r, doc = cli.json("preflight", "--phase", "shadow")
    assert r.exit_code == 1
    assert doc["overall_status"] == "FAIL"
    assert doc["hint"]


# --- AWS errors --------------------------------------------------------------------------------------
def test_unreachable_endpoint_is_exit_4_with_one_line(aws_env, monkeypatch, tmp_path):
    from cutover.clock import SystemClock

    # A refused connection is transient: the flag reads back off and retry (about 40 s of real
    # sleeps per command). Count the waits instead of sleeping them.
    waits: list[float] = []
    monkeypatch.setattr(SystemClock, "sleep", lambda self, seconds: waits.append(seconds))
    cli = Cli(tmp_path / "ev")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    r = cli("status")
    assert waits, "a refused connection is retried before status gives up"
    assert r.exit_code == 4, r.output
    assert r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "hint:" in r.stderr
    assert "internal error" not in r.stderr
    r, doc = cli.json("status")
    assert r.exit_code == 4
    assert doc["error"] and doc["hint"]


# --- startup cost ------------------------------------------------------------------------------------
def _python(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


# Libraries a light command must not load: each costs start-up (pydantic came in with typer 0.29,
# structlog brings rich and asyncio), and boto3/moto belong to the commands that talk to AWS.
HEAVY = ("boto3", "botocore", "moto", "pydantic", "pydantic_core", "structlog", "rich")


def _imported(p: subprocess.CompletedProcess) -> set[str]:
    """The top-level packages a `python -X importtime` run imported, from its stderr."""
    return {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in p.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args", [["--help"], ["--plan", REPO_PLAN, "validate"], ["--plan", E2E, "validate"]],
                         ids=["help", "validate-repo-plan", "validate-e2e-plan"])
def test_light_commands_import_no_heavy_library(args):
    p = _python("-X", "importtime", "-m", "cutover", *args)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "rollback" in p.stdout
    assert sorted(_imported(p) & set(HEAVY)) == []


def test_a_rollback_imports_neither_structlog_nor_rich_nor_pydantic(e2e, tmp_path):
    """Every module a rollback imports delays its first kill switch (boto3 is the one it needs)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    argv = ["--plan", E2E, "--evidence-dir", str(tmp_path / "ev"), "rollback", "--yes", "--reason", "test"]
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "cutover", *argv], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    imported = _imported(p)
    assert "boto3" in imported  # the probe sees the rollback's imports
    assert sorted(imported & {"structlog", "rich", "pydantic", "pydantic_core", "moto"}) == []
