"""`advance`: read and decide (`decide_advance`), gate under the lock (`gate_advance`), then an executor:
`WritingAdvance` writes; a dry run's `DisplayOnlyAdvance` only says what would be written."""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
from pathlib import Path
from typing import Callable, Iterator, NoReturn

from cutover.core import evidence
from cutover.core import flags as flagmod
from cutover.core import machine
from cutover.core import state
from cutover.errors import Blocked, CutoverError, ExitCode, GateFailed, Incomplete
from cutover.gates.result import GateResult
from cutover.model.durations import format_duration
from cutover.model.plan import ROLLED_BACK, Phase
from cutover.core.notify import notify
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime
from cutover.ports import Param
from cutover.commands.transition import (
    Preempted, bake_remaining, blocking_checks, change_lines, check_not_clobbered, closed_windows,
    confirmation_text, gate_result_lines, read_all, rerun_hint, run_phase_gates, stop_if_preempted,
    write_unless_preempted, yield_and_stop,
)


@dataclasses.dataclass
class AdvanceDecision:
    """One advance as decided from a single read of the flags, the state record and the lock, before
    anything is written: the step, who approved it, and the read the writes are checked against."""

    current: str
    phase: Phase
    live: flagmod.Live
    view: state.StateView
    resuming: bool
    approver: str | None
    reason: str
    command: str
    again: str  # what a hint says to re-run: a dry run's hints stay dry runs
    results: list[GateResult] = dataclasses.field(default_factory=list)
    changes: list[flagmod.FlagChange] = dataclasses.field(default_factory=list)

    def data(self, report: evidence.Report, dry_run: bool) -> dict:
        return {"phase": self.current, "target": self.phase.name, "gates": report.gates, "changes": report.changes,
                "dry_run": dry_run, **({"approval": _approval_needed(self.phase)} if self.phase.approval else {})}


def advance(rt: Runtime, approve: bool = False, reason: str = "", command: str = "advance",
            accept_plan_change: bool = False, save_to: Path | None = None, saved: dict | None = None) -> Outcome:
    """Enter the next phase: read once and decide (every rule that needs no gate), run the gates under
    the lock, then hand the decision to an executor: `WritingAdvance` writes it; a dry run's
    `DisplayOnlyAdvance` only says what would be written. A dry run may save its decision (`save_to`);
    `saved` is such a decision, applied only if everything it was made on is unchanged (`commands.saved`)."""
    report = rt.new_report("advance", reason=reason)
    decided = decide_advance(rt, report, approve, reason, command, accept_plan_change, saved)
    if isinstance(decided, Outcome):
        return rt.finish(report, decided)
    executor = advance_executor(rt, save_to)
    with executor.holding_lock(command):
        failed = gate_advance(rt, decided, report)
        if failed is not None:
            return rt.finish(report, failed)
        return rt.finish(report, executor.enter(decided, report))


def advance_executor(rt: Runtime, save_to: Path | None = None) -> "DisplayOnlyAdvance | WritingAdvance":
    return DisplayOnlyAdvance(rt, save_to) if rt.dry_run else WritingAdvance(rt)


def gate_advance(rt: Runtime, d: AdvanceDecision, report: evidence.Report) -> Outcome | None:
    """The gates (under the lock): None when they let the advance through, with the decision's flag
    changes computed; else the outcome that says which failed (nothing written)."""
    failed = _run_advance_gates(rt, d, report)
    if failed is not None:
        return failed
    d.reason = _note_override(rt, d.results, d.reason)
    d.changes = flagmod.diff(rt.plan, rt.plan.values_for(d.phase.name), d.live)
    report.changes = [c.to_dict() for c in d.changes]
    return None


