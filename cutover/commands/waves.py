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
import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, NoReturn

from cutover.clock import Clock
from cutover.commands import orchestrator
from cutover.commands import preflight as pf
from cutover.commands import watch as watching
from cutover.commands.runtime import Runtime
from cutover.core import state
from cutover.errors import Blocked, CutoverError, ExitCode, GateFailed, Incomplete, UsageError
from cutover.model.durations import format_duration
from cutover.model.plan import ROLLED_BACK, Plan
from cutover.model.targets import RolloutTarget, next_step, rollback_waves
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

    def section(self) -> list[str]:
        """Its line, and its outcome's lines indented under it."""
        return [self.line(), *(f"    {x}" for x in (self.outcome.lines if self.outcome else []))]

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
    return rollback_waves(plan.targets, plan.waves, only)


def targets_by_wave(plan: Plan) -> list[list[RolloutTarget]]:
    """The targets of each wave, in wave order (as advance enters them)."""
    return [[t for t in plan.targets if t.name in w.targets] for w in plan.waves]


def run_on(targets: list[RolloutTarget], runtime_for: RuntimeFor, use_case: Callable[[Runtime], Outcome]) -> list[TargetResult]:
    """`use_case` on each target at once (each its own session, state and lock), in the order given."""
    return [TargetResult(t, outcome=out, error=err) for t, out, err in each_target(targets, lambda t: use_case(runtime_for(t)))]


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
    by_wave = targets_by_wave(plan)
    results = [r for wave in by_wave for r in run_on(wave, runtime_for, lambda rt: orchestrator.status(rt, check=True))]
    lines = []
    for wave, targets in zip(plan.waves, by_wave):
        lines.append(f"wave {wave.name}:")
        for r in results:
            if r.target in targets:
                lines.append(f"    {r.line()}")
                # What an interrupted run left in this target, and which command finishes it.
                lines += [f"        {why}" for why in (r.outcome.data.get("explain", []) if r.outcome else [])]
    behind = _rollback_stopped_between_waves(plan, results)
    lines += behind
    code = worst(results)
    if behind and code == ExitCode.OK:
        code = ExitCode.DRIFT  # (--check) not a place any command leaves every target in
    unhealthy = [r.target.name for r in results if r.exit_code != ExitCode.OK or (behind and _phase(r) in plan.phase_names)]
    data = {"targets": [r.to_dict() for r in results], "unhealthy": unhealthy}
    if unhealthy:
        headline = f"{len(unhealthy)} of {len(results)} target(s) need attention: {', '.join(unhealthy)}"
        hint = "see each target's line; restore every target: cutover rollback (one: cutover rollback --target NAME)"
    else:
        headline, hint = f"{len(results)} target(s): flags match the declared values", ""
    return Outcome(code if check else ExitCode.OK, headline, lines, data, hint=hint)


def _phase(r: TargetResult) -> str | None:
    return r.outcome.data.get("state", {}).get("phase") if r.outcome is not None else None


def _rollback_stopped_between_waves(plan: Plan, results: list[TargetResult]) -> list[str]:
    """A rollback restores later waves first: a later wave rolled back while an earlier one is still in a
    phase is a rollback that stopped between waves (or `rollback --target`). Each target alone looks
    healthy; together they are not where any advance or rollback leaves them."""
    phase = {r.target.name: _phase(r) for r in results}
    for i, wave in enumerate(plan.waves):
        rolled = [n for n in wave.targets if phase.get(n) == ROLLED_BACK]
        still = [n for w in plan.waves[:i] for n in w.targets if phase.get(n) in plan.phase_names]
        if rolled and still:
            return [f"wave {wave.name} is rolled back ({', '.join(rolled)}) but {', '.join(still)} of an earlier wave "
                    f"{'is' if len(still) == 1 else 'are'} still in {', '.join(sorted({phase[n] for n in still}))}: "
                    "a rollback that stopped between waves (or `cutover rollback --target`); "
                    "`cutover rollback` restores every target"]
    return []


def history(plan: Plan, runtime_for: RuntimeFor) -> Outcome:
    """Each target's state changes (its own record, in its account and region), wave by wave; a target
    that cannot be read is one line naming why, and the exit code is the worst target's, as for status."""
    by_wave = targets_by_wave(plan)
    results = [r for wave in by_wave for r in run_on(wave, runtime_for, orchestrator.history)]
    lines = []
    for r in results:
        if r.outcome is None:
            lines.append(f"target {r.line()}")
            continue
        lines.append(f"target {r.target.name} ({r.target.where}): {len(r.outcome.data['history'])} state change(s)")
        lines += [f"    {line}" for line in r.outcome.lines]
    unreadable = [r.target.name for r in results if r.outcome is None]
    data = {"targets": [r.to_dict() for r in results], "unreadable": unreadable}
    changes = sum(len(r.outcome.data["history"]) for r in results if r.outcome is not None)
    headline = f"{changes} state change(s) recorded in {len(results) - len(unreadable)} of {len(results)} target(s)"
    if unreadable:
        return Outcome(worst(results), headline + f"; not read: {', '.join(unreadable)}", lines, data,
                       hint="see each target's line for why; fix it and re-run `cutover history`")
    return Outcome(ExitCode.OK, headline, lines, data)


