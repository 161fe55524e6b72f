"""What advance and rollback share: the one read of flags, state record and lock, the lines that
show changes and gates, the confirmation, and preemption: the check before every write, the
check after a state write (SSM has no compare-and-swap), and putting back what a preempted run wrote."""

from __future__ import annotations

import dataclasses
from typing import Callable, NoReturn

from cutover.core import evidence
from cutover.core import flags as flagmod
from cutover.model import program
from cutover.core import state
from cutover.errors import Blocked, CutoverError
from cutover.gates.result import GateResult
from cutover.core.lambdaenv import EnvWriter
from cutover.model.plan import PENDING, ROLLED_BACK, Phase
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime
from cutover.ports import Param


def change_lines(changes: list[flagmod.FlagChange]) -> list[str]:
    if not changes:
        return ["no flag changes: every flag is already at its target value"]
    return [
        f"{c.flag.name} ({c.flag.where}): {flagmod.shown(c.flag, c.old) if c.old is not None else '(missing)'} -> "
        f"{flagmod.shown(c.flag, c.new, label_rollback=True)}"
        for c in changes
    ]


def confirmation_text(rt: Runtime, title: str, changes: list[flagmod.FlagChange]) -> str:
    """What a person confirms, as a plan: where it acts (account, region, caller), then one change per
    line grouped by target (SSM, each Lambda function), `old -> new`, and the count."""
    try:
        ident = rt.identity()
        who = f"account {ident.account}, region {rt.plan.region}, as {ident.arn}"
    except CutoverError as err:  # said, not fatal: the write itself will tell
        who = f"account unknown ({err.message}), region {rt.plan.region}"
    groups: dict[str, list[str]] = {}
    for c in changes:
        group = "SSM Parameter Store" if c.flag.kind == "ssm" else f"Lambda function {c.flag.target.function}"
        where = c.flag.parameter if c.flag.kind == "ssm" else c.flag.target.variable
        old = flagmod.shown(c.flag, c.old) if c.old is not None else "(missing)"
        groups.setdefault(group, []).append(f"    ~ {c.flag.name} ({where}): {old} -> {flagmod.shown(c.flag, c.new, label_rollback=True)}")
    body = [line for group, rows in groups.items() for line in (f"  {group}", *rows)]
    return "\n".join([f"cutover will act on {who}", f"{title}:", *body, f"{len(changes)} to change."])


def gate_result_lines(results: list[GateResult]) -> list[str]:
    out = []
    for r in results:
        out.append(f"{r.check} {r.status} {r.detail}")
        if r.next_action and r.status != "PASS":
            out.append(f"    next: {r.next_action}")
    return out


def blocking_checks(results: list[GateResult], dry_run: bool) -> list[str]:
    from cutover.gates import blocking

    return blocking(results, dry_run)


def run_phase_gates(rt: Runtime, phase: Phase) -> list[GateResult]:
    from cutover.commands import readiness
    from cutover.gates import run_gates  # gates pull in http/subprocess machinery: load when needed

    # Before every advance: could a rollback still restore every flag? (readiness.py)
    return run_gates(rt.plan, phase.name, rt.gate_context()) + readiness.check(rt)


def read_all(rt: Runtime) -> tuple[dict[str, Param], state.StateView, state.LockRecord | None]:
    """One batched read of every flag, the state record and the lock."""
    plan = rt.plan
    live = rt.read_live([plan.state_parameter, plan.lock_parameter])
    return live, state.interpret(plan, live.get(plan.state_parameter)), state.parse_lock(live.get(plan.lock_parameter))


def bake_remaining(rt: Runtime, view: state.StateView) -> float:
    """Seconds left in the current phase's bake (0 when none, or when not in a phase)."""
    rec = view.record
    if view.problem or rec is None or rec.status != state.STABLE or rec.phase in (PENDING, ROLLED_BACK) or not rec.entered_at:
        return 0.0
    bake = rt.plan.phase(rec.phase).bake
    if bake <= 0:
        return 0.0
    baked = (rt.clock.now() - state.parse_iso(rec.entered_at)).total_seconds()
    return max(0.0, bake - baked)


def caller_account(rt: Runtime) -> str | None:
    """The account id of the caller, for saying where a command acts (None if it cannot be told)."""
    try:
        return rt.identity().account
    except CutoverError:
        return None


class Preempted(Blocked):
    pass


def window_results(rt: Runtime, phase: Phase, **context) -> list[GateResult]:
    """The phase's window checks, run now (each never raises)."""
    from cutover.gates import run_check

    ctx = dataclasses.replace(rt.gate_context(), bake=phase.bake, **context)
    return [run_check(c, ctx) for c in rt.plan.window_checks(phase.name)]


def closed_windows(rt: Runtime, phase: Phase) -> list[GateResult]:
    """The phase's window checks run again now; the ones that no longer pass."""
    return [r for r in window_results(rt, phase) if not r.passed]


def window_lines(rt: Runtime, phase: Phase | None) -> list[str]:
    """For `status`: each window of the next phase, open or closed and until when."""
    if phase is None:
        return []
    return [f"window: {r.detail} ({r.check}, for {phase.name})" for r in window_results(rt, phase, outside_window=None)]


def yield_and_stop(rt: Runtime, report: evidence.Report, data: dict, changes: list[flagmod.FlagChange],
                    err: Preempted) -> NoReturn:
    """A preempted run puts back what it wrote, records its evidence, and stops (exit 3)."""
    yield_to_rollback(rt, changes)
    report.changes = [c.to_dict() for c in changes]
    rt.finish(report, Outcome(err.exit_code, err.message, data=data))
    raise err