def decide_advance(rt: Runtime, report: evidence.Report, approve: bool, reason: str, command: str,
                    accept_plan_change: bool, saved: dict | None) -> AdvanceDecision | Outcome:
    """Read once, then every rule that needs no gate: refused (Blocked, GateFailed) or decided; an
    Outcome when there is nothing to do."""
    plan = rt.plan
    live, view, _ = read_all(rt)
    rec = view.record
    again = rerun_hint(rt, "advance")
    if view.problem:
        raise Blocked(f"refusing to advance: {view.problem}", view.fix)
    live.raise_unreadable()  # never advance on a partial view of the flags
    if rec is not None and rec.status == state.ROLLING_BACK:
        raise Blocked("a rollback is unfinished; finish it first: cutover rollback", "then advance again")
    current = view.phase
    phase = plan.next_phase(current)
    if phase is None:
        return Outcome(ExitCode.OK, f"nothing to do: {current} is the last phase", data={"phase": current})
    report.from_state, report.to_state = current, phase.name
    if saved is not None:  # before anything else is decided: the saved decision must still be the one
        from cutover.commands.saved import check

        check(saved, rt, view, current, phase.name)
        rt.notes.append(f"applying the advance saved at {saved.get('created_at')} (the gates run again now)")
    resuming = rec is not None and rec.status in (state.ADVANCING, state.INTERRUPTED)

    if rec is not None and rec.plan_digest and rec.plan_digest != plan.digest:
        from cutover.model.plandiff import describe, fingerprints

        change = f"the plan changed since the last transition ({describe(rec.plan_items, fingerprints(plan))})"
        if not (accept_plan_change or rt.dry_run):
            raise Blocked(f"{change}; nothing was written",
                          "review the change (git diff of the plan), then re-run with --accept-plan-change")
        rt.notes.append(change + (", accepted with --accept-plan-change" if accept_plan_change else ""))
    if not resuming:
        # Hand-edited flags: advancing would silently paper over them. A person should look first.
        declared = plan.values_for(current)
        drifted = [f.name for f in plan.flags if not flagmod.is_at(f, live.get(f.key), declared[f.name])]
        if drifted:
            raise Blocked(f"live flags differ from the recorded phase {current}: {', '.join(drifted)}; nothing was written",
                          f"run `cutover status` to see them; restore them with `cutover rollback` (or fix them by hand), then `{again}`")
    remaining = bake_remaining(rt, view)
    baking = (f"{current} is still baking: {format_duration(remaining)} left of {format_duration(plan.phase(current).bake)}"
              if remaining > 0 else "")
    approver = None
    if phase.approval and rt.dry_run and not approve:  # a preview needs no approval: it says who must give it
        approval = _approval_needed(phase)
        rt.notes.append(f"approval will be needed: entering {phase.name} takes --approve --reason TEXT, "
                        f"from {approval['approvers']}" + (f" other than whoever entered {current}" if phase.separate_approver else ""))
    elif phase.approval:
        try:
            approver = _check_approval(rt, phase, current, approve, reason, again)
        except Blocked as err:  # every reason at once: the approval and the bake
            if baking:
                raise Blocked(f"{err.message}; and {baking}",
                              f"wait for the bake to finish (`cutover watch` shows it), then: {err.hint}") from None
            raise
    if baking:
        raise GateFailed(baking, f"wait for the bake to finish (`cutover watch` shows it), then `{again}`")
    return AdvanceDecision(current=current, phase=phase, live=live, view=view, resuming=resuming, approver=approver,
                           reason=reason, command=command, again=again)


def _run_advance_gates(rt: Runtime, d: AdvanceDecision, report: evidence.Report) -> Outcome | None:
    """The phase's gates, through the state machine (the one authority on moves): None when they let
    the advance through, else the outcome that says which failed (nothing written)."""
    def gates_pass(p: Phase) -> bool:
        d.results.extend(run_phase_gates(rt, p))
        return not blocking_checks(d.results, rt.dry_run)

    entered = machine.build(rt.plan, ROLLED_BACK if d.current == ROLLED_BACK else d.current, gates_pass).advance()
    report.gates = [r.to_dict() for r in d.results]
    if entered:
        return None
    failed = blocking_checks(d.results, rt.dry_run)
    return Outcome(ExitCode.GATE_FAILED, f"gates for {d.phase.name} failed: {', '.join(failed)}; nothing was written",
                   gate_result_lines(d.results), {"phase": d.current, "target": d.phase.name, "gates": report.gates, "changes": []},
                   hint=f"fix what each failed gate says, then run `cutover preflight` and `{d.again}` again")


