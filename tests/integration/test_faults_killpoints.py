"""Kill points: a real `cutover` process is SIGKILLed right after its k-th AWS write has been applied,
for every k, for an advance into every phase and a rollback from every phase. After each kill,
`status` explains what was interrupted, and both `rollback` and re-running the interrupted command
converge. The kill comes from the fault proxy, outside the process: nothing in cutover can see it coming.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.core import state
from cutover.errors import ExitCode
from cutover.testing.faultproxy import Faults
from cutover.sandbox.emulator import OTHER_VARIABLES

ROOT = Path(__file__).parents[2]
# Each test runs a real CLI process per kill point (about ten), each seeded from scratch: on a loaded
# 2-core machine that can run past the suite's default 300 s.
pytestmark = pytest.mark.timeout(900)
HOW = "fault proxy SIGKILLs the CLI process right after its k-th write is applied, for every k"


def setup_at(e2e, phase):
    """A clean emulator at `phase` (state recorded, flags declared), with no lock."""
    while state.StateStore(e2e.plan, e2e().aws.params).read().phase != phase:
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0


def run_cli(proxy, args, kill_after, tmp_path, plan=ROOT / "tests/plans/e2e.yaml"):
    proxy.reconfigure(Faults(kill_after_writes=kill_after))
    cmd = [sys.executable, "-m", "cutover", "--plan", str(plan),
           "--evidence-dir", str(tmp_path / "ev"), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    proxy.faults.kill_pid = proc.pid  # the child needs far longer than this to make its first call
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    return proc.returncode


def reset(e2e, emulator):
    """Back to pending: no state record, no lock, every flag at its rollback value (cheaper than
    re-seeding the whole emulator for each of the ~30 kill points)."""
    from cutover.sandbox.seed import EmulatorSeeder

    seeder = EmulatorSeeder(emulator.endpoint, e2e.plan.region)
    for name in (e2e.plan.state_parameter, e2e.plan.lock_parameter):
        seeder.delete_parameter(name)
    e2e.set_flags(e2e.plan.rollback_values())


OTHERS = {"e2e-worker": dict(OTHER_VARIABLES)}  # as seeded: no command may change them
CASES = [("advance", start, target) for start, target in (("pending", "shadow"), ("shadow", "canary"), ("canary", "full"))]
CASES += [("rollback", start, "rolled_back") for start in ("shadow", "canary", "full")]


@pytest.mark.parametrize("command,start,target", CASES, ids=[f"{c}-from-{s}" for c, s, _ in CASES])
def test_kill_after_every_write(command, start, target, e2e, emulator, fault_proxy, tmp_path, reliability):
    args = ["advance", "--yes", "--approve", "--reason", "test"] if command == "advance" else ["rollback", "--yes"]
    k = 0
    while True:
        k += 1
        reset(e2e, emulator)
        fault_proxy.reconfigure(Faults())
        setup_at(e2e, start)
        code = run_cli(fault_proxy, args, k, tmp_path)
        if code != -signal.SIGKILL:
            # Fewer than k writes: the command ran to the end without being killed.
            assert code == 0 and e2e.live() == e2e.plan.values_for(target)
            break
        ok = False
        try:
            check_recovery(e2e, command, start, target, k)
            ok = True
        finally:
            reliability.record("kill points (SIGKILL after the k-th write)", HOW, ok)
    assert k > 3  # lock, state, a flag... every write of the command was a kill point


def check_recovery(e2e, command, start, target, k):
    fault_free = lambda **kw: e2e(**kw)  # noqa: E731  (through the proxy, now without faults)
    # A kill right after a Lambda update: the function's other variables are whole, whatever k is.
    assert e2e.others() == OTHERS
    view = state.StateStore(e2e.plan, fault_free().aws.params).read()
    st = orchestrator.status(fault_free(dry_run=True), check=True)
    text = "\n".join([st.headline, *st.lines])
    if view.record is not None and view.record.status != "stable":
        # Killed mid-transition: status names the interruption and which flags are on which side.
        assert st.exit_code == ExitCode.DRIFT and "was interrupted" in text, text
        if view.record.target != view.record.phase and command == "advance":
            assert f"mixed between {start} and {target}" in text, text
    elif command == "rollback" and k == 1:
        # A rollback writes the kill switch first, then marks the state: killed in between, the record
        # still says `stable` and status names the restored flag as drift, with what it means.
        first = next(f.name for f in e2e.plan.flags if e2e.plan.values_for(start)[f.name] != f.rollback)
        assert st.exit_code == ExitCode.DRIFT and st.data["drift"] == [first], text
        assert "a rollback that" in text and "cutover rollback" in st.hint, text  # (either explanation line)
    else:
        # Killed before the state was marked, or after it was finalised: no drift to report.
        assert st.exit_code == ExitCode.OK, text
    if k % 2:
        # Odd k: the on-call engineer rolls back straight away...
        assert orchestrator.rollback(fault_free()).exit_code == 0
        assert e2e.live() == e2e.plan.rollback_values()
    else:
        # ...even k: the operator re-runs the interrupted command, which converges to its target.
        if command == "advance":
            out = orchestrator.advance(fault_free(), approve=True, reason="test")
            # A kill after the final state write leaves the phase entered: the re-run moves one further.
            entered = state.StateStore(e2e.plan, fault_free().aws.params).read().phase
            assert out.exit_code == 0 and entered in (target, e2e.plan.next_phase(target).name if e2e.plan.next_phase(target) else target)
            assert e2e.live() == e2e.plan.values_for(entered)
        else:
            assert orchestrator.rollback(fault_free()).exit_code == 0
            assert e2e.live() == e2e.plan.rollback_values()
    assert orchestrator.status(fault_free(dry_run=True), check=True).exit_code == ExitCode.OK
    assert e2e.others() == OTHERS
