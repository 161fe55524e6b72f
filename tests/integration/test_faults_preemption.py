"""A preempted run's in-flight write, landing late. SSM has no compare-and-swap: a run checks for a
rollback, then writes, and a rollback may finish in between. The fault proxy holds such a write
(`Hold`) and lets it land at an exact moment: right after the rollback's own write, during the
rollback's wait for in-flight writes, or after the rollback has returned (the residual window, which
`status --check` catches). The run that sent it is alive (it yields its flags back) or SIGKILLed (the
write lands all the same, as AWS applies a request it has received)."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.errors import Blocked, CutoverError, ExitCode
from cutover.testing.faultproxy import Faults, Hold
from cutover.model.plan import ROLLED_BACK

ROOT = Path(__file__).parents[2]


def advance_to(e2e, phase):
    while e2e.state().phase != phase:
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0


def outcome(fn):
    try:
        return fn().exit_code, ""
    except CutoverError as err:
        return err.exit_code, err.message


class WaitHook:
    """A rollback's log: when it starts waiting for in-flight writes, `on_wait` runs (the held write lands)."""

    def __init__(self, on_wait) -> None:
        self.on_wait = on_wait
        self.waits: list[dict] = []

    def info(self, event, **kw):
        if event == "in_flight_wait":
            self.waits.append(kw)
            self.on_wait()

    def warning(self, event, **kw):
        pass


def land(hold):
    hold.release()
    assert hold.landed.wait(30), "the held write never landed"


