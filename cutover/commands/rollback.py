"""`rollback`: read and decide (`decide_rollback`), then an executor: `WritingRollback` (kill switch first,
never gated, never waits for the lock) or, for a dry run, `DisplayOnlyRollback`."""

from __future__ import annotations

import dataclasses
from typing import Callable

from cutover.core import evidence
from cutover.core import flags as flagmod
from cutover.core import machine
from cutover.model import program
from cutover.core import state
from cutover.errors import Blocked, CutoverError, ExitCode, Incomplete, UsageError
from cutover.model.plan import PENDING, ROLLED_BACK
from cutover.core.notify import notify
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime
from cutover.ports import Param
from cutover.commands.transition import (
    Preempted, change_lines, check_not_clobbered, confirmation_text, is_full_rollback, is_rollback, read_all,
    rerun_hint, stop_if_preempted, write_unless_preempted, yield_and_stop,
)


@dataclasses.dataclass
class RollbackDecision:
    """One rollback as decided from a single read of the flags (or the first ones), the state record and the lock: where to
    (the rollback values, or a phase for `--to`), the flag changes, and the read the writes check against."""

    current: str
    dest: str
    to: str | None
    live: flagmod.Live
    view: state.StateView
    lock: state.LockRecord | None
    rec: state.StateRecord | None
    target: dict[str, str]
    changes: list[flagmod.FlagChange]
    reason: str
    data: dict
    # Only the kill switch is decided (`changes`), from a read of the first flags: the executor reads
    # every other flag once it is written, while the marker waits for its write slot.
    rest_unread: bool = False


def rollback(rt: Runtime, to: str | None = None, reason: str = "") -> Outcome:
    """Never gated, never waits for the lock. Works with a missing or corrupt state record. Flags
    first: a state record that cannot be written is reported once every flag is restored.

    A full rollback is never stopped. A `--to` rollback stops before its next write when another
    rollback takes over (a full one, or a later `--to`), and never starts over a full one.

    Read and decide (`decide_rollback`), then execute: `WritingRollback`, or for a dry run
    `DisplayOnlyRollback`, which only says what would be written."""
    report = rt.new_report("rollback", reason=reason)
    decided = decide_rollback(rt, report, to, reason)
    if isinstance(decided, Outcome):
        return rt.finish(report, decided)
    executor = DisplayOnlyRollback(rt) if rt.dry_run else WritingRollback(rt)
    return executor.enter(decided, report)


def decide_rollback(rt: Runtime, report: evidence.Report, to: str | None, reason: str) -> RollbackDecision | Outcome:
    """One read, then the rules of a `--to` (refused before anything is written) and the flag changes;
    an Outcome when there is nothing to do. A full rollback with `--yes` whose first change shows in
    one small read decides only that change (the kill switch): the other flags are read once it is
    written (`rest_unread`)."""
    plan = rt.plan
    if to is not None and to not in plan.phase_names:  # (before any read: a typo must not wait for AWS)
        raise UsageError(f"--to {to}: no such phase in {plan.path}", f"phases are: {', '.join(plan.phase_names)}")
    dest = to or ROLLED_BACK
    target = {f.name: v for f, v in program.targets(plan, dest)}
    early = _read_up_to_the_kill_switch(rt, target) if to is None and rt.assume_yes and not rt.dry_run else None
    if early is not None:
        live, kill_switch = early
        view, lock = state.interpret(plan, live.get(plan.state_parameter)), state.parse_lock(live.get(plan.lock_parameter))
    else:
        live, view, lock = read_all(rt)
    rec = None if view.problem else view.record
    current = view.phase if not view.problem else "unknown"

    if to is not None:
        # An earlier phase (the machine's rollback_to_<phase>), or the current one: its declared values
        # written again where they drifted (or where an unfinished advance out of it wrote).
        back = to == current or machine.allows(plan, current, f"rollback_to_{to}")
        if view.problem or not back:
            raise UsageError(f"--to {to} must name the current phase ({current}) or one before it",
                             f"use plain `{rerun_hint(rt, 'rollback')}` to return every flag to its known-safe value")
        if rec.status == state.ROLLING_BACK and is_full_rollback(rec) and rec.run_id != rt.run_id:
            raise Blocked(f"a full rollback is in progress (run {rec.run_id} of {rec.actor or 'someone'}); "
                          f"--to {to} would undo it; nothing was written",
                          "wait for it to finish (`cutover status`); if it died, finish it: cutover rollback")
    note_unreadable_functions(rt, live)
    report.from_state, report.to_state = current, dest
    changes = [kill_switch] if early is not None else flagmod.diff(plan, target, live)
    report.changes = [c.to_dict() for c in changes]
    data = {"from": current, "to": dest, "changes": report.changes, "dry_run": rt.dry_run}
    settled = rec is not None and rec.status == state.STABLE and rec.phase == dest
    never_started = rec is None and not view.problem and dest == ROLLED_BACK
    if not changes and (settled or never_started):
        return Outcome(ExitCode.OK, f"nothing to do: every flag is already at its {dest} value", ["no flag changes"], data)
    return RollbackDecision(current=current, dest=dest, to=to, live=live, view=view, lock=lock, rec=rec, target=target,
                            changes=changes, reason=reason, data=data, rest_unread=early is not None)