class DisplayOnlyAdvance:
    """A dry run's executor: the decision said, nothing written, no lock taken (the read-only AWS
    session below refuses any write as a second safeguard)."""

    def __init__(self, rt: Runtime, save_to: Path | None) -> None:
        self.rt, self.save_to = rt, save_to

    def holding_lock(self, command: str) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def enter(self, d: AdvanceDecision, report: evidence.Report) -> Outcome:
        rt, data = self.rt, d.data(report, True)
        if not_run := [r.check for r in d.results if r.status == "SKIPPED"]:
            rt.notes.append(f"dry run: not run (not read_only): {', '.join(not_run)}; the real advance runs them first")
        if d.phase.auto_rollback:
            rt.notes.append(f"{d.phase.name} has auto_rollback: true: entering it arms the guard first (see `cutover guard arm --dry-run`)")
        if self.save_to is not None:
            from cutover.commands.saved import save

            save(self.save_to, rt, d.view, data)
            rt.notes.append(f"saved to {self.save_to}: apply exactly this with `cutover advance --from {self.save_to}`")
        return Outcome(ExitCode.OK, f"dry run: gates pass; advancing {d.current} -> {d.phase.name} would change "
                       f"{len(d.changes)} flag(s)", gate_result_lines(d.results) + change_lines(d.changes), data)


