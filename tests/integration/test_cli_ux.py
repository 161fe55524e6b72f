"""CLI tests of the 2 a.m. experience (issue 15), through the real binary: `python -m cutover` in a
subprocess, against the session's moto server over HTTP (the `e2e` fixture seeds tests/plans/e2e.yaml
and its AWS_* variables are in os.environ, which the subprocess inherits). Nothing patches boto3."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.integration.test_cli import CANARY_VALUES, E2E, PENDING_VALUES, ROOT, live, params, put_phase, state_record  # noqa: F401 (params: a fixture)
from tests.fakes import ctrl_c_as_at_a_terminal

pytestmark = pytest.mark.usefixtures("e2e")


def cutover(*args: str, evidence_dir=None, stdout=subprocess.PIPE, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m cutover ARGS` with the e2e plan (the plan and evidence options go first unless the
    test passes its own), cwd the repo root."""
    head = [] if "--plan" in args else ["--plan", E2E]
    if evidence_dir is not None and "--evidence-dir" not in args:
        head += ["--evidence-dir", str(evidence_dir)]
    p = subprocess.run([sys.executable, "-m", "cutover", *head, *args], cwd=ROOT, env=dict(os.environ),
                       stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout)
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def into_closed_pipe(*args: str, **kw) -> subprocess.CompletedProcess:
    """As `cutover ARGS | head -1` once head has gone: stdout is a pipe whose reader is closed before
    the first write, so every write meets EPIPE (deterministic, unlike a real `head`)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return cutover(*args, stdout=write_end, **kw)
    finally:
        os.close(write_end)


# --- item 6: broken pipe -------------------------------------------------------------------------------
def assert_quiet_about_the_pipe(p: subprocess.CompletedProcess) -> None:
    assert "BrokenPipe" not in p.stderr and "Exception ignored" not in p.stderr, p.stderr
    assert "error:" not in p.stderr, p.stderr


def test_status_and_validate_into_a_closed_pipe_exit_with_their_own_code(params, tmp_path):
    for args, code in ((("status",), 0), (("validate",), 0), (("--json", "status"), 0)):
        p = into_closed_pipe(*args, evidence_dir=tmp_path / "ev")
        assert p.returncode == code, (args, p.returncode, p.stderr)
        assert_quiet_about_the_pipe(p)
    params.put("/e2e/mode", "live")  # drift: status --check says 5, pipe or not
    p = into_closed_pipe("status", "--check", evidence_dir=tmp_path / "ev")
    assert p.returncode == 5, p.stderr
    assert_quiet_about_the_pipe(p)


def test_rollback_into_a_closed_pipe_finishes_and_exits_0(e2e, params, tmp_path):
    put_phase(e2e, params, "canary")
    assert live(params) == CANARY_VALUES
    p = into_closed_pipe("rollback", "--yes", "--reason", "piped", evidence_dir=tmp_path / "ev")
    assert p.returncode == 0, p.stderr
    assert_quiet_about_the_pipe(p)
    assert live(params) == PENDING_VALUES
    assert state_record(params)["phase"] == "rolled_back"


# --- item 2: global options before or after the command name ------------------------------------------
def test_global_options_after_the_command_mean_the_same(params, tmp_path):
    ev = tmp_path / "after"
    p = cutover("status", "--json", "--plan", E2E, "--evidence-dir", str(ev), "--region", "us-east-2")
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["command"] == "status" and doc["region"] == "us-east-2"
    before = cutover("--json", "--plan", E2E, "--profile", "no-such-profile", "status")
    after = cutover("status", "--profile", "no-such-profile", "--json", "--plan", E2E)
    assert before.returncode == after.returncode != 0
    assert "no-such-profile" in after.stderr and json.loads(after.stdout)["error"] == json.loads(before.stdout)["error"]


def test_rollback_takes_the_plan_after_its_own_options(e2e, params, tmp_path):
    put_phase(e2e, params, "canary")
    p = cutover("rollback", "--yes", "--reason", "x", "--plan", E2E, "--evidence-dir", str(tmp_path / "ev"), "-v")
    assert p.returncode == 0, p.stderr
    assert "flag_written" in p.stderr  # -v: every step logged to stderr
    assert "rolled back canary -> rolled_back" in p.stdout
    assert live(params) == PENDING_VALUES
    assert any((tmp_path / "ev").iterdir())  # --evidence-dir after the command was honoured


def test_guard_subcommands_take_global_options_too(tmp_path):
    for argv in (("guard", "status", "--json", "--plan", E2E), ("guard", "--json", "status", "--plan", E2E)):
        p = cutover(*argv, evidence_dir=tmp_path / "ev")
        assert "No such option" not in p.stderr, p.stderr
        assert json.loads(p.stdout)["command"] == "guard"


# --- item 1: status shouts a firing alarm -------------------------------------------------------------
def with_a_terminal(*args: str, on: tuple[str, ...] = ("stdout",), typed: str = "", env: dict | None = None,
                    timeout: float = 120) -> tuple[subprocess.CompletedProcess, str]:
    """`python -m cutover ARGS` with the streams named in `on` on one pseudo-terminal (`typed`: what a
    person types at it): the process, and what the terminal showed."""
    import pty

    master, slave = pty.openpty()
    try:
        if typed:
            os.write(master, typed.encode())
        tty = {name: slave if name in on else (subprocess.DEVNULL if name == "stdin" else subprocess.PIPE)
               for name in ("stdin", "stdout", "stderr")}
        p = subprocess.run([sys.executable, "-m", "cutover", "--plan", E2E, *args], cwd=ROOT,
                           env={**os.environ, **(env or {})}, text=True, timeout=timeout, **tty)
        os.close(slave)
        got = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed and everything was read
                break
            if not chunk:
                break
            got += chunk
    finally:
        os.close(master)
    assert "Traceback" not in (p.stderr or "") + got.decode(), p.stderr
    return p, got.decode()


def on_a_terminal(*args: str, env: dict | None = None) -> tuple[int, str]:
    """(exit code, what the terminal showed) of `cutover ARGS` with stdout on a terminal."""
    p, screen = with_a_terminal(*args, env=env)
    return p.returncode, screen


RED = "\x1b[31m"


def test_status_shouts_an_alarm_of_the_current_phase(e2e, emulator, params, tmp_path):
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")
    pending = cutover("--json", "status", "--check")
    assert pending.returncode == 0 and json.loads(pending.stdout)["healthy"] is True  # no phase entered: nothing live
    put_phase(e2e, params, "canary")
    p = cutover("status")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == "ALARM: e2e-errors"
    assert 'next: roll back now: cutover rollback --yes --reason "alarm e2e-errors in ALARM"' in p.stdout
    assert RED not in p.stdout  # not a terminal: no colour
    check = cutover("status", "--check")
    assert check.returncode == 1, check.stdout  # the phase's alarms gate fails now: exit 1, as `watch` says
    doc = json.loads(cutover("status", "--check", "--json").stdout)
    assert doc["healthy"] is False and doc["firing"] == ["e2e-errors"] and doc["exit_code"] == 1
    code, screen = on_a_terminal("status")
    assert code == 0
    row = next(line for line in screen.splitlines() if "e2e-errors: ALARM" in line)
    assert RED in row and RED in screen.splitlines()[0]
    for argv, env in ((("status",), {"NO_COLOR": "1"}), (("status", "--no-color"), {})):
        code, screen = on_a_terminal(*argv, env=env)
        assert "\x1b[" not in screen and "ALARM: e2e-errors" in screen


def test_status_shouts_a_missing_alarm(e2e, params, tmp_path):
    plan = tmp_path / "plan.yaml"
    text = open(E2E).read().replace("names: [e2e-errors]", "names: [e2e-errors, e2e-gone]")
    plan.write_text(text)
    put_phase(e2e, params, "canary")
    p = cutover("--plan", str(plan), "status", "--check")
    assert p.returncode == 1, p.stdout
    assert p.stdout.splitlines()[0] == "ALARM MISSING: e2e-gone"
    assert "e2e-gone: MISSING" in p.stdout and "cutover rollback" in p.stdout
    doc = json.loads(cutover("--plan", str(plan), "--json", "status").stdout)
    assert doc["healthy"] is False and doc["firing"] == ["e2e-gone"]


# --- item 3: a dry run previews an approval phase; its hints keep --dry-run ----------------------------
def test_dry_run_into_an_approval_phase_previews_it(e2e, params, tmp_path):
    put_phase(e2e, params, "shadow")
    version = params.get_many(["/cutover/e2e/state"])["/cutover/e2e/state"].version
    p = cutover("advance", "--dry-run", evidence_dir=tmp_path / "ev")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "dry run: gates pass; advancing shadow -> canary would change 5 flag(s)" in p.stdout
    assert "approval will be needed" in p.stdout and "--approve" in p.stdout
    doc = json.loads(cutover("--json", "advance", "--dry-run", evidence_dir=tmp_path / "ev").stdout)
    assert doc["approval"] == {"needed": True, "approvers": "anyone", "separate_approver": False}
    assert params.get_many(["/cutover/e2e/state"])["/cutover/e2e/state"].version == version
    assert live(params) == {"kill": "off", "mode": "shadow", "allow": "none"}


def test_every_hint_of_a_dry_run_keeps_dry_run(e2e, emulator, params, tmp_path):
    ev = tmp_path / "ev"
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")  # the gates fail
    p = cutover("advance", "--dry-run", evidence_dir=ev)
    assert p.returncode == 1 and "next:" in p.stdout
    assert "cutover advance --dry-run" in p.stdout, p.stdout
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "OK")
    params.put("/e2e/mode", "live")  # drift: refused, with a hint
    p = cutover("advance", "--dry-run", evidence_dir=ev)
    assert p.returncode == 3 and "cutover advance --dry-run" in p.stderr, p.stderr
    baking = tmp_path / "plan.yaml"  # shadow bakes for an hour
    baking.write_text(open(E2E).read().replace("gates: [env_ok, secrets_ok, quiet]", "gates: [env_ok, secrets_ok, quiet]\n    bake: 1h"))
    put_phase(e2e, params, "shadow")
    p = cutover("--plan", str(baking), "advance", "--dry-run", evidence_dir=ev)
    assert p.returncode == 1 and "still baking" in p.stderr, p.stderr
    assert "cutover advance --dry-run" in p.stderr
    p = cutover("rollback", "--dry-run", "--to", "canary", evidence_dir=ev)
    assert p.returncode == 2 and "cutover rollback --dry-run" in p.stderr, p.stderr


# --- item 5: Ctrl-C ---------------------------------------------------------------------------------
def slow_plan(tmp_path, extra: str = "") -> str:
    """The e2e plan at one SSM write every 2 s (a rollback of it takes several seconds)."""
    plan = tmp_path / "slow.yaml"
    plan.write_text(open(E2E).read().replace("write_rate: 10", "write_rate: 0.5") + extra)
    return str(plan)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cutover", *args], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_at_a_terminal)


def read_until(stream, needle: str, seen: list[str], timeout: float = 60) -> None:
    """Read lines of `stream` into `seen` until one holds `needle` (generous: a loaded machine)."""
    import select

    deadline = __import__("time").monotonic() + timeout
    while not any(needle in line for line in seen):
        assert select.select([stream], [], [], max(deadline - __import__("time").monotonic(), 0))[0], (needle, seen)
        line = stream.readline()
        assert line, (needle, seen)
        seen.append(line)


def test_rollback_first_ctrl_c_reports_progress_and_goes_on(e2e, params, tmp_path):
    import signal

    put_phase(e2e, params, "canary")
    proc = start("--plan", slow_plan(tmp_path), "-v", "rollback", "--yes", "--evidence-dir", str(tmp_path / "ev"))
    seen: list[str] = []
    read_until(proc.stderr, "flag_written", seen)  # the rollback is writing
    proc.send_signal(signal.SIGINT)
    read_until(proc.stderr, "press Ctrl-C again to abort", seen)
    # (Before the other flags are read, only the kill switch is counted.)
    assert any((" of 5 restored" in line or "restored (the kill switch is written first; the other flags are not read yet)" in line)
               and "rollback canary -> rolled_back in progress" in line for line in seen), seen
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "rolled back canary -> rolled_back" in out
    assert live(params) == PENDING_VALUES


def test_rollback_second_ctrl_c_stops_and_lists_what_is_restored(e2e, params, tmp_path):
    import signal

    put_phase(e2e, params, "canary")
    proc = start("--plan", slow_plan(tmp_path), "-v", "rollback", "--yes", "--evidence-dir", str(tmp_path / "ev"))
    seen: list[str] = []
    read_until(proc.stderr, "flag_confirmed", seen)
    proc.send_signal(signal.SIGINT)
    read_until(proc.stderr, "press Ctrl-C again", seen)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert "Traceback" not in err and "internal error" not in err
    line = next(line for line in err.splitlines() if line.startswith("error: rollback aborted by a second Ctrl-C"))
    restored = line.split("restored: ", 1)[1].split(";")[0].split(", ")
    left = line.split("not restored: ", 1)[1].split(", ")
    assert restored != ["none"] and left != ["none"], line  # some flags confirmed, the last ones not reached
    now = live(params)
    assert now != PENDING_VALUES
    assert all(now[f] == PENDING_VALUES[f] for f in restored if f in now), (line, now)  # restored means restored
    assert "flags already restored stay restored" in err


def test_ctrl_c_leaves_watch_normally(e2e, params, tmp_path):
    import signal

    baking = tmp_path / "plan.yaml"  # canary bakes for an hour: the watch polls until stopped
    baking.write_text(open(E2E).read().replace("approval: true", "approval: true\n    bake: 1h"))
    put_phase(e2e, params, "canary")
    proc = start("--plan", str(baking), "watch", "--interval", "1", "--evidence-dir", str(tmp_path / "ev"))
    seen: list[str] = []
    read_until(proc.stdout, '"event": "polling"', seen)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == "stopped watching (Ctrl-C); nothing was changed", out  # (the poll lines were read)
    assert "error" not in err and "cutover rollback" not in err


# --- item 13: the runbook's default place ----------------------------------------------------------------
def test_runbook_and_its_check_default_to_runbooks_plan_name(tmp_path):
    check = cutover("--plan", "phases.yaml", "runbook", "--check")  # the repo's committed runbook
    assert check.returncode == 0, check.stdout + check.stderr
    assert "runbooks/order-status-prod.md is current" in check.stdout
    plan = tmp_path / "phases.yaml"
    plan.write_text((ROOT / "phases.yaml").read_text())
    assert cutover("--plan", str(plan), "runbook", "--check").returncode == 1  # not written yet
    wrote = cutover("--plan", str(plan), "runbook")
    assert wrote.returncode == 0, wrote.stderr
    assert (tmp_path / "runbooks" / "order-status-prod.md").read_text() == (ROOT / "runbooks" / "order-status-prod.md").read_text()
    assert cutover("--plan", str(plan), "runbook", "--check").returncode == 0
    printed = cutover("--plan", str(plan), "runbook", "--out", "-")
    assert printed.stdout == (ROOT / "runbooks" / "order-status-prod.md").read_text()
    assert "runbooks/<plan name>.md" in cutover("runbook", "--help").stdout


# --- item 12: finding one's way --------------------------------------------------------------------------
def test_help_ends_with_the_incident_command_and_the_exit_codes():
    p = cutover("--help")
    assert p.returncode == 0
    tail = p.stdout.strip().split("Commands:")[1].splitlines()[-7:]  # the epilog: the incident command, the codes
    assert any('cutover rollback --yes --reason "what happened"' in line for line in tail), tail
    assert "6 rolled back" in " ".join(tail) and "5 drift" in " ".join(tail) and "7 changes" in " ".join(tail), tail
    assert p.stdout.rstrip().endswith("(--detailed-exitcode)")  # the codes end the help
    commands = p.stdout.split("Commands:")[1]
    assert "..." not in commands and "alarms" in commands  # summaries whole, not cut mid-phrase


def test_rollback_words_of_other_tools_point_at_rollback():
    for word in ("abort", "undo"):
        p = cutover(word, "--yes")
        assert p.returncode == 2
        assert "did you mean `cutover rollback`?" in p.stderr, p.stderr


def test_shell_completion_is_on():
    # typer finds the shell among the process's ancestors: run it from bash, as a person does (a detached
    # test runner has no shell above it)
    p = subprocess.run(["bash", "-c", f"{shlex.quote(sys.executable)} -m cutover --show-completion; true"], cwd=ROOT,
                       env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert p.stdout, p.stderr
    assert "_CUTOVER_COMPLETE" in p.stdout


# --- item 9: another region or account than the plan's ------------------------------------------------
def test_a_region_other_than_the_plans_is_refused_unless_overridden(e2e, emulator, params, tmp_path):
    put_phase(e2e, params, "canary")
    emulator.start_recording()
    try:
        for argv in (("--region", "us-west-2", "status"), ("rollback", "--yes", "--region", "us-west-2")):
            p = cutover(*argv, evidence_dir=tmp_path / "ev")
            assert p.returncode == 2, (argv, p.stdout, p.stderr)
            assert "us-west-2" in p.stderr and "us-east-2" in p.stderr and "--region-override" in p.stderr
        writes = emulator.write_requests()
    finally:
        emulator.stop_recording()
    assert writes == [] and live(params) == CANARY_VALUES
    same = cutover("--region", "us-east-2", "status")  # the plan's own region: nothing to override
    assert same.returncode == 0, same.stderr
    over = cutover("status", "--region", "us-west-2", "--region-override", "--json")
    assert over.returncode == 0, over.stderr
    assert json.loads(over.stdout)["region"] == "us-west-2"


def test_an_account_other_than_the_plans_is_refused_unless_overridden(e2e, emulator, params, tmp_path):
    ours = json.loads(cutover("--json", "status").stdout)["account"]  # status names the account it reads
    assert ours and len(ours) == 12
    pinned = tmp_path / "plan.yaml"
    pinned.write_text(open(E2E).read().replace("region: us-east-2", "region: us-east-2\naccount: \"999999999999\""))
    p = cutover("--plan", str(pinned), "rollback", "--yes", evidence_dir=tmp_path / "ev")
    assert p.returncode == 2, p.stderr
    assert f"account {ours}" in p.stderr and "999999999999" in p.stderr and "--region-override" in p.stderr
    ok = cutover("--plan", str(pinned), "--region-override", "status")
    assert ok.returncode == 0, ok.stderr
    assert f"account {ours}, region us-east-2" in ok.stdout
    right = tmp_path / "right.yaml"
    right.write_text(open(E2E).read().replace("region: us-east-2", f"region: us-east-2\naccount: \"{ours}\""))
    assert cutover("--plan", str(right), "status").returncode == 0


# --- item 8: a confirmation to read; item 4: progress on a terminal -----------------------------------------
def test_the_confirmation_is_a_plan_to_read(e2e, params, tmp_path):
    put_phase(e2e, params, "canary")
    p, screen = with_a_terminal("rollback", "--evidence-dir", str(tmp_path / "ev"), on=("stdin",), typed="n\n")
    assert p.returncode == 3, p.stderr
    lines = p.stderr.splitlines()
    assert lines[0].startswith("cutover will act on account ") and ", region us-east-2, as arn:aws:" in lines[0], lines
    assert lines[1] == "rollback canary -> rolled_back:"
    assert "  SSM Parameter Store" in lines and "  Lambda function e2e-worker" in lines
    assert "    ~ kill (/e2e/kill): on -> off" in lines and "    ~ outbound (E2E_OUTBOUND): on -> off" in lines
    assert "5 to change." in lines
    assert "canary@example.com" not in p.stderr + screen  # the sensitive flag's values stay hidden
    assert "not confirmed; nothing was written" in p.stderr
    assert live(params) == CANARY_VALUES


def test_progress_lines_on_a_terminal_and_only_there(e2e, params, tmp_path):
    put_phase(e2e, params, "canary")
    p, screen = with_a_terminal("--json", "rollback", "--yes", "--evidence-dir", str(tmp_path / "ev"), on=("stderr",))
    assert p.returncode == 0
    assert json.loads(p.stdout)["headline"].startswith("rolled back canary")  # stdout: the one JSON document
    # --yes: the kill switch is written before the other flags are read, then the other four
    assert "rollback canary -> rolled_back: the kill switch first, the other flags once it is written" in screen, screen
    assert "rollback canary -> rolled_back: 4 more flag(s) to write" in screen, screen
    progress = [line for line in screen.splitlines() if " confirmed; " in line]
    assert len(progress) == 5 and "5 of 5 done" in progress[-1], progress
    assert "left: " in progress[0] and any("kill (/e2e/kill) confirmed" in line for line in progress), progress
    assert all("s  " in line for line in progress)  # elapsed time
    assert "canary@example.com" not in screen
    put_phase(e2e, params, "canary")
    piped = cutover("--json", "rollback", "--yes", evidence_dir=tmp_path / "ev")  # stderr not a terminal
    assert piped.returncode == 0 and " confirmed; " not in piped.stderr


def test_a_pinned_account_must_be_twelve_quoted_digits(tmp_path):
    for value, says in (("123456789012", 'quote it: "123456789012"'), ('"12345"', "12 digits")):
        plan = tmp_path / "plan.yaml"
        plan.write_text(open(E2E).read().replace("region: us-east-2", f"region: us-east-2\naccount: {value}"))
        p = cutover("--plan", str(plan), "validate")
        assert p.returncode == 2 and f"{plan}:8:10: account: " in p.stderr and says in p.stderr, p.stderr