def unlock(plan: Plan, runtime_for: RuntimeFor, target: str, force: bool, reason: str) -> Outcome:
    """Break the lock of one target (each target has its own lock)."""
    [[one]] = rollback_order(plan, target)
    outcome = orchestrator.unlock(runtime_for(one), force, reason)
    return dataclasses.replace(outcome, headline=f"{one.name} ({one.where}): {outcome.headline}",
                               data={**outcome.data, "target": one.name})


def worst(results: list[TargetResult]) -> ExitCode:
    codes = {r.exit_code for r in results}
    return next((c for c in SEVERITY if c in codes), ExitCode.OK)


def each_target(targets: list, fn: Callable) -> list[tuple[object, object, CutoverError | None]]:
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
    runtimes, views = _where_every_target_is(plan, runtime_for)
    step = next_step(plan.phase_names, plan.waves, {name: v.phase for name, v in views.items()})
    if step is None:
        return Outcome(ExitCode.OK, f"nothing to do: every target is at the last phase, {plan.phases[-1].name}",
                       data={"targets": [t.name for t in plan.targets]})
    index, wave, movers = step
    phase = plan.phases[index]
    _wait_for_previous_wave(plan, wave, phase.name, views, clock)

    by_name = {t.name: t for t in plan.targets}
    movers_t = [by_name[n] for n in movers]
    decided = each_target(movers_t, lambda t: _decide(runtimes[t.name], approve, reason))
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
        gated = each_target(movers_t, lambda t: orchestrator.gate_advance(prepared[t.name][0], prepared[t.name][2], prepared[t.name][1]))
        if failed := [(t, out, e) for t, out, e in gated if e is not None or out is not None]:
            for t, out, _ in failed:
                if out is not None:
                    prepared[t.name][0].finish(prepared[t.name][1], out)
            lines = [f"{t.name} ({t.where}): {out.headline if out is not None else e.message}" for t, out, e in failed]
            return Outcome(ExitCode.GATE_FAILED, f"gates for {phase.name} failed in wave {wave.name}: "
                           f"{', '.join(t.name for t, _, _ in failed)}; nothing was written in any target", lines,
                           {"phase": phase.name, "wave": wave.name, "failed": [t.name for t, _, _ in failed]},
                           hint="fix what each failed gate says, then `cutover advance` again")
        entered = each_target(movers_t, lambda t: _enter(prepared[t.name]))
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


def _where_every_target_is(plan: Plan, runtime_for: RuntimeFor) -> tuple[dict[str, Runtime], dict[str, state.StateView]]:
    """Every target's Runtime and state record (read in parallel), or refused naming the targets that
    cannot be reached or read."""
    runtimes = dict(zip([t.name for t in plan.targets], [None] * len(plan.targets)))
    seen = each_target(list(plan.targets), lambda t: _read_view(runtimes, t, runtime_for))
    if failed := [r for r in seen if r[2] is not None or r[1].problem]:
        failed = [(t, v, e or Blocked(v.problem, v.fix)) for t, v, e in failed]
        _refuse(failed, "cannot tell where every target is")
    return runtimes, {t.name: v for t, v, _ in seen}


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


def preflight(plan: Plan, runtime_for: RuntimeFor, phase: str | None = None, skip: tuple[str, ...] = ()) -> Outcome:
    """The gates of the next step (or of --phase) in every target of that step's wave, read-only: a
    row per target; exit 1 naming the targets whose gates fail."""
    pf.check_choices(plan, phase, skip)  # before any AWS call
    runtimes, views = _where_every_target_is(plan, runtime_for)
    step = next_step(plan.phase_names, plan.waves, {name: v.phase for name, v in views.items()})
    if step is None and phase is None:
        raise UsageError(f"no next step: every target is at the last phase, {plan.phases[-1].name}", "name one with --phase")
    phase = phase or plan.phases[step[0]].name
    names = step[1].targets if step is not None else [t.name for t in plan.targets]
    where = f"wave {step[1].name}" if step is not None else "every target"
    targets = [t for t in plan.targets if t.name in names]
    results = [TargetResult(t, outcome=out, error=err)
               for t, out, err in each_target(targets, lambda t: pf.preflight(runtimes[t.name], phase, skip))]
    failed = [r.target.name for r in results if r.exit_code != ExitCode.OK]
    data = {"phase": phase, "wave": step[1].name if step is not None else None,
            "targets": [r.to_dict() for r in results], "failed": failed}
    lines = [line for r in results for line in r.section()]
    if failed:
        return Outcome(worst(results), f"preflight for {phase} in {where}: FAIL in {', '.join(failed)}", lines, data,
                       hint="fix each FAIL as its target's report says (its evidence), then run preflight again")
    return Outcome(ExitCode.OK, f"preflight for {phase} in {where}: PASS in {len(results)} target(s)", lines, data)