def _read_up_to_the_kill_switch(rt: Runtime, target: dict[str, str]) -> tuple[flagmod.Live, flagmod.FlagChange] | None:
    """One GetParameters call: the state record, the lock and the SSM flags that come first in
    rollback order. Their first change (only if every flag before it was read) is the kill switch, and
    nothing else needs reading before it is written. None when that call does not show it (the first
    flags are already safe, or a Lambda flag comes first): then everything is read first, as before."""
    plan = rt.plan
    leading = flagmod.leading_ssm_flags(plan, flagmod.READ_BATCH - 2)
    if not leading:
        return None
    live = flagmod.read_params(plan, rt.params, [plan.state_parameter, plan.lock_parameter, *(f.parameter for f in leading)])
    first = flagmod.diff(plan, {f.name: target[f.name] for f in leading if f.name in target}, live)[:1]
    return (live, first[0]) if first else None


def note_unreadable_functions(rt: Runtime, live: flagmod.Live) -> None:
    for function, err in live.unreadable.items():  # its flags are written anyway, after the ones before them
        rt.notes.append(f"cannot read Lambda function {function} ({err.message}): its flags show as (missing) "
                        "and are written after the flags before them in rollback order")


class DisplayOnlyRollback:
    """A dry run's executor: what the rollback would write, nothing written (the read-only AWS session
    below refuses any write as a second safeguard)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def enter(self, d: RollbackDecision, report: evidence.Report) -> Outcome:
        return self.rt.finish(report, Outcome(ExitCode.OK, f"dry run: rollback {d.current} -> {d.dest} would change "
                                              f"{len(d.changes)} flag(s)", change_lines(d.changes), d.data))


class WritingRollback:
    """The executor that writes: the kill switch first, the `rolling_back` marker in the next write
    slot (first, for a `--to`), every flag converged and confirmed, in-flight writes of a preempted run
    waited out, the record, SNS told. It finishes its report itself: a failure is evidence too."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def enter(self, d: RollbackDecision, report: evidence.Report) -> Outcome:
        rt, plan = self.rt, self.rt.plan
        current, dest, to, live, view, lock, rec = d.current, d.dest, d.to, d.live, d.view, d.lock, d.rec
        target, changes, reason, data = d.target, d.changes, d.reason, d.data
        # (The confirmation names the account: with --yes nobody reads it, and the kill switch need not wait for STS.)
        if not rt.assume_yes and not rt.confirm(confirmation_text(rt, f"rollback {current} -> {dest}", changes)):
            raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")

        store = state.StateStore(plan, rt.params)
        preempted, preempted_command = _preempted_run(rt, lock, rec)
        record_errors: list[CutoverError] = []
        marking: dict = {}  # the `rolling_back` marker's version and when it landed, once written

        def mark() -> None:
            if marking:
                return
            actor = _actor(rt, record_errors)  # (asked only now: the kill switch does not wait for STS)
            marking["version"] = actor and _mark_rolling_back(rt, store, state.StateRecord(
                phase=rec.phase if rec else PENDING, status=state.ROLLING_BACK, target=dest, entered_at=rec.entered_at if rec else "",
                actor=actor, run_id=rt.run_id, plan_digest=plan.digest, command="rollback", reason=reason,
                preempted=preempted), view.version, partial=to is not None, errors=record_errors)
            marking["at"] = rt.clock.monotonic()

        def before_write(state_param: Param | None) -> None:  # a --to rollback yields to any later rollback
            stop_if_preempted(rt, state_param, is_rollback)

        if to is not None:  # a partial rollback marks first: it must not write a flag over a full rollback's
            mark()
        check = before_write if to is not None and marking["version"] is not None else None
        # A full rollback writes the kill switch (its first change in plan order) first, then its marker in
        # the next write slot: the marker is what stops a running advance before its next write, and that
        # advance's writes in flight meanwhile are waited out and written over below, as they always were.
        rest: dict = {}  # with rest_unread: every flag read right after the kill switch, or the read's error

        def read_the_rest() -> None:  # (in the wait for the marker's write slot: it costs no slot)
            try:
                rest["live"] = rt.read_live()
            except CutoverError as err:
                rest["error"] = err

        def after_kill_switch() -> None:
            if d.rest_unread:
                read_the_rest()
            mark()

        converger = rt.converger(keep_going=True, before_write=check, after_first_write=after_kill_switch)
        lines: list[str] = []
        # (Before the try: from here on a first Ctrl-C only reports progress, the kill switch's write included.)
        rt.progress.begin(f"rollback {current} -> {dest}", changes, rest_unread=d.rest_unread)
        try:
            if d.rest_unread:
                converger.write_first(changes[0])
                live = self._the_rest(converger, rest, target, report, data)
            converger.restore(target, live)
            mark()  # (no flag needed writing: the record still says where the rollback went)
            marked = marking["version"]
            # Someone may still have a write in flight: the run we preempted, or one whose record landed
            # between our read and our marker.
            in_flight = marked is not None and (preempted is not None or marked != (view.version or 0) + 1)
            if in_flight:
                lines.append(_wait_out_in_flight(rt, converger, target, preempted_command, marking["at"]))
            actor = _actor(rt, record_errors)
            if actor:
                _record_rollback(rt, store, state.StateRecord(
                    phase=dest, status=state.STABLE, entered_at=state.iso(rt.clock.now()), actor=actor, run_id=rt.run_id,
                    plan_digest=plan.digest, command="rollback", reason=reason, preempted=preempted), check, marked, record_errors)
        except Preempted as err:
            yield_and_stop(rt, report, data, converger.result.changes, err)
        except Incomplete as err:
            report.changes = [c.to_dict() for c in converger.result.changes]
            if record_errors:
                err = Incomplete(f"{err.message}; the state record could not be written either: {record_errors[0].message}", err.hint)
            rt.finish(report, Outcome(err.exit_code, err.message, data=data))
            raise err from None
        all_changes = converger.result.changes
        report.changes = data["changes"] = [c.to_dict() for c in all_changes]
        restored = list(dict.fromkeys(c.name for c in all_changes))
        lines = change_lines(all_changes) + lines
        if converger.rewrites:
            lines.append(f"written again after someone else changed them: {', '.join(dict.fromkeys(converger.rewrites))}")
        if preempted:
            lines.append(f"preempted run {preempted}")
        automatic = reason.startswith("auto-rollback")
        notify(rt, f"{'AUTOMATIC ' if automatic else ''}ROLLBACK {current} -> {dest}",
               [f"by {actor or 'unknown'}", f"{len(restored)} flag(s) restored and confirmed", f"reason: {reason or '-'}",
                *([f"preempted run {preempted}"] if preempted else []),
                *(["the state record could not be written"] if record_errors else [])])
        if record_errors:
            _unrecorded_rollback(rt, report, lines, data, record_errors[0])
        return rt.finish(report, Outcome(ExitCode.OK, f"rolled back {current} -> {dest}: {len(restored)} flag(s) changed, every flag confirmed",
                                           lines, data))

    def _the_rest(self, converger: flagmod.Converger, rest: dict, target: dict[str, str], report: evidence.Report,
                  data: dict) -> flagmod.Live:
        """Every flag as read right after the kill switch, its changes added to the rollback's; a read
        that failed ends the rollback Incomplete, naming what was written."""
        if "error" in rest:
            err = rest["error"]
            written = ", ".join(c.name for c in converger.result.changes if c.written) or "none"
            raise Incomplete(f"reading the flags after the kill switch failed: {err.message}; written: {written}; "
                             "the other flags were not restored", err.hint or "re-run: cutover rollback --yes")
        live = rest["live"]
        note_unreadable_functions(self.rt, live)
        more = converger.still_to_write(target, live)
        report.changes = data["changes"] = [c.to_dict() for c in converger.result.changes + more]
        self.rt.progress.more(more)
        return live


