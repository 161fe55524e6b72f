"""`history` (the state record's versions, newest last) and `unlock` (break a live lock, on purpose)."""

from __future__ import annotations

from cutover.core import state
from cutover.errors import ExitCode, UsageError
from cutover.model.plan import PENDING
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime


def history(rt: Runtime) -> Outcome:
    rows = []
    previous = PENDING
    for version, when, rec, problem in state.StateStore(rt.plan, rt.params).history():
        if rec is None:
            rows.append({"version": version, "when": when, "who": "?", "from": "?", "to": "?", "status": problem, "reason": ""})
            continue
        to = rec.target if rec.status != state.STABLE and rec.target else rec.phase
        rows.append({"version": version, "when": when, "who": rec.actor, "from": previous if rec.status == state.STABLE else rec.phase,
                     "to": to, "status": rec.status, "command": rec.command, "reason": rec.reason, "run_id": rec.run_id,
                     "preempted": rec.preempted, "approved_by": rec.approved_by})
        if rec.status == state.STABLE:
            previous = rec.phase
    lines = [_history_line(r) for r in rows]
    return Outcome(ExitCode.OK, f"{len(rows)} state change(s) recorded for {rt.plan.name}", lines, {"history": rows})


def _history_line(r: dict) -> str:
    """`v7 WHEN WHO: canary -> full (stable) by `advance`, approved by X, reason: Y`."""
    line = f"v{r['version']} {r['when']} {r['who']}: {r['from']} -> {r['to']} ({r['status']})"
    if r.get("command"):
        line += f" by `{r['command']}`"
    if r.get("approved_by"):
        line += f", approved by {r['approved_by']}"
    return line + (f", reason: {r['reason']}" if r["reason"] else "")


def unlock(rt: Runtime, force: bool, reason: str) -> Outcome:
    if not force or not reason.strip():
        raise UsageError("unlock breaks another operator's lock: it needs --force and --reason TEXT",
                         "cutover unlock --force --reason \"why it is safe\"")
    plan = rt.plan
    lock = state.read_lock(plan, rt.params)
    if lock is None:
        return Outcome(ExitCode.OK, "nothing to do: no lock is held", data={"lock": None})
    if rt.dry_run:
        return Outcome(ExitCode.OK, f"dry run: would break the lock held by {lock.describe(rt.clock.now())}")
    ident = rt.identity()
    rt.params.delete(plan.lock_parameter)
    if rt.log is not None:
        rt.log.warning("lock_broken", by=ident.arn, reason=reason, old_holder=lock.holder, old_host=lock.host,
                       old_pid=lock.pid, old_command=lock.command, old_run_id=lock.run_id)
    # Only the lock. The state record belongs to the commands that run: a copy of it written back from
    # here could land over a rollback's newer record. Who broke the lock, and why, goes to the log
    # and the evidence.
    report = rt.new_report("unlock", reason=reason)
    report.notes.append(f"lock of {lock.holder} (run {lock.run_id}, `{lock.command}`) broken by {ident.arn}: {reason}")
    return rt.finish(report, Outcome(ExitCode.OK, f"lock broken (was held by {lock.describe(rt.clock.now())})",
                                       data={"lock": lock.__dict__, "by": ident.arn, "reason": reason}))
