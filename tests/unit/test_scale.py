"""Work that must grow linearly with the number of flags, measured by counting executed lines (the
same count on any machine, however loaded), never by timing. Linear work done for 4x the flags runs
about 4x the lines; a quadratic corner runs about 16x."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cutover.core import flags
from cutover.compile import guard
from cutover.compile import iam
from cutover.compile import runbook
from cutover.testing.clock import FakeClock
from cutover.plan.load import load_plan
from tests.fakes import FakeParameterStore

SMALL, LARGE = 60, 240  # 4x the flags
LINEAR = 4 * 1.25  # allowance for fixed costs and rounding; quadratic work would reach ~16


def plan_with(tmp_path: Path, n: int):
    """n SSM flags, every other one sensitive, over three phases."""
    lines = ["version: 1", f"name: scale{n}", "region: us-east-2", "write_rate: 3", "flags:"]
    for i in range(n):
        lines += [f"  f{i:04d}:", f"    parameter: /scale/f{i:04d}", '    rollback: "off-value"']
        lines += ["    sensitive: true"] if i % 2 else []
    lines += ["checks: {}", "phases:"]
    third = -(-n // 3)
    for p in range(3):
        sets = ", ".join(f'f{i:04d}: "on-value-{i:04d}"' for i in range(p * third, min(n, (p + 1) * third)))
        lines += [f"  - name: p{p}", f"    set: {{{sets}}}"]
    path = tmp_path / f"scale{n}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_plan(str(path))


def lines_run(work) -> int:
    """How many lines of cutover's own code `work()` executes (loop iterations included)."""
    count = 0

    def trace(frame, event, arg):
        nonlocal count
        if "/cutover/" not in frame.f_code.co_filename:
            return None
        if event == "line":
            count += 1
        return trace

    sys.settrace(trace)
    try:
        work()
    finally:
        sys.settrace(None)
    return count


def render(plan):
    return lambda: runbook.render(plan)


def rollback(plan):
    store = FakeParameterStore()
    for f in plan.flags:
        store.put(f.parameter, plan.values_for(plan.phases[-1].name)[f.name])
    converger = flags.Converger(plan, store, FakeClock())
    live = flags.read_live(plan, store)
    return lambda: converger.restore(plan.rollback_values(), live)


def policies(plan):
    return lambda: (iam.policy(plan), guard.automation_policy(plan, "123456789012"))


def guard_document(plan):
    # Each layout on its own: a plan past 64 KB in one step per flag is built in both (a constant twice).
    return lambda: guard.build_document(plan, "123456789012", compact=False)


def compact_guard_document(plan):
    return lambda: guard.build_document(plan, "123456789012", compact=True)


@pytest.mark.parametrize("work", [render, rollback, policies, guard_document, compact_guard_document],
                         ids=["runbook", "rollback-converger", "iam-policies", "guard-document", "compact-guard-document"])
def test_grows_linearly_with_the_flags(tmp_path, work):
    small, large = plan_with(tmp_path, SMALL), plan_with(tmp_path, LARGE)
    work(small)()  # imports and first-use caches are not the work being measured
    ratio = lines_run(work(large)) / lines_run(work(small))
    assert ratio < LINEAR, f"{LARGE} flags ran {ratio:.1f}x the lines of {SMALL}: something is quadratic"