def _actor(rt: Runtime, errors: list[CutoverError]) -> str | None:
    """Who runs this rollback, for its records; None (the error noted) when it cannot be told: the
    flags are restored all the same, and the unwritten record is reported at the end."""
    try:
        return rt.identity().arn
    except CutoverError as err:
        if not errors:
            errors.append(err)
        return None


def _preempted_run(rt: Runtime, lock: state.LockRecord | None, rec: state.StateRecord | None) -> tuple[str | None, str]:
    """(run id, command) of the run a rollback takes over from: the live lock's holder, or the run of
    an unfinished transition in the record (a dead advance, a `--to` rollback); (None, "run") if none."""
    now = rt.clock.now()
    if lock is not None and not lock.expired(now):
        rt.notes.append(f"preempted {lock.describe(now)}")
        return lock.run_id, lock.command
    if rec is not None and rec.status in (state.ADVANCING, state.ROLLING_BACK) and rec.run_id != rt.run_id:
        return rec.run_id, rec.command or "run"
    return None, "run"


def _mark_rolling_back(rt: Runtime, store: state.StateStore, marker: state.StateRecord, known_version: int | None,
                       partial: bool, errors: list[CutoverError]) -> int | None:
    """Marking the record first is what stops a running advance (or an earlier `--to` rollback) before
    its next write. Flags first, though: if the record cannot be written, the rollback goes on without
    it (None) and reports it at the end. A `--to` rollback whose marker landed just after a full
    rollback's puts that one back on top and stops, before any flag write."""
    try:
        marked = store.write(marker, rt.clock)
    except CutoverError as err:
        errors.append(err)
        return None
    if partial:
        check_not_clobbered(rt, store, marked, known_version, yields_to=is_full_rollback)
    return marked