def dead_advance_with_a_write_in_flight(e2e, fault_proxy, tmp_path, hold, after_write=None):
    """A real `cutover advance` (shadow -> canary) whose write `hold` catches; SIGKILLed while it is held."""
    fault_proxy.reconfigure(Faults(holds=[hold], after_write=after_write))
    cmd = [sys.executable, "-m", "cutover", "--plan", str(ROOT / "tests/plans/e2e.yaml"), "--evidence-dir", str(tmp_path / "ev"),
           "advance", "--yes", "--approve", "--reason", "test"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert hold.arrived.wait(90), proc.communicate(timeout=5)
    finally:
        proc.kill()
        proc.communicate(timeout=30)


def assert_rolled_back(e2e):
    assert e2e.live() == e2e.plan.rollback_values()
    view = e2e.state()
    assert (view.phase, view.status, view.record.command) == (ROLLED_BACK, "stable", "rollback")
    assert orchestrator.status(e2e(dry_run=True), check=True).exit_code == ExitCode.OK


def test_a_late_write_landing_right_after_the_rollbacks_own_is_written_over_again(e2e, fault_proxy, tmp_path, reliability):
    with reliability.case("late write: a dead advance's in-flight write lands after the rollback's",
                          "fault proxy holds the advance's write, SIGKILLs it, lets the write land right after the rollback's write of the same flag"):
        advance_to(e2e, "shadow")
        hold = Hold("/e2e/mode", value="live")

        def after_write(operation, name, value):
            if name == "/e2e/mode" and value == "safe" and hold.arrived.is_set() and not hold.landed.is_set():
                land(hold)  # before the rollback even hears its write succeeded

        dead_advance_with_a_write_in_flight(e2e, fault_proxy, tmp_path, hold, after_write)
        out = orchestrator.rollback(e2e(), reason="incident")
        assert hold.landed.is_set()
        assert out.exit_code == 0, out.headline
        assert "written again after someone else changed them: mode" in out.lines
        assert_rolled_back(e2e)


def test_a_rollback_waits_out_a_live_advances_in_flight_write(e2e, fault_proxy, reliability):
    """The advance has checked for a rollback and sent its write; the write is held until the
    rollback waits for in-flight writes. The rollback reports success only after that write landed
    and was written over; the advance then sees the rollback and stops (exit 3)."""
    with reliability.case("late write: a live advance's in-flight write", "fault proxy holds the advance's write between its check and AWS, lands it during the rollback's wait"):
        advance_to(e2e, "shadow")
        hold = Hold("/e2e/mode", value="live")
        fault_proxy.reconfigure(Faults(holds=[hold]))
        advance = {}
        thread = threading.Thread(target=lambda: advance.update(
            result=outcome(lambda: orchestrator.advance(e2e(), approve=True, reason="test"))))
        thread.start()
        try:
            assert hold.arrived.wait(60)
            hook = WaitHook(lambda: land(hold))
            out = orchestrator.rollback(e2e(log=hook), reason="incident")
            landed_before_success = hold.landed.is_set()
            at_success = e2e.live()
        finally:
            hold.release()
            thread.join(60)
        assert out.exit_code == 0, out.headline
        assert landed_before_success, "the advance's write landed after the rollback reported success"
        assert at_success == e2e.plan.rollback_values()
        assert hook.waits and 0 < hook.waits[0]["seconds"] <= 5.0 and hook.waits[0]["preempted"] == "advance"
        assert any(line.startswith("waited ") and line.endswith("s for the preempted advance's in-flight write, then verified again")
                   for line in out.lines), out.lines
        code, message = advance["result"]
        assert code == ExitCode.BLOCKED and "preempted" in message, advance
        assert_rolled_back(e2e)


def test_a_dead_advances_write_landing_during_the_wait_is_written_over(e2e, fault_proxy, tmp_path, reliability):
    with reliability.case("late write: a dead advance's in-flight write", "fault proxy holds the write, SIGKILLs the advance, lands the write during the rollback's wait"):
        advance_to(e2e, "shadow")
        hold = Hold("/e2e/mode", value="live")
        dead_advance_with_a_write_in_flight(e2e, fault_proxy, tmp_path, hold)
        out = orchestrator.rollback(e2e(log=WaitHook(lambda: land(hold))), reason="incident")
        assert hold.landed.is_set() and out.exit_code == 0, out.headline
        assert "written again after someone else changed them: mode" in out.lines
        assert_rolled_back(e2e)


def test_a_write_landing_after_the_wait_is_what_status_check_catches(e2e, fault_proxy, tmp_path, reliability):
    """The residual window (README, safety model): a write that reaches AWS later than the wait. The
    rollback cannot see it; `status --check` does (exit 5, naming the flag), and a rollback repairs it."""
    with reliability.case("late write: beyond the rollback's wait (residual window)", "fault proxy lands a dead advance's write after the rollback returned"):
        advance_to(e2e, "shadow")
        hold = Hold("/e2e/mode", value="live")
        dead_advance_with_a_write_in_flight(e2e, fault_proxy, tmp_path, hold)
        assert orchestrator.rollback(e2e(), reason="incident").exit_code == 0
        land(hold)
        st = orchestrator.status(e2e(dry_run=True), check=True)
        assert st.exit_code == ExitCode.DRIFT and st.data["drift"] == ["mode"], st.headline
        assert orchestrator.rollback(e2e(), reason="again").exit_code == 0
        assert_rolled_back(e2e)


def test_an_advance_preempted_after_its_last_write_stops_and_records_nothing(e2e, reliability):
    """Stopped right after its last flag write; a rollback runs to the end; then it resumes. It must
    exit 3 and leave the rollback's record on top (no `interrupted` over `rolled_back`)."""
    from cutover.testing.counter import CallCounter

    with reliability.case("preempted advance resumes after the rollback finished", "the rollback runs to the end right after the advance's last flag write"):
        advance_to(e2e, "shadow")
        rt = e2e(counter=CallCounter())  # ports of its own: only this run's writes are wrapped below
        real_put = rt.aws.params.put

        def put(name, value, **kw):
            version = real_put(name, value, **kw)
            if name == "/e2e/allow" and value == "canary@example.com":  # the last flag of the canary
                assert orchestrator.rollback(e2e(), reason="incident").exit_code == 0
            return version

        rt.aws.params.put = put
        with pytest.raises(Blocked) as err:
            orchestrator.advance(rt, approve=True, reason="test")
        assert err.value.exit_code == ExitCode.BLOCKED and "preempted" in err.value.message
        assert_rolled_back(e2e)


def test_an_advance_racing_a_kill_switch_first_rollback_never_writes_a_flag_after_the_kill_switch(e2e, reliability):
    """Deterministic, no timing: the advance (shadow -> canary) has written its first flag; a full
    rollback writes its kill switch and is held right there, before its `rolling_back` marker. The
    advance must see the restored kill switch itself and stop before its next write (exit 3); released,
    the rollback finishes and every flag ends at its rollback value."""
    from cutover.testing.counter import CallCounter

    with reliability.case("preempted by a kill-switch-first rollback", "the rollback is held between its kill switch and its marker"):
        advance_to(e2e, "shadow")
        adv = e2e(counter=CallCounter())  # ports of their own: only this run's writes are wrapped
        rb = e2e(counter=CallCounter(), assume_yes=True)
        kill_switch_written, marker_may_go = threading.Event(), threading.Event()
        flag_writes_after_kill_switch: list[str] = []
        adv_put, adv_env, rb_put = adv.aws.params.put, adv.aws.functions.put_environment, rb.aws.params.put

        def advance_put(name, value, **kw):
            if kill_switch_written.is_set() and name.startswith("/e2e/"):
                flag_writes_after_kill_switch.append(name)
            version = adv_put(name, value, **kw)
            if name == "/e2e/kill":  # the advance's first flag: now the rollback starts, in another thread
                threading.Thread(target=lambda: result.update(rollback=outcome(
                    lambda: orchestrator.rollback(rb, reason="incident")))).start()
                assert kill_switch_written.wait(60), "the rollback never wrote its kill switch"
            return version

        def advance_env(function, variables, revision_id):
            if kill_switch_written.is_set():
                flag_writes_after_kill_switch.append(function)
            return adv_env(function, variables, revision_id)

        def rollback_put(name, value, **kw):
            if name == e2e.plan.state_parameter and not marker_may_go.is_set():
                assert marker_may_go.wait(60)  # held between the kill switch and the marker
            version = rb_put(name, value, **kw)
            if name == "/e2e/kill":
                kill_switch_written.set()
            return version

        result: dict = {}
        adv.aws.params.put, adv.aws.functions.put_environment, rb.aws.params.put = advance_put, advance_env, rollback_put
        try:
            code, message = outcome(lambda: orchestrator.advance(adv, approve=True, reason="test"))
        finally:
            marker_may_go.set()
        deadline = threading.Event()
        for _ in range(600):
            if "rollback" in result:
                break
            deadline.wait(0.1)
        assert code == ExitCode.BLOCKED and "preempted" in message, message
        assert flag_writes_after_kill_switch == [], flag_writes_after_kill_switch
        assert result["rollback"][0] == 0, result
        assert_rolled_back(e2e)