def rerun_hint(rt: Runtime, command: str) -> str:
    return f"cutover {command}" + (" --dry-run" if rt.dry_run else "")


def check_not_clobbered(rt: Runtime, store: state.StateStore, version: int, expected_prev: int | None,
                         yields_to: Callable[[state.StateRecord], bool] = lambda rec: True) -> None:
    """SSM has no compare-and-swap, so a check-then-write can lose a race by a hair. Versions are
    sequential, though: if our write is not the one right after the version we last knew, someone
    wrote in between (a rollback, above all). If that someone is one we yield to, put their record
    back on top and stop as preempted."""
    if version == (expected_prev or 0) + 1:
        return
    foreign = foreign_records(rt, expected_prev or 0, version)
    if not any(yields_to(rec) for rec in foreign):
        return
    # Put their newest record back on top. If yet another write lands between ours and that put-back
    # (the rollback finishing, say), the put-back's version says so: put that newer one back instead.
    # Each round ends with the newest foreign record on top; a round with nothing in between ends it.
    theirs, known = foreign[-1], version
    for _ in range(5):
        theirs.plan_items = None
        put = store.write(theirs, rt.clock)
        newer = foreign_records(rt, known, put) if put != known + 1 else []
        if not newer:
            break
        theirs, known = newer[-1], put
    raise Preempted(f"preempted by `{theirs.command or 'another run'}` of {theirs.actor or 'someone'} in the same "
                    "instant; their record stands", "run `cutover status`")


def foreign_records(rt: Runtime, after: int, before: int) -> list[state.StateRecord]:
    """Records written by other runs between two versions of the state parameter, oldest first."""
    found = []
    for v in rt.params.history(rt.plan.state_parameter):
        if after < v.version < before:
            try:
                rec = state.StateRecord.from_json(v.value)
            except (ValueError, TypeError):
                continue
            if rec.run_id != rt.run_id:  # (a retried write of ours also skips a version)
                found.append(rec)
    return found


def yield_to_rollback(rt: Runtime, changes: list[flagmod.FlagChange]) -> None:
    """A preempted advance puts back what it wrote. Without compare-and-swap in SSM, one write of ours
    may land after the rollback's last check; but then our own check, made after that write, sees the
    rollback, and this undoes it. Only flags still holding our value are touched."""
    plan = rt.plan
    view = state.StateStore(plan, rt.params).read()
    rec = view.record
    dest = ROLLED_BACK
    if rec is not None and not view.problem:
        dest = rec.target if rec.status == state.ROLLING_BACK and rec.target else rec.phase
    safe = plan.values_for(dest)
    written = [c for c in changes if c.written]
    if not written:
        return
    live = rt.read_live()
    ours = [(c.flag, safe[c.flag.name]) for c in written
            if flagmod.is_at(c.flag, live.get(c.flag.key), c.new) and c.new != safe[c.flag.name]]
    for step in program.group(ours):  # in the rollback's order and grouping: one update per Lambda function
        if isinstance(step, program.SetParameter):
            rt.params.put(step.flag.parameter, step.value, secure=step.flag.secure)
        else:
            EnvWriter(rt.functions, rt.clock).apply(step.function, step.variables)
        for f in step.flags:
            rt.emit("flag_yielded", flag=f.name, to=dest)


def read_state_param(rt: Runtime) -> Param | None:
    return rt.params.get_many([rt.plan.state_parameter]).get(rt.plan.state_parameter)


def stop_if_preempted(rt: Runtime, state_param: Param | None, preempts: Callable[[state.StateRecord], bool]) -> None:
    """The preemption check made before every write: stop (Preempted) when the state record is no
    longer this run's and `preempts` says the run on top wins (an unreadable or deleted record stops
    a run too: someone took over by hand)."""
    seen = state.interpret(rt.plan, state_param).record
    if seen is not None and (seen.run_id == rt.run_id or not preempts(seen)):
        return
    who = f"`{seen.command}` of {seen.actor or 'someone'} (run {seen.run_id})" if seen else "someone (the state record was replaced)"
    raise Preempted(f"preempted by {who}; stopped before the next write", "run `cutover status`; the rollback owns the flags now")


def write_unless_preempted(rt: Runtime, store: state.StateStore, record: state.StateRecord,
                            check: Callable[[Param | None], None], known_version: int,
                            yields_to: Callable[[state.StateRecord], bool] = lambda rec: True) -> int:
    """Write a state record only while this run still owns the state: check for a rollback right
    before the write is sent (again before any retry sent later than CHECK_VALID_FOR after it), and
    afterwards make sure nobody wrote in between (else put theirs back on top and stop as preempted)."""
    rt.params.pacer.wait()  # the write slot first, so the check and the write stay as close as they can be
    clearance = flagmod.Clearance(lambda: check(read_state_param(rt)), rt.clock)
    clearance.renew()
    version = store.write(record, rt.clock, before_attempt=clearance.ensure)
    check_not_clobbered(rt, store, version, known_version, yields_to)
    return version


ROLLBACK_COMMANDS = ("rollback", "guard")  # what writes a rollback's records (the guard: its Automation document)


def is_rollback(rec: state.StateRecord) -> bool:
    return rec.command in ROLLBACK_COMMANDS


def is_full_rollback(rec: state.StateRecord) -> bool:
    heading = rec.target if rec.status == state.ROLLING_BACK else rec.phase
    return is_rollback(rec) and heading == ROLLED_BACK