def _wait_out_in_flight(rt: Runtime, converger: flagmod.Converger, target: dict[str, str], preempted: str,
                        marked_at: float) -> str:
    """A preempted run checks for a rollback before each write and sends the write within
    CHECK_VALID_FOR of that check: a write it sent just before it could see our marker lands within
    WRITE_SLOT of it. Wait that out, then read every flag again, writing again any it changed."""
    remaining = max(0.0, marked_at + flagmod.WRITE_SLOT - rt.clock.monotonic())
    rt.emit("in_flight_wait", seconds=round(remaining, 2), preempted=preempted)
    rt.clock.sleep(remaining)
    converger.settle(target)
    return f"waited {remaining:.1f}s for the preempted {preempted}'s in-flight write, then verified again"


def _record_rollback(rt: Runtime, store: state.StateStore, record: state.StateRecord,
                     check: Callable[[Param | None], None] | None, marked: int | None, errors: list[CutoverError]) -> None:
    """The final record. A `--to` rollback writes it only while the state is still its own (never over
    a full rollback's). A write that fails is noted in `errors`: the flags are restored all the same."""
    try:
        if check is not None:
            write_unless_preempted(rt, store, record, check, marked, yields_to=is_rollback)
        else:
            store.write(record, rt.clock)
    except Preempted:
        raise
    except CutoverError as err:
        errors.append(err)


def _unrecorded_rollback(rt: Runtime, report: evidence.Report, lines: list[str], data: dict, err: CutoverError) -> None:
    """Every flag is restored, but the state record says otherwise: exit 4, saying both."""
    message = f"flags restored; the state record could not be written: {err.message}"
    hint = (f"{err.hint}; then " if err.hint else "") + (
        f"re-run `cutover rollback` to write {rt.plan.state_parameter} (`cutover status` shows the flags restored)")
    rt.finish(report, Outcome(ExitCode.INCOMPLETE, message, lines, data, hint=hint))
    raise Incomplete(message, hint)
