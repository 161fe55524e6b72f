"""`status`, `advance` and `rollback` of a plan with targets (issue 17): every target is one account and
region with its own state record and lock (under the plan's `state_prefix` there), so each is the
single-target use case (or its stages: decide, gate, enter) run on that target's Runtime, and the
answers are put together here.

An advance takes one step (phase, wave): every target of the wave decided and gated before any is written.

A rollback restores every target, later waves first, the targets of a wave in parallel; it goes on past
a target that fails and names it with the command that retries it alone."""

from __future__ import annotations

import contextlib
import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, NoReturn

from cutover.clock import Clock
from cutover.commands import orchestrator
from cutover.commands.runtime import Runtime
from cutover.core import state
from cutover.errors import Blocked, CutoverError, ExitCode, GateFailed, Incomplete, UsageError
from cutover.model.durations import format_duration
from cutover.model.plan import Plan
from cutover.model.targets import RolloutTarget, next_step
from cutover.outcome import Outcome

# A target's Runtime; raises CutoverError when the target cannot be reached (its role not assumable).
RuntimeFor = Callable[[RolloutTarget], Runtime]


@dataclass
class TargetResult:
    target: RolloutTarget
    outcome: Outcome | None = None
    error: CutoverError | None = None

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
    return [TargetResult(t, outcome=out, error=err) for t, out, err in _each(targets, lambda t: use_case(runtime_for(t)))]


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


def _each(targets: list, fn: Callable) -> list[tuple[object, object, CutoverError | None]]:
    """fn(target) for every target at once, each in a copy of the caller's context: (target, value, error)."""
    def one(target):
        try:
            return target, fn(target), None
        except CutoverError as err:
            return target, None, err
        except Exception as err:  # a bug in one target must not stop the others (a rollback above all)
            return target, None, Incomplete(f"stopped by an unexpected error ({type(err).__name__})",
                                            "run `cutover status`; re-run the command for this target")

    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return [f.result() for f in [pool.submit(contextvars.copy_context().run, one, t) for t in targets]]


def _refuse(failed: list[tuple[object, object, CutoverError | None]], what: str) -> NoReturn:
    """Stop the whole step, nothing written anywhere, naming each target and why."""
    target, _, err = failed[0]
    others = f" (and {', '.join(t.name for t, _, _ in failed[1:])})" if failed[1:] else ""
    raise type(err)(f"{what}: {target.name} ({target.where}): {err.message}{others}; nothing was written in any target",
                    err.hint)