class WritingAdvance:
    """The executor that writes: under the lock, the guard armed first where the phase wants it, the
    state marked `advancing`, the flags converged (yielding to any rollback before each write), the
    phase recorded, SNS told."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @contextlib.contextmanager
    def holding_lock(self, command: str) -> Iterator[None]:
        rt = self.rt
        lease = state.acquire(rt.plan, rt.params, rt.clock, holder=rt.identity().arn, command=command,
                              run_id=rt.run_id, log=rt.log)
        if lease.taken_over is not None:
            rt.notes.append(f"took over a stale lock from {lease.taken_over.holder} ({lease.taken_over.command})")
        self.lease = lease
        try:
            yield
        finally:
            try:
                lease.release()
            except CutoverError:
                pass

    def enter(self, d: AdvanceDecision, report: evidence.Report) -> Outcome:
        rt, plan, phase, rec, changes = self.rt, self.rt.plan, d.phase, d.view.record, d.changes
        data = d.data(report, False)
        gate_lines = gate_result_lines(d.results)
        if not rt.confirm(confirmation_text(rt, f"advance {d.current} -> {phase.name}", changes)):
            raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
        # The gates (and the confirmation) took a while: a window that has closed since stops us here.
        if closed := closed_windows(rt, phase):
            report.gates += [r.to_dict() for r in closed]
            return Outcome(ExitCode.GATE_FAILED, f"the window closed while the gates ran: {', '.join(r.check for r in closed)}; "
                           "nothing was written", gate_lines + gate_result_lines(closed), {**data, "gates": report.gates, "changes": []},
                           hint="advance again when the window is open")
        if phase.auto_rollback:
            _arm_guard(rt, phase)
        ident = rt.identity()
        store = state.StateStore(plan, rt.params)
        now_view = _recheck_before_first_write(rt, d.live, d.view)
        base = rec.phase if (d.resuming and rec) else d.current
        record = functools.partial(state.StateRecord, actor=ident.arn, run_id=rt.run_id, plan_digest=plan.digest,
                                   command=d.command, reason=d.reason)
        marked = store.write(record(phase=base, status=state.ADVANCING, target=phase.name,
                                    entered_at=rec.entered_at if rec else "", approved_by=d.approver), rt.clock)
        check_not_clobbered(rt, store, marked, now_view.version)

        def before_write(state_param: Param | None) -> None:
            stop_if_preempted(rt, state_param, lambda seen: True)
            self.lease.renew_if_due()

        def overtaken(flag: str) -> NoReturn:
            raise Preempted(f"preempted: {flag} was changed by someone else while advancing (a rollback writes its "
                            "kill switch first); stopped before the next write", "run `cutover status`; the rollback owns the flags now")

        converger = rt.converger(before_write=before_write, watch=_rollback_firsts(plan, d.live), overtaken=overtaken)
        rt.progress.begin(f"advance {d.current} -> {phase.name}", changes)
        try:
            result = converger.run(changes)
            # A rollback may have started after our last write: never record over it.
            write_unless_preempted(rt, store, record(phase=phase.name, status=state.STABLE, entered_at=state.iso(rt.clock.now()),
                                                      approved_by=d.approver), before_write, marked)
        except Preempted as err:
            yield_and_stop(rt, report, data, changes, err)
        except Incomplete as err:
            report.changes = [c.to_dict() for c in changes]
            try:
                _mark_interrupted(rt, store, base, phase.name, d.reason, before_write, marked)
            except Preempted as preempted:  # the flags we could not confirm were a rollback's by then
                yield_and_stop(rt, report, data, changes, preempted)
            notify(rt, f"advance to {phase.name} INTERRUPTED", [err.message, "run `cutover status`; re-run or roll back"])
            rt.finish(report, Outcome(err.exit_code, err.message, data=data))
            raise
        report.changes = [c.to_dict() for c in result.changes]
        data["changes"] = report.changes
        notify(rt, f"entered {phase.name}", [f"{d.current} -> {phase.name} by {ident.arn}", f"{len(changes)} flag(s) changed",
                                             *([f"approved by {d.approver}"] if d.approver else []), f"reason: {d.reason or '-'}"])
        return Outcome(ExitCode.OK, f"entered {phase.name}: {len(changes)} flag(s) changed and confirmed",
                       gate_lines + change_lines(changes), data,
                       hint=f"watch it bake: cutover watch ({_bake_text(phase)}); roll back any time: cutover rollback")


def _rollback_firsts(plan, live: dict[str, Param]) -> dict[str, Param]:
    """The SSM flag a full rollback would write first, as read now: the first one in plan order not at
    its rollback value (none when every flag is; the advance's own first write is watched too)."""
    for f in plan.ssm_flags:
        if not flagmod.is_at(f, live.get(f.key), f.rollback):
            return {f.parameter: live[f.key]} if f.key in live else {}
    return {}


def _note_override(rt: Runtime, results: list[GateResult], reason: str) -> str:
    """Window checks passed by --outside-window: said in the run's notes (evidence, output) and in the
    reason the state record and history keep. Returns that reason."""
    from cutover.checks.window import OVERRIDDEN

    overridden = [r.check for r in results if r.type == "window" and r.detail.startswith(OVERRIDDEN)]
    if not overridden:
        return reason
    who = rt.identity().arn
    rt.notes.append(f"outside the window of {', '.join(overridden)}: --outside-window by {who}, reason: {reason}")
    return f"--outside-window ({', '.join(overridden)}): {reason}"


def _recheck_before_first_write(rt: Runtime, live: flagmod.Live, view: state.StateView) -> state.StateView:
    """The gates took a while: if anyone changed the state or a flag meanwhile (a rollback above all,
    or a hand edit), the decision to advance was taken on stale facts. Stop before the first write."""
    fresh, now_view, _ = read_all(rt)
    if now_view.version != view.version:
        who = now_view.record.actor if now_view.record else "someone"
        raise Preempted(f"the state changed while the gates ran ({who}: {now_view.status}); nothing was written",
                        "run `cutover status`, then advance again if that is still right")
    fresh.raise_unreadable()
    moved = [f.name for f in rt.plan.flags if _moved(live.get(f.key), fresh.get(f.key))]
    if moved:
        raise Blocked(f"flags changed while the gates ran: {', '.join(moved)}; nothing was written",
                      "run `cutover status` to see them; restore them with `cutover rollback` (or fix them by hand), then advance")
    return now_view


def _moved(before: Param | None, now: Param | None) -> bool:
    """A flag changed between two reads (a re-read older than the first is a stale read, not a change)."""
    if before is not None and now is not None and now.version and now.version < before.version:
        return False
    return (before and (before.value, before.type)) != (now and (now.value, now.type))


def _approval_needed(phase: Phase) -> dict:
    return {"needed": True, "approvers": ", ".join(phase.approvers) or "anyone",
            "separate_approver": bool(phase.separate_approver)}


def _check_approval(rt: Runtime, phase: Phase, current: str, approve: bool, reason: str, again: str) -> str:
    """Who approves entering `phase`, after checking they may. Blocked (exit 3) with the reason otherwise."""
    if not approve or not reason.strip():
        raise Blocked(f"entering {phase.name} needs explicit approval: --approve and --reason",
                      f'{again} --approve --reason "why {phase.name} may start now"')
    who = rt.identity().arn
    if phase.approvers and not any(fnmatch.fnmatchcase(who, pattern) for pattern in phase.approvers):
        raise Blocked(f"{who} may not approve entering {phase.name}",
                      f"an approver must match one of: {', '.join(phase.approvers)}")
    if phase.separate_approver:
        entered_by = _entered_by(rt, current)
        if entered_by == who:
            raise Blocked(f"{who} entered {current} and so may not approve entering {phase.name} (four eyes)",
                          "ask another approver to run the advance")
    rt.notes.append(f"approved by {who}: {reason}")
    return who


def _entered_by(rt: Runtime, phase: str) -> str | None:
    """The actor of the last transition that completed into `phase`."""
    for _, _, rec, _ in reversed(state.StateStore(rt.plan, rt.params).history()):
        if rec is not None and rec.status == state.STABLE and rec.phase == phase and rec.command in ("advance", "rollback"):
            return rec.actor
    return None


def _arm_guard(rt: Runtime, phase: Phase) -> None:
    """Entering an `auto_rollback` phase arms the rollback inside AWS first; if that cannot be done,
    the phase is not entered (exit 3): it would run unprotected whenever no `watch` is running."""
    from cutover.commands import guard

    if rt.guard_store is None:
        raise Blocked(f"{phase.name} has auto_rollback: true, and the guard cannot be armed from here; nothing was written",
                      "run `cutover guard arm` first, or remove auto_rollback from the phase")
    try:
        armed = guard.arm(rt, rt.guard_store())
    except CutoverError as err:
        raise Blocked(f"{phase.name} has auto_rollback: true, and arming the guard failed: {err.message}; "
                      "nothing was written", err.hint or "run `cutover guard status`") from None
    rt.notes.append(f"guard: {armed.headline}")


def _bake_text(phase: Phase) -> str:
    return f"bake {format_duration(phase.bake)}" if phase.bake else "no bake"


def _mark_interrupted(rt: Runtime, store: state.StateStore, phase: str, target: str, reason: str,
                      check: Callable[[Param | None], None], known_version: int) -> None:
    """Best effort: an AWS failure mid-flip is recorded so `status` explains it (a crash is explained
    by the stale `advancing` record and the dead lock instead). Never over a rollback's record: a
    preempted advance raises Preempted instead, writing nothing."""
    try:
        ident = rt.identity()
        write_unless_preempted(rt, store, state.StateRecord(
            phase=phase, status=state.INTERRUPTED, target=target, actor=ident.arn, run_id=rt.run_id,
            plan_digest=rt.plan.digest, command="advance", reason=reason), check, known_version)
    except Preempted:
        raise
    except CutoverError:
        pass
