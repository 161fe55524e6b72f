"""Races, each run many times with randomised timing (seeded): two advances at once, a rollback during
an advance, two rollbacks at once. Threads share nothing but AWS (the emulator), exactly as two
operators on two laptops share nothing but the account."""

import random
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cutover.commands import orchestrator
from cutover.errors import CutoverError
from cutover.plan.load import load_plan

ROOT = Path(__file__).parents[2]
RUNS = 50
# Tens of runs against the emulator: on a loaded 2-core machine one test takes up to about two minutes.
RACE_TIMEOUT = pytest.mark.timeout(600)


def outcome(fn):
    try:
        return fn().exit_code, ""
    except CutoverError as err:
        return err.exit_code, err.message


def run_together(*fns, jitter, rng, first_now=False):
    """Run each fn in its own thread after a random delay (the first at once when first_now)."""
    results = [None] * len(fns)

    def go(i, fn, delay):
        time.sleep(delay)
        results[i] = outcome(fn)

    delays = [0.0 if (first_now and i == 0) else rng.uniform(0, jitter) for i in range(len(fns))]
    threads = [threading.Thread(target=go, args=(i, fn, delays[i])) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def reset(e2e, emulator):
    from cutover.sandbox.seed import EmulatorSeeder

    seeder = EmulatorSeeder(emulator.endpoint, e2e.plan.region)
    for name in (e2e.plan.state_parameter, e2e.plan.lock_parameter):
        seeder.delete_parameter(name)
    e2e.set_flags(e2e.plan.rollback_values())


@pytest.fixture
def slow_gate_plan(e2e, tmp_path):
    """The e2e plan with a gate that takes a moment, so that two advances overlap."""
    text = (ROOT / "tests/plans/e2e.yaml").read_text()
    text = text.replace("checks:\n", "checks:\n  slow:\n    type: command\n    run: [sleep, \"0.3\"]\n")
    text = text.replace("gates: [env_ok, secrets_ok, quiet]", "gates: [env_ok, secrets_ok, quiet, slow]")
    path = tmp_path / "e2e.yaml"
    path.write_text(text)
    return load_plan(path)


@RACE_TIMEOUT
def test_two_advances_at_once_exactly_one_proceeds(e2e, emulator, slow_gate_plan, reliability):
    rng = random.Random(1)
    for run in range(RUNS):
        reset(e2e, emulator)
        with reliability.case("race: two advances at once", f"two threads, random start jitter up to 0.2 s, {RUNS} runs"):
            results = run_together(lambda: orchestrator.advance(e2e(plan=slow_gate_plan)),
                                   lambda: orchestrator.advance(e2e(plan=slow_gate_plan)), jitter=0.2, rng=rng)
            codes = sorted(code for code, _ in results)
            assert codes == [0, 3], (run, results)
            loser = next(msg for code, msg in results if code == 3)
            assert "the lock is held by" in loser, loser
            assert e2e.live() == e2e.plan.values_for("shadow")


@RACE_TIMEOUT
def test_rollback_during_an_advance_always_wins(e2e, emulator, reliability):
    """The advance into canary writes 3 flags; a rollback lands at a random moment. When the rollback
    exits 0 every flag is at its rollback value and stays there; the advance stops (exit 3) or had
    already finished before the rollback began."""
    import dataclasses

    slow_writes = dataclasses.replace(e2e.plan, write_rate=8)
    rng = random.Random(2)
    for run in range(RUNS):
        reset(e2e, emulator)
        assert orchestrator.advance(e2e()).exit_code == 0  # shadow
        with reliability.case("race: rollback during an advance", f"two threads, rollback starts at a random moment in 0-0.6 s, {RUNS} runs"):
            from cutover.clock import SystemClock

            adv = lambda: orchestrator.advance(e2e(plan=slow_writes, clock=SystemClock()), approve=True, reason="test")  # noqa: E731
            rb = lambda: orchestrator.rollback(e2e(), reason="race")  # noqa: E731
            (adv_code, adv_msg), (rb_code, rb_msg) = run_together(adv, rb, jitter=0.6, rng=rng, first_now=True)
            assert rb_code == 0, rb_msg
            assert adv_code in (0, 3), adv_msg
            if adv_code == 3:
                # Preempted mid-flip, or refused up front because the rollback had already begun (its
                # kill switch, written before its marker, is a flag that changed while the gates ran).
                assert any(w in adv_msg for w in ("preempted", "rollback is unfinished", "state changed",
                                                  "flags changed while the gates ran")), adv_msg
            # Stays there: nothing the advance did afterwards may have moved a flag.
            time.sleep(0.05)
            assert e2e.live() == e2e.plan.rollback_values(), (run, adv_code, adv_msg, _history(e2e))
            assert e2e.state().record.status == "stable" and e2e.state().phase == "rolled_back"


@RACE_TIMEOUT
def test_two_rollbacks_at_once_both_end_safe(e2e, emulator, reliability):
    rng = random.Random(3)
    for run in range(RUNS):
        reset(e2e, emulator)
        assert orchestrator.advance(e2e()).exit_code == 0
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0  # canary
        with reliability.case("race: two rollbacks at once", f"two threads, random start jitter up to 0.1 s, {RUNS} runs"):
            results = run_together(lambda: orchestrator.rollback(e2e()), lambda: orchestrator.rollback(e2e()),
                                   jitter=0.1, rng=rng)
            assert [code for code, _ in results] == [0, 0], results
            assert e2e.live() == e2e.plan.rollback_values()


def _history(e2e):
    """The state record's versions, for a failure message."""
    from cutover.core.state import StateStore

    return [(v, r.run_id, r.command, r.status, r.phase, r.target) for v, _, r, _ in StateStore(e2e.plan, e2e.direct()).history() if r]


PARTIAL_RUNS = 20


@RACE_TIMEOUT
def test_a_full_rollback_and_a_partial_one_at_once_end_fully_rolled_back(e2e, emulator, reliability):
    """From full, `rollback` and `rollback --to canary` at once. The full one always finishes (exit 0)
    and wins: the partial one finished before it began (0), was refused (2: nothing is before
    rolled_back; 3: a full rollback is in progress) or was preempted before its next write (3). The
    last one to finish leaves every flag at the rolled_back values and a true state record."""
    from cutover.core.state import StateRecord, StateStore

    rng = random.Random(4)
    seen = Counter()
    for run in range(PARTIAL_RUNS):
        reset(e2e, emulator)
        e2e.set_flags(e2e.plan.values_for("full"))  # as an advance into full leaves them (quicker)
        StateStore(e2e.plan, e2e().aws.params).write(StateRecord(phase="full", run_id="setup", command="advance"), e2e.clock)
        with reliability.case("race: a full rollback and a --to rollback at once",
                              f"two threads from full, random start jitter up to 0.3 s, {PARTIAL_RUNS} runs"):
            (full_code, full_msg), (to_code, to_msg) = run_together(
                lambda: orchestrator.rollback(e2e(), reason="full"), lambda: orchestrator.rollback(e2e(), to="canary", reason="partial"),
                jitter=0.3, rng=rng)
            seen[to_code] += 1
            assert full_code == 0, (run, full_msg)
            assert to_code in (0, 2, 3), (run, to_msg)
            if to_code == 3:
                assert "a full rollback is in progress" in to_msg or "preempted by `rollback`" in to_msg, to_msg
            assert e2e.live() == e2e.plan.rollback_values(), (run, to_code, to_msg, _history(e2e))
            view = e2e.state()
            assert (view.phase, view.status, view.record.reason) == ("rolled_back", "stable", "full"), (run, _history(e2e))
    print(f"--to rollback exit codes over {PARTIAL_RUNS} runs: {dict(seen)}")
