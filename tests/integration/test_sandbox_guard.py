"""The sandbox plays the guard (issue 15 item 11): an alarm fires -> the armed document's steps run -> flags
restored -> history says guard. Against the real emulator over HTTP; the document, rule and target are
the ones `guard.arm` wrote, read back from the emulator; the scripts' boto3 reaches it through
AWS_ENDPOINT_URL. `GuardPlayer.poll()` is one look at the alarms, so most tests need no thread and no wait.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cutover.commands import guard as guard_cmd
from cutover.compile import guard
from cutover.commands import orchestrator
from cutover.core import state
from cutover.sandbox.seed import EmulatorSeeder
from cutover.adapters.aws import GuardResources
from cutover.errors import UsageError
from cutover.model.plan import ROLLED_BACK
from cutover.sandbox.guard import GuardPlayer, bootstrap_roles
from tests.fakes import ctrl_c_as_at_a_terminal

ALARM = "e2e-errors"
ROOT = Path(__file__).resolve().parents[2]
E2E = str(ROOT / "tests" / "plans" / "e2e.yaml")


def advance_to(e2e, phase: str) -> None:
    """Real advances, as an operator at the sandbox would run them."""
    while (e2e.state().record.phase if e2e.state().record else "pending") != phase:
        out = orchestrator.advance(e2e(), approve=True, reason="sandbox rehearsal")
        assert out.exit_code == 0, out.headline


@pytest.fixture
def armed_e2e(e2e, emulator):
    """The e2e plan in canary (flags live), its guard armed in the emulator as `cutover guard arm` does."""
    assert bootstrap_roles(e2e.plan, emulator.endpoint) == [guard.names(e2e.plan).automation_role,
                                                           guard.names(e2e.plan).events_role]
    out = guard_cmd.arm(e2e(), GuardResources.connect(e2e.plan.region, None, read_only=False))
    assert out.exit_code == 0, out.headline
    advance_to(e2e, "canary")
    assert e2e.live() != e2e.plan.rollback_values()
    return e2e


def player(e2e, emulator) -> tuple[GuardPlayer, list[str]]:
    said: list[str] = []
    p = GuardPlayer(e2e.plan, emulator.endpoint, said.append)
    assert p.poll() == []  # the first look records the states
    return p, said


def set_alarm(e2e, emulator, name: str, value: str) -> None:
    EmulatorSeeder(emulator.endpoint, e2e.plan.region).set_alarm_state(name, value, "sandbox test")


def test_an_alarm_in_alarm_runs_the_armed_document_flags_restored_history_says_guard(armed_e2e, emulator):
    e2e = armed_e2e
    p, said = player(e2e, emulator)
    set_alarm(e2e, emulator, ALARM, "ALARM")
    (execution,) = p.poll()

    assert said[0] == f"guard: alarm {ALARM} in ALARM -> running the guard's document (as AWS would)"
    armed = json.loads(GuardResources.connect(e2e.plan.region, None, True).get_document(guard.names(e2e.plan).document)["content"])
    assert execution.status == "Success" and [s for s, _ in execution.steps] == [s["name"] for s in armed["mainSteps"]]
    assert said[1].startswith(f"guard: execution {execution.execution_id} of cutover-e2e-rollback (version 1) ended Success")
    assert e2e.live() == e2e.plan.rollback_values()
    view = e2e.state()
    assert view.problem is None and view.record.phase == ROLLED_BACK and view.record.status == state.STABLE
    assert view.record.run_id == execution.execution_id
    last = orchestrator.history(e2e(dry_run=True)).data["history"][-1]
    assert last["command"] == "guard" and last["to"] == ROLLED_BACK
    assert last["who"] == f"arn:aws:iam::123456789012:role/{guard.names(e2e.plan).automation_role}"
    assert last["reason"] == f"auto-rollback by guard: alarm {ALARM}"
    assert orchestrator.status(e2e(dry_run=True), check=True).exit_code == 0

    # Still in ALARM: no new state change, so no second execution (EventBridge fires on changes).
    assert p.poll() == [] and len(said) == 2


@pytest.mark.parametrize("alarm,value,fires", [
    (ALARM, "INSUFFICIENT_DATA", True),  # the alarms check's default insufficient_data: fail
    ("someone-elses-alarm", "ALARM", False),
    (ALARM, "OK", False),
])
def test_the_armed_rule_decides_what_fires(armed_e2e, emulator, alarm, value, fires):
    e2e = armed_e2e
    EmulatorSeeder(emulator.endpoint, e2e.plan.region).put_alarm("someone-elses-alarm", "OK")
    if value == "OK":
        set_alarm(e2e, emulator, ALARM, "ALARM")  # OK is a change only from another state
    p, said = player(e2e, emulator)
    before = e2e.live()
    set_alarm(e2e, emulator, alarm, value)
    ran = p.poll()
    assert bool(ran) is fires
    assert (e2e.live() == e2e.plan.rollback_values()) is fires and (fires or e2e.live() == before)
    if fires:
        assert said[0] == f"guard: alarm {alarm} in {value} -> running the guard's document (as AWS would)"
    elif value == "ALARM":
        assert said == [f"guard: alarm {alarm} in ALARM: the armed rule does not fire on it"]
    else:
        assert said == []


def test_without_an_armed_guard_nothing_rolls_back_and_it_says_so(e2e, emulator):
    advance_to(e2e, "canary")
    p, said = player(e2e, emulator)
    before = e2e.live()
    set_alarm(e2e, emulator, ALARM, "ALARM")
    assert p.poll() == []
    assert said == [f"guard: alarm {ALARM} in ALARM, but no guard is armed here: nothing rolls back "
                    "(`cutover guard arm --yes` arms it)"]
    assert e2e.live() == before and e2e.state().record.phase == "canary"


def test_it_runs_what_is_armed_not_what_the_plan_says(armed_e2e, emulator):
    """A hand-edited armed document: the sandbox writes its value, and the document's own last step
    sees the flag still live and records the rollback as unfinished."""
    e2e = armed_e2e
    store = GuardResources.connect(e2e.plan.region, None, read_only=False)
    name = guard.names(e2e.plan).document
    doc = json.loads(store.get_document(name)["content"])
    kill = next(s for s in doc["mainSteps"] if s["inputs"].get("Name") == "/e2e/kill")
    kill["inputs"]["Value"] = "edited-by-hand"
    from cutover.limits import document_content

    assert store.update_document(name, document_content(doc), {}) == "2"
    p, said = player(e2e, emulator)
    set_alarm(e2e, emulator, ALARM, "ALARM")
    (execution,) = p.poll()

    assert execution.version == "2" and execution.status == "Failed"
    assert e2e.direct().get_many(["/e2e/kill"])["/e2e/kill"].value == "edited-by-hand"
    failed = [s for s, r in execution.steps if r != "Success"]
    assert failed == [guard.RECORD_STEP] and "ended Failed" in said[1] and "rollback UNFINISHED" in said[1]
    view = e2e.state()
    assert view.record.status == "rolling_back" and "UNFINISHED, still live: kill" in view.record.reason


def test_the_watcher_thread_runs_the_guard_when_the_alarm_fires(armed_e2e, emulator):
    e2e = armed_e2e
    said: list[str] = []
    p = GuardPlayer(e2e.plan, emulator.endpoint, said.append).start(interval=0.05)
    try:
        deadline = time.monotonic() + 60  # bounded polling: generous for a loaded machine
        while p._seen is None and time.monotonic() < deadline:  # its first look, before the incident
            time.sleep(0.02)
        set_alarm(e2e, emulator, ALARM, "ALARM")
        while not (p.executions and p.executions[0].steps and len(said) >= 2) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        p.stop()
    assert [e.status for e in p.executions] == ["Success"], said
    assert e2e.state().record.phase == ROLLED_BACK and e2e.live() == e2e.plan.rollback_values()


def test_it_refuses_to_run_scripts_unless_boto3_points_at_the_emulator(e2e, emulator):
    with pytest.raises(UsageError, match="AWS_ENDPOINT_URL is not the sandbox's emulator"):
        GuardPlayer(e2e.plan, emulator.endpoint, print, environ={"AWS_ENDPOINT_URL": "https://ssm.us-east-2.amazonaws.com"})


# --- `cutover sandbox` itself, as an operator uses it ----------------------------------------------------
class SandboxProcess:
    """`cutover sandbox` in a child process (moto is process-global: it cannot share the test's emulator);
    its console lines arrive on a queue."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "cutover", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     preexec_fn=ctrl_c_as_at_a_terminal)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=lambda: [self.lines.put(line.rstrip("\n")) for line in self.proc.stdout], daemon=True).start()

    def until(self, wanted, timeout: float = 120) -> str:
        """The first console line (from now on) for which `wanted(line)` holds; bounded by `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if wanted(line):
                return line
        raise AssertionError(f"the sandbox never said it; it said: {self.seen}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


def test_cutover_sandbox_compresses_the_bake_and_plays_the_guard_as_an_operator_sees_it(tmp_path):
    """An operator's whole rehearsal: `cutover sandbox --time-scale 3600` (a 1h bake lasts 1s), the exports
    pasted, `guard arm`, advances, the alarm set to ALARM -> the sandbox runs the guard -> history says guard."""
    plan = tmp_path / "e2e.yaml"
    plan.write_text(Path(E2E).read_text().replace("    set: {mode: \"shadow\"}\n", "    set: {mode: \"shadow\"}\n    bake: 1h\n", 1))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CUTOVER_"))}
    base.update(PYTHONUNBUFFERED="1", AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"))
    sandbox = SandboxProcess(base, "--plan", str(plan), "sandbox", "--time-scale", "3600")
    try:
        sandbox.until(lambda line: line == "Press Ctrl-C to stop.", timeout=180)
        said = "\n".join(sandbox.seen)
        assert "Time scale x3600: bakes and alarm quiet windows are 3600 times shorter, in a copy of the plan" in said
        assert "\n  bake of shadow: 1h -> 1s\n" in said
        assert "Guard: roles cutover-e2e-rollback-automation, cutover-e2e-rollback-events applied" in said
        exports = dict(line[len("export "):].split("=", 1) for line in sandbox.seen if line.startswith("export "))
        assert exports["AWS_SECRET_ACCESS_KEY"] == "'testing'"  # the dummy key pastes as it is, not [REDACTED]
        operator = {**base, **{k: v.strip("'") for k, v in exports.items()}}
        assert operator["CUTOVER_PLAN"] != str(plan) and "bake: 1s" in Path(operator["CUTOVER_PLAN"]).read_text()

        def cutover(*args: str) -> subprocess.CompletedProcess:  # with the exports only, as the sandbox says
            return subprocess.run([sys.executable, "-m", "cutover", "--evidence-dir", str(tmp_path / "ev"), *args],
                                  cwd=ROOT, env=operator, capture_output=True, text=True, timeout=300)

        for args in (("guard", "arm", "--yes"), ("advance", "--yes", "--reason", "rehearsal")):
            done = cutover(*args)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        deadline = time.monotonic() + 120  # the compressed bake is 1s: bounded polling, generous for a loaded machine
        while (done := cutover("advance", "--yes", "--approve", "--reason", "rehearsal")).returncode != 0:
            assert done.returncode == 1 and "bak" in done.stdout + done.stderr and time.monotonic() < deadline, done
        EmulatorSeeder(operator["AWS_ENDPOINT_URL"], "us-east-2").set_alarm_state(ALARM, "ALARM", "rehearsed incident")

        assert sandbox.until(lambda line: line.startswith("guard: alarm")) == \
            f"guard: alarm {ALARM} in ALARM -> running the guard's document (as AWS would)"
        assert "ended Success" in sandbox.until(lambda line: line.startswith("guard: execution"))
        history = json.loads(cutover("--json", "history").stdout)["history"]
        assert [h["to"] for h in history if h["status"] == state.STABLE] == ["shadow", "canary", ROLLED_BACK]
        assert history[-1]["command"] == "guard"
        assert history[-1]["who"].endswith(":role/cutover-e2e-rollback-automation")
        assert cutover("status", "--check").returncode == 0
    finally:
        code = sandbox.stop()
    assert code == 0 and sandbox.until(lambda line: line == "sandbox stopped", timeout=30)
