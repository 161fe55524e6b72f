"""`status` and `rollback` of a plan with targets (issue 17): every target is one account and region
with its own state record and lock (under the plan's `state_prefix` there), so each is the single-target
use case run on that target's Runtime, and the answers are put together here.

A rollback restores every target, later waves first, the targets of a wave in parallel; it goes on past
a target that fails and names it with the command that retries it alone."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from cutover.commands import orchestrator
from cutover.commands.runtime import Runtime
from cutover.errors import CutoverError, ExitCode, UsageError
from cutover.model.plan import Plan
from cutover.model.targets import RolloutTarget
from cutover.outcome import Outcome

# A target's Runtime; raises CutoverError when the target cannot be reached (its role not assumable).
RuntimeFor = Callable[[RolloutTarget], Runtime]


@dataclass
class TargetResult:
    target: RolloutTarget
    outcome: Outcome | None = None
    error: CutoverError | None = None
    data: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return int(self.outcome.exit_code if self.outcome is not None else self.error.exit_code)

    @property
    def headline(self) -> str:
        if self.outcome is not None:
            return self.outcome.headline
        return self.error.message + (f"; {self.error.hint}" if self.error.hint else "")

    def line(self) -> str:
        return f"{self.target.name} ({self.target.where}): {self.headline}"

    def to_dict(self) -> dict:
        return {"target": self.target.name, "region": self.target.region, "account": self.target.account,
                "exit_code": self.exit_code, "headline": self.headline,
                **({"evidence": self.outcome.evidence_path} if self.outcome is not None and self.outcome.evidence_path else {}),
                **({"data": self.outcome.data} if self.outcome is not None else {})}


def rollback_order(plan: Plan, only: str | None = None) -> list[list[RolloutTarget]]:
    """The targets in the order a rollback restores them: later waves first, a wave's targets together."""
    if only is not None and only not in {t.name for t in plan.targets}:
        raise UsageError(f"--target {only}: no such target in {plan.path}",
                         f"targets are: {', '.join(t.name for t in plan.targets)}")
    by_name = {t.name: t for t in plan.targets}
    waves = [[by_name[n] for n in w.targets if only in (None, n)] for w in reversed(plan.waves)]
    return [w for w in waves if w]


def run_on(targets: list[RolloutTarget], runtime_for: RuntimeFor, use_case: Callable[[Runtime], Outcome]) -> list[TargetResult]:
    """`use_case` on each target at once (each its own session, state and lock), in the order given."""
    def one(target: RolloutTarget) -> TargetResult:
        try:
            return TargetResult(target, outcome=use_case(runtime_for(target)))
        except CutoverError as err:
            return TargetResult(target, error=err)

    # Each in a copy of the caller's context: what the command was invoked with (options) holds there too.
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return [f.result() for f in [pool.submit(contextvars.copy_context().run, one, t) for t in targets]]


def rollback(plan: Plan, runtime_for: RuntimeFor, reason: str = "", only: str | None = None,
             dry_run: bool = False) -> Outcome:
    results: list[TargetResult] = []
    for wave in rollback_order(plan, only):  # a wave is done (or failed) before the wave before it starts
        results += run_on(wave, runtime_for, lambda rt: orchestrator.rollback(rt, reason=reason))
    failed = [r for r in results if r.exit_code != ExitCode.OK]
    data = {"targets": [r.to_dict() for r in results], "failed": [r.target.name for r in failed], "dry_run": dry_run}
    lines = [r.line() for r in results]
    if failed:
        names = ", ".join(f"{r.target.name} ({r.target.where})" for r in failed)
        retry = " ; ".join(f"cutover rollback --target {r.target.name} --yes" for r in failed)
        return Outcome(ExitCode.INCOMPLETE, f"rollback incomplete: {len(failed)} of {len(results)} target(s) not restored: {names}",
                       lines, data, hint=f"fix what each says, then retry: {retry}")
    if not dry_run:
        return Outcome(ExitCode.OK, f"rolled back {len(results)} target(s), later waves first", lines, data)
    pending = [r for r in results if r.outcome.headline.startswith("dry run:")]  # (the others: nothing to do)
    if not pending:
        return Outcome(ExitCode.OK, f"nothing to do: every flag of {len(results)} target(s) is at its rollback value", lines, data)
    changes = sum(len(r.outcome.data.get("changes", [])) for r in pending)
    return Outcome(ExitCode.OK, f"dry run: rollback would change {changes} flag(s) in {len(pending)} of {len(results)} "
                   "target(s), later waves first", lines, data)


# --check: the worst answer of any target wins (bad flags or records first, then alarms).
SEVERITY = (ExitCode.DRIFT, ExitCode.INCOMPLETE, ExitCode.USAGE, ExitCode.BLOCKED, ExitCode.GATE_FAILED)


def status(plan: Plan, runtime_for: RuntimeFor, check: bool = False) -> Outcome:
    by_wave = [[t for t in plan.targets if t.name in w.targets] for w in plan.waves]
    results = [r for wave in by_wave for r in run_on(wave, runtime_for, lambda rt: orchestrator.status(rt, check=True))]
    lines = []
    for wave, targets in zip(plan.waves, by_wave):
        lines.append(f"wave {wave.name}:")
        for r in results:
            if r.target in targets:
                lines.append(f"    {r.line()}")
    codes = {r.exit_code for r in results}
    worst = next((c for c in SEVERITY if c in codes), ExitCode.OK)
    unhealthy = [r.target.name for r in results if r.exit_code != ExitCode.OK]
    data = {"targets": [r.to_dict() for r in results], "unhealthy": unhealthy}
    if unhealthy:
        headline = f"{len(unhealthy)} of {len(results)} target(s) need attention: {', '.join(unhealthy)}"
        hint = "see each target's line; restore every target: cutover rollback (one: cutover rollback --target NAME)"
    else:
        headline, hint = f"{len(results)} target(s): flags match the declared values", ""
    return Outcome(worst if check else ExitCode.OK, headline, lines, data, hint=hint)