def watch(plan: Plan, runtime_for: RuntimeFor, clock: Clock, auto_rollback: bool, interval: float,
          show: Callable[[watching.Poll], None], max_polls: int | None = None) -> Outcome:
    """Every target that has entered a phase, polled together (alarms and drift per target) until each
    has baked. Trouble in any target ends the watch; with auto-rollback (or a watched phase's
    `auto_rollback`) EVERY target is rolled back, later waves first (exit 6)."""
    watching.check_interval(interval)
    begun = each_target(list(plan.targets), lambda t: watching.begin(runtime_for(t), auto_rollback))
    if failed := [r for r in begun if r[2] is not None]:
        _refuse(failed, "cannot watch")
    watched = {t: w for t, w, _ in begun if isinstance(w, watching.Watching)}
    if not watched:
        return Outcome(ExitCode.OK, "nothing to watch: no target has entered a phase", hint="advance first: cutover advance")
    roll_back = any(w.auto_rollback for w in watched.values())
    polls = 0
    while True:
        polled = each_target(list(watched), lambda t: _poll_one(t, watched[t]))
        polls += 1
        if failed := [r for r in polled if r[2] is not None]:
            target, _, err = failed[0]
            raise type(err)(f"watch stopped: {target.name} ({target.where}): {err.message}; nothing was changed", err.hint)
        for _, (p, _why), _ in polled:
            show(p)
        ended = {t: (p, why) for t, (p, why), _ in polled if why and p.event != "baked"}
        if ended or all(p.event == "baked" for _, (p, _), _ in polled):
            outcome = _watch_ending(plan, runtime_for, ended, roll_back, len(watched))
        elif max_polls is not None and polls >= max_polls:
            outcome = Outcome(ExitCode.OK, f"stopped after {polls} polls; {len(watched)} target(s) still baking")
        else:
            clock.sleep(min(watching.pause(p, interval) for _, (p, _), _ in polled if p.event != "baked"))
            continue
        outcome.lines = [f"{t.name} ({t.where}): {p.event}{': ' + why if why else ''}" for t, (p, why), _ in polled] + outcome.lines
        outcome.data["targets"] = {t.name: p.to_dict() for t, (p, _), _ in polled}
        for t, w in watched.items():  # each target's evidence: the watch's ending
            w.rt.finish(w.report, Outcome(outcome.exit_code, outcome.headline))
        return outcome


def _poll_one(target: RolloutTarget, w: "watching.Watching") -> tuple["watching.Poll", str]:
    p, now_view = watching.poll(w.rt, w.phase)
    p.target = target.name
    return p, watching.judge(w, p, now_view)


def _watch_ending(plan: Plan, runtime_for: RuntimeFor, ended: dict, roll_back: bool, watched: int) -> Outcome:
    """How a watch of several targets ends: trouble somewhere (rolled back everywhere, or the command
    to do it), a state changed by someone else, a bake with no judgement, or every target baked."""
    def named(events) -> str:
        return "; ".join(f"{t.name}: {why}" for t, (p, why) in ended.items() if p.event in events)

    if trouble := named(watching.TROUBLE):
        if not roll_back:
            return Outcome(ExitCode.GATE_FAILED, f"{trouble}; nothing was changed",
                           hint=orchestrator.rollback_now_hint(trouble))
        rolled = rollback(plan, runtime_for, reason=f"auto-rollback by watch: {trouble}")
        code = ExitCode.ROLLED_BACK if rolled.exit_code == ExitCode.OK else rolled.exit_code
        return Outcome(code, f"{trouble}: every target rolled back automatically ({rolled.headline})", rolled.lines,
                       {"rollback": rolled.data}, hint=rolled.hint)
    if elsewhere := named(("rolled_back_elsewhere",)):
        return Outcome(ExitCode.BLOCKED, elsewhere, hint="run `cutover status`")
    if unjudged := named(("unjudged",)):
        return Outcome(ExitCode.GATE_FAILED, unjudged, hint=watching.UNJUDGED_HINT)
    return Outcome(ExitCode.OK, f"{watched} target(s) baked with every alarm quiet and no drift",
                   hint="the next advance may proceed: cutover advance --reason \"...\"")