def advance(plan: Plan, runtime_for: RuntimeFor, clock: Clock, approve: bool = False, reason: str = "",
            dry_run: bool = False, confirm: Callable[[str], bool] = lambda summary: True) -> Outcome:
    """One step: the next wave of the current phase, or the first wave of the next phase. Every target
    of the wave is decided and gated (under its lock) before any of them is written; then they are
    written in parallel, each paced to its own quota."""
    runtimes = dict(zip([t.name for t in plan.targets], [None] * len(plan.targets)))
    seen = _each(list(plan.targets), lambda t: _read_view(runtimes, t, runtime_for))
    if failed := [r for r in seen if r[2] is not None or r[1].problem]:
        failed = [(t, v, e or Blocked(v.problem, v.fix)) for t, v, e in failed]
        _refuse(failed, "cannot tell where every target is")
    views = {t.name: v for t, v, _ in seen}
    step = next_step(plan.phase_names, plan.waves, {name: v.phase for name, v in views.items()})
    if step is None:
        return Outcome(ExitCode.OK, f"nothing to do: every target is at the last phase, {plan.phases[-1].name}",
                       data={"targets": [t.name for t in plan.targets]})
    index, wave, movers = step
    phase = plan.phases[index]
    _wait_for_previous_wave(plan, wave, phase.name, views, clock)

    by_name = {t.name: t for t in plan.targets}
    movers_t = [by_name[n] for n in movers]
    decided = _each(movers_t, lambda t: _decide(runtimes[t.name], approve, reason))
    if failed := [r for r in decided if r[2] is not None]:
        _refuse(failed, f"entering {phase.name} in wave {wave.name} refused")
    prepared = {t.name: value for t, value, _ in decided}
    if not confirm(f"advance into {phase.name}, wave {wave.name}: " + ", ".join(f"{t.name} ({t.where})" for t in movers_t)):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
    with contextlib.ExitStack() as locks:  # every lock of the wave, before any gate
        for name, (rt, report, d, executor) in prepared.items():
            try:
                locks.enter_context(executor.holding_lock("advance"))
            except CutoverError as err:
                _refuse([(by_name[name], None, err)], f"entering {phase.name} in wave {wave.name} blocked")
        gated = _each(movers_t, lambda t: orchestrator.gate_advance(prepared[t.name][0], prepared[t.name][2], prepared[t.name][1]))
        if failed := [(t, out, e) for t, out, e in gated if e is not None or out is not None]:
            for t, out, _ in failed:
                if out is not None:
                    prepared[t.name][0].finish(prepared[t.name][1], out)
            lines = [f"{t.name} ({t.where}): {out.headline if out is not None else e.message}" for t, out, e in failed]
            return Outcome(ExitCode.GATE_FAILED, f"gates for {phase.name} failed in wave {wave.name}: "
                           f"{', '.join(t.name for t, _, _ in failed)}; nothing was written in any target", lines,
                           {"phase": phase.name, "wave": wave.name, "failed": [t.name for t, _, _ in failed]},
                           hint="fix what each failed gate says, then `cutover advance` again")
        entered = _each(movers_t, lambda t: _enter(prepared[t.name]))
    results = [TargetResult(t, outcome=out, error=e) for t, out, e in entered]
    failed = [r for r in results if r.exit_code != ExitCode.OK]
    data = {"phase": phase.name, "wave": wave.name, "targets": [r.to_dict() for r in results], "dry_run": dry_run,
            "failed": [r.target.name for r in failed]}
    lines = [r.line() for r in results]
    if failed:
        return Outcome(ExitCode.INCOMPLETE, f"entering {phase.name} in wave {wave.name} did not finish in "
                       f"{', '.join(r.target.name for r in failed)}", lines, data,
                       hint="run `cutover status`; re-run `cutover advance`, or restore every target: cutover rollback")
    if dry_run:
        changes = sum(len(r.outcome.data.get("changes", [])) for r in results)
        return Outcome(ExitCode.OK, f"dry run: gates pass in wave {wave.name}; entering {phase.name} there would change "
                       f"{changes} flag(s) in {len(results)} target(s)", lines, data)
    return Outcome(ExitCode.OK, f"entered {phase.name} in wave {wave.name}: {', '.join(movers)}", lines, data,
                   hint="`cutover status` shows every target; roll back any time: cutover rollback")


def _read_view(runtimes: dict, target: RolloutTarget, runtime_for: RuntimeFor) -> state.StateView:
    rt = runtimes[target.name] = runtime_for(target)
    return state.StateStore(rt.plan, rt.params).read()


def _wait_for_previous_wave(plan: Plan, wave, phase: str, views: dict, clock: Clock) -> None:
    """A wave's `bake`: how long every target of the wave before it must have held `phase`."""
    i = plan.waves.index(wave)
    if i == 0 or wave.bake <= 0:
        return
    before = plan.waves[i - 1]
    entered = [state.parse_iso(r.entered_at) for n in before.targets
               if (r := views[n].record) is not None and r.phase == phase and r.entered_at]
    if not entered:
        return
    left = wave.bake - (clock.now() - max(entered)).total_seconds()
    if left > 0:
        raise GateFailed(f"wave {wave.name} waits for wave {before.name} to hold {phase}: {format_duration(left)} left "
                         f"of {format_duration(wave.bake)}; nothing was written",
                         "wait for the bake to finish (`cutover status`), then `cutover advance` again")


def _decide(rt: Runtime, approve: bool, reason: str):
    report = rt.new_report("advance", reason=reason)
    d = orchestrator.decide_advance(rt, report, approve, reason, "advance", False, None)
    if isinstance(d, Outcome):  # this target has nothing to do: it is at the last phase already
        raise Blocked(d.headline, "run `cutover status`")
    return rt, report, d, orchestrator.advance_executor(rt)


def _enter(prepared) -> Outcome:
    rt, report, d, executor = prepared
    return rt.finish(report, executor.enter(d, report))
