"""Use cases: status, advance, rollback, history, unlock. Each returns an Outcome the CLI renders.

Read, decide, apply, present: each command reads the flags, the state record and the lock once,
decides from that read (refusing before anything is written), and hands the decision to an executor.
A dry run's executor only says what would be written (`DisplayOnlyAdvance`); it runs on a read-only
AWS session, which refuses any write as a second safeguard.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import functools
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterator, NoReturn

from cutover.core import evidence
from cutover.core import flags as flagmod
from cutover.core import machine
from cutover.model import program
from cutover.core import state
from cutover.errors import Blocked, CutoverError, ExitCode, GateFailed, Incomplete, UsageError
from cutover.gates.result import GateResult
from cutover.core.lambdaenv import EnvWriter
from cutover.model.durations import format_duration
from cutover.model.plan import PENDING, ROLLED_BACK, Phase, Plan
from cutover.core.notify import notify
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime
from cutover.ports import Param


def _change_lines(changes: list[flagmod.FlagChange]) -> list[str]:
    if not changes:
        return ["no flag changes: every flag is already at its target value"]
    return [
        f"{c.flag.name} ({c.flag.where}): {flagmod.shown(c.flag, c.old) if c.old is not None else '(missing)'} -> "
        f"{flagmod.shown(c.flag, c.new, label_rollback=True)}"
        for c in changes
    ]


def _confirmation(rt: Runtime, title: str, changes: list[flagmod.FlagChange]) -> str:
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


def _gate_lines(results: list[GateResult]) -> list[str]:
    out = []
    for r in results:
        out.append(f"{r.check} {r.status} {r.detail}")
        if r.next_action and r.status != "PASS":
            out.append(f"    next: {r.next_action}")
    return out


def _blocking(results: list[GateResult], dry_run: bool) -> list[str]:
    from cutover.gates import blocking

    return blocking(results, dry_run)


def _run_gates(rt: Runtime, phase: Phase) -> list[GateResult]:
    from cutover.commands import readiness
    from cutover.gates import run_gates  # gates pull in http/subprocess machinery: load when needed

    # Before every advance: could a rollback still restore every flag? (readiness.py)
    return run_gates(rt.plan, phase.name, rt.gate_context()) + readiness.check(rt)


def _live(rt: Runtime) -> tuple[dict[str, Param], state.StateView, state.LockRecord | None]:
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


def _account(rt: Runtime) -> str | None:
    """The account id of the caller, for saying where a command acts (None if it cannot be told)."""
    try:
        return rt.identity().account
    except CutoverError:
        return None


# --- status ------------------------------------------------------------------------------------------
HIGH_THROUGHPUT_RATE = 10  # writes/s to suggest when SSM's higher-throughput setting is on


def throughput_hint(rt: Runtime) -> tuple[bool | None, str]:
    """(whether SSM's higher-throughput setting is on: None when it cannot be read, a hint): when it is
    on and the plan paces slower, say that `write_rate: 10` would roll back faster. Only said: the
    plan's `write_rate` is the rate every command keeps to."""
    settings = rt.aws.settings
    if settings is None:
        return None, ""
    try:
        on = settings.high_throughput()
    except CutoverError:  # not allowed to read it, or not offered here: no hint, nothing else changes
        return None, ""
    if not on or rt.plan.write_rate >= HIGH_THROUGHPUT_RATE:
        return on, ""
    return on, (f"SSM higher throughput is on in this account and region: `write_rate: {HIGH_THROUGHPUT_RATE}` in "
                f"{rt.plan.path} would roll back faster (it keeps to {rt.plan.write_rate:g} writes/s now)")


@dataclasses.dataclass
class StatusFacts:
    """What `status` reads, all of it before anything is judged."""

    live: flagmod.Live
    view: state.StateView
    lock: state.LockRecord | None
    now: datetime  # the clock, when the reads were made
    account: str | None
    alarms: list[dict]
    guard: tuple[str, str] | None
    windows: list[str] | None  # None: the state is unreadable, so no next phase to show windows for
    throughput: tuple[bool | None, str]  # SSM's higher-throughput setting, and the hint it gives (throughput_hint)


@dataclasses.dataclass
class FlagVerdict:
    """Each flag judged against the recorded phase (and the target of an unfinished transition)."""

    rows: list[dict]
    labels: dict[str, str | None]  # for people: says when it is a sensitive flag's rollback value
    drift: list[str]
    unreadable: list[str]
    target: dict[str, str] | None
    restored_unrecorded: bool


def status(rt: Runtime, check: bool = False) -> Outcome:
    """Read everything once (`_read_status`), judge it (`judge_flags`, pure), and say it."""
    facts = _read_status(rt)
    verdict = judge_flags(rt.plan, facts.view, facts.live)
    return _present_status(rt, facts, verdict, check)


def _read_status(rt: Runtime) -> StatusFacts:
    live, view, lock = _live(rt)
    now, account = rt.clock.now(), _account(rt)
    # Alarms of every alarms gate in the plan, in one batched read; an unreadable source is shown.
    alarms, guard = _all_alarm_rows(rt), guard_line(rt)
    windows = None if view.problem else window_lines(rt, rt.plan.next_phase(view.phase))
    return StatusFacts(live, view, lock, now, account, alarms, guard, windows, throughput_hint(rt))


def judge_flags(plan: Plan, view: state.StateView, live: flagmod.Live) -> FlagVerdict:
    """Declared values of the recorded phase vs live values (drift); during an unfinished transition,
    which side each flag is on. Pure: the reads are made already."""
    rec = view.record
    declared = plan.values_for(view.phase) if not view.problem else plan.rollback_values()
    target = plan.values_for(rec.target) if rec and rec.target and not view.problem and rec.status != state.STABLE else None
    rows, drift, labels = [], [], {}
    unreadable = [f.name for f in plan.flags if f.kind == "lambda" and f.target.function in live.unreadable]
    for f in plan.flags:
        p = live.get(f.key)
        row = {"flag": f.name, "target": f.where, **({"parameter": f.parameter} if f.kind == "ssm" else {}),
               "live": flagmod.shown(f, p.value) if p else None, "declared": flagmod.shown(f, declared[f.name])}
        labels[f.name] = flagmod.shown(f, p.value, label_rollback=True) if p else None
        if f.name in unreadable:  # unknown, not drift: said below, with why
            row.update(unreadable=True, drift=False)
            rows.append(row)
            continue
        at_declared = flagmod.is_at(f, p, declared[f.name])
        if target is not None and target[f.name] != declared[f.name]:
            at_target = flagmod.is_at(f, p, target[f.name])
            row["side"] = "target" if at_target else ("recorded phase" if at_declared else "neither")
            if not (at_target or at_declared):
                drift.append(f.name)
        elif not at_declared:
            drift.append(f.name)
        row["drift"] = f.name in drift
        rows.append(row)
    restored_unrecorded = bool(drift) and not view.problem and view.phase != ROLLED_BACK and not unreadable and all(
        flagmod.is_at(f, live.get(f.key), f.rollback) for f in plan.flags)
    return FlagVerdict(rows, labels, drift, unreadable, target, restored_unrecorded)


def _present_status(rt: Runtime, facts: StatusFacts, verdict: FlagVerdict, check: bool) -> Outcome:
    plan, view, lock, live, now = rt.plan, facts.view, facts.lock, facts.live, facts.now
    rec = view.record
    drift, unreadable = verdict.drift, verdict.unreadable
    lines: list[str] = []
    data: dict = {"plan": plan.name, "plan_digest": plan.digest, "region": plan.region, "account": facts.account}
    lines.append(f"account {data['account'] or 'unknown'}, region {plan.region}")

    if view.problem:
        lines.append(f"state: UNREADABLE: {view.problem}")
        lines.append(f"    fix: {view.fix}")
        data["state"] = {"problem": view.problem, "fix": view.fix}
    elif rec is None:
        lines.append("state: pending (no phase entered yet)")
        data["state"] = {"phase": PENDING, "status": state.STABLE}
    else:
        since = f", entered {rec.entered_at}" if rec.entered_at else ""
        lines.append(f"state: {rec.phase} ({rec.status}{since}) by {rec.actor or 'unknown'}")
        if rec.target and rec.status != state.STABLE:
            lines.append(f"    heading to: {rec.target} (run {rec.run_id}, `{rec.command}`)")
        if rec.plan_digest and rec.plan_digest != plan.digest:
            lines.append("    note: the plan file changed since this state was recorded")
        data["state"] = {k: v for k, v in rec.__dict__.items()}

    lock_live = lock is not None and not (lock.expired(now) or lock.holder_gone())
    if lock is None:
        lines.append("lock: free")
    elif isinstance(lock, state.UnreadableLock):
        lines.append(f"lock: unreadable ({lock.problem}): treated as stale, it may be taken over; "
                     "the next advance replaces it (a rollback never needs it)")
    else:
        lines.append(f"lock: {'held' if lock_live else 'stale (may be taken over)'} by {lock.describe(now)}")
    data["lock"] = None if lock is None else {**lock.__dict__, "live": lock_live}

    interrupted = rec is not None and not view.problem and rec.status != state.STABLE and (
        rec.status == state.INTERRUPTED or lock is None or not lock_live or rec.status == state.ROLLING_BACK
    )
    if interrupted:
        finish = ("finish it by re-running `cutover rollback`" if rec.status == state.ROLLING_BACK
                  else "finish it with `cutover advance`, or undo it with `cutover rollback`")
        lines.append(f"    {rec.status} was interrupted: {finish}")

    data["flags"] = verdict.rows
    lines.append("flags:")
    for row in verdict.rows:
        mark = "DRIFT " if row["drift"] else ""
        side = f" [{row['side']}]" if "side" in row else ""
        labelled = verdict.labels[row["flag"]]
        seen = "(unreadable)" if row.get("unreadable") else (labelled if labelled is not None else "(missing)")
        where = "" if "parameter" in row else f" in {row['target']}"  # SSM is the default; say where the others live
        lines.append(f"    {mark}{row['flag']} = {seen} (declared {row['declared']}){side}{where}")
    for function, err in live.unreadable.items():
        lines.append(f"    cannot read Lambda function {function}: {err.message}" + (f" ({err.hint})" if err.hint else ""))
    if verdict.target is not None:
        on_target = [r["flag"] for r in verdict.rows if r.get("side") == "target"]
        on_recorded = [r["flag"] for r in verdict.rows if r.get("side") == "recorded phase"]
        lines.append(f"    mixed between {rec.phase} and {rec.target}: at {rec.target}: {', '.join(on_target) or 'none'}; at {rec.phase}: {', '.join(on_recorded) or 'none'}")
    data["drift"] = drift
    if verdict.restored_unrecorded:
        lines.append("    every flag is at its rollback value, but the state record says otherwise: a rollback that could "
                     "not write the record (or a hand edit); `cutover rollback` writes the record")
    elif drift and not view.problem and all(flagmod.is_at(f, live.get(f.key), f.rollback) for f in plan.flags if f.name in drift):
        lines.append("    the flags that differ are at their rollback values: a rollback that stopped before it marked the state "
                     "record (it writes the kill switch first), or a hand edit; `cutover rollback` finishes it")
    if live.unreadable:
        data["unreadable_functions"] = {fn: err.message for fn, err in live.unreadable.items()}

    # The alarms of the phase in play (the recorded one, and the target of an unfinished transition)
    # that fire make the cutover unhealthy.
    in_play = [] if view.problem else [p for p in (view.phase, rec and rec.target) if p in plan.phase_names]
    firing = firing_alarms(facts.alarms, [c for p in dict.fromkeys(in_play) for c in plan.alarm_checks(p)])
    data["alarms"], data["firing"] = facts.alarms, firing
    if facts.alarms:
        lines.append("alarms:")
        for a in facts.alarms:
            lines.append(f"    {a['name']}: {a['state']} since {a['since']}")

    data["high_throughput"], faster = facts.throughput
    if faster:
        lines.append(f"note: {faster}")
    if facts.guard is not None:
        lines.append(facts.guard[1])
        data["guard"] = facts.guard[0]
    if facts.windows is not None:
        lines += facts.windows
        data["windows"] = facts.windows
    bad = bool(view.problem or drift or interrupted or unreadable)
    if view.problem:
        headline = f"state record unreadable: {view.problem}"
    elif unreadable:
        headline = f"cannot read {len(unreadable)} Lambda flag(s): {', '.join(live.unreadable)} unreadable"
    elif drift:
        headline = f"DRIFT: {len(drift)} flag(s) differ from the recorded phase: {', '.join(drift)}"
    elif interrupted:
        headline = f"{rec.status} {rec.phase} -> {rec.target} is unfinished"
    else:
        headline = f"{view.phase}: flags match the declared values"
    data["healthy"] = not (bad or firing)  # (the document's own "ok" is the exit code's)
    # --check: 5 when the flags or the record are wrong; else 1 when an alarm of the phase fires (its
    # alarms gate fails now: the code `watch` and `preflight` give an alarm).
    code = ExitCode.OK if not check else ExitCode.DRIFT if bad else ExitCode.GATE_FAILED if firing else ExitCode.OK
    hint = view.fix if view.problem else ("run `cutover rollback` to restore known-safe values" if bad else "")
    if verdict.restored_unrecorded:
        hint = "run `cutover rollback`: the flags are already safe, it records that in the state record"
    if not (hint or bad or firing) and view.phase != ROLLED_BACK:
        hint = data["next"] = _next_step(rt, view)
    if firing:  # the first thing an on-call person must read, and what to do about it
        states = {a["name"]: a["state"] for a in facts.alarms}
        shout = "; ".join(f"ALARM: {n}" if states[n] == "ALARM" else f"ALARM MISSING: {n}" for n in firing)
        headline = f"{shout}; {headline}" if bad else shout
        hint = rollback_now_hint(alarm_reason(firing, states))
    return Outcome(code, headline, lines, data, hint=hint)


def _next_step(rt: Runtime, view: state.StateView) -> str:
    """What a healthy cutover waits for: the next advance, and when its bake allows it."""
    nxt = rt.plan.next_phase(view.phase)
    if nxt is None:
        return ""  # the last phase: nothing left to advance into
    step = f"`cutover advance` into {nxt.name}" + (" (needs approval: --approve --reason TEXT)" if nxt.approval else "")
    remaining = bake_remaining(rt, view)
    return f"{step} in {format_duration(remaining)}, when {view.phase}'s bake ends" if remaining else step


FIRING = ("ALARM", "MISSING")  # a named alarm that does not exist cannot say the phase is fine


def firing_alarms(rows: list[dict], checks: list) -> list[str]:
    """Names of the alarms in `rows` watched by `checks` (by name or prefix) that are firing."""
    def watched(name: str) -> bool:
        return any(name in c.names or (c.prefix and name.startswith(c.prefix)) for c in checks)

    return [a["name"] for a in rows if a["state"] in FIRING and watched(a["name"])]


def alarm_reason(firing: list[str], states: dict[str, str]) -> str:
    """`alarm a, b in ALARM` (`... MISSING` for alarms that do not exist): a rollback's --reason."""
    by_state = {s: [n for n in firing if states[n] == s] for s in FIRING}
    return "; ".join(f"alarm {', '.join(names)} {'in ALARM' if s == 'ALARM' else 'MISSING'}" for s, names in by_state.items() if names)


def rollback_now_hint(why: str) -> str:
    return f'roll back now: cutover rollback --yes --reason "{why}"'


def alarm_rows(rt: Runtime, checks: list) -> list[dict]:
    """{name, state, since} for every alarm the given alarms checks watch (named ones first; a named
    alarm that does not exist is MISSING), from as few DescribeAlarms calls as the names allow."""
    names: list[str] = []
    prefixes: list[str] = []
    for c in checks:
        names += [n for n in c.names if n not in names]
        if c.prefix and c.prefix not in prefixes:
            prefixes.append(c.prefix)
    if not names and not prefixes:
        return []
    found = {a.name: a for a in rt.aws.alarms.describe(names, prefixes[0] if prefixes else None)}
    for p in prefixes[1:]:
        found.update({a.name: a for a in rt.aws.alarms.describe([], p)})
    rows = [{"name": n, "state": found[n].state, "since": state.iso(found[n].updated_at)} if n in found
            else {"name": n, "state": "MISSING", "since": "-"} for n in names]
    rows += [{"name": a.name, "state": a.state, "since": state.iso(a.updated_at)} for a in found.values() if a.name not in names]
    return rows


def _all_alarm_rows(rt: Runtime) -> list[dict]:
    """Every alarm of the plan, for status: an unreadable alarm source is shown, not fatal."""
    from cutover.model.plan import AlarmsCheck

    try:
        return alarm_rows(rt, [c for c in rt.plan.checks.values() if isinstance(c, AlarmsCheck)])
    except CutoverError as err:
        return [{"name": "(alarms)", "state": "UNKNOWN", "since": err.message}]


# --- advance -----------------------------------------------------------------------------------------
class Preempted(Blocked):
    pass


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
    live, view, _ = _live(rt)
    rec = view.record
    again = _again(rt, "advance")
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
        d.results.extend(_run_gates(rt, p))
        return not _blocking(d.results, rt.dry_run)

    entered = machine.build(rt.plan, ROLLED_BACK if d.current == ROLLED_BACK else d.current, gates_pass).advance()
    report.gates = [r.to_dict() for r in d.results]
    if entered:
        return None
    failed = _blocking(d.results, rt.dry_run)
    return Outcome(ExitCode.GATE_FAILED, f"gates for {d.phase.name} failed: {', '.join(failed)}; nothing was written",
                   _gate_lines(d.results), {"phase": d.current, "target": d.phase.name, "gates": report.gates, "changes": []},
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
                       f"{len(d.changes)} flag(s)", _gate_lines(d.results) + _change_lines(d.changes), data)


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
        gate_lines = _gate_lines(d.results)
        if not rt.confirm(_confirmation(rt, f"advance {d.current} -> {phase.name}", changes)):
            raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
        # The gates (and the confirmation) took a while: a window that has closed since stops us here.
        if closed := _closed_windows(rt, phase):
            report.gates += [r.to_dict() for r in closed]
            return Outcome(ExitCode.GATE_FAILED, f"the window closed while the gates ran: {', '.join(r.check for r in closed)}; "
                           "nothing was written", gate_lines + _gate_lines(closed), {**data, "gates": report.gates, "changes": []},
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
        _check_not_clobbered(rt, store, marked, now_view.version)

        def before_write(state_param: Param | None) -> None:
            _stop_if_preempted(rt, state_param, lambda seen: True)
            self.lease.renew_if_due()

        def overtaken(flag: str) -> NoReturn:
            raise Preempted(f"preempted: {flag} was changed by someone else while advancing (a rollback writes its "
                            "kill switch first); stopped before the next write", "run `cutover status`; the rollback owns the flags now")

        converger = rt.converger(before_write=before_write, watch=_rollback_firsts(plan, d.live), overtaken=overtaken)
        rt.progress.begin(f"advance {d.current} -> {phase.name}", changes)
        try:
            result = converger.run(changes)
            # A rollback may have started after our last write: never record over it.
            _write_unless_preempted(rt, store, record(phase=phase.name, status=state.STABLE, entered_at=state.iso(rt.clock.now()),
                                                      approved_by=d.approver), before_write, marked)
        except Preempted as err:
            _yield_and_stop(rt, report, data, changes, err)
        except Incomplete as err:
            report.changes = [c.to_dict() for c in changes]
            try:
                _mark_interrupted(rt, store, base, phase.name, d.reason, before_write, marked)
            except Preempted as preempted:  # the flags we could not confirm were a rollback's by then
                _yield_and_stop(rt, report, data, changes, preempted)
            notify(rt, f"advance to {phase.name} INTERRUPTED", [err.message, "run `cutover status`; re-run or roll back"])
            rt.finish(report, Outcome(err.exit_code, err.message, data=data))
            raise
        report.changes = [c.to_dict() for c in result.changes]
        data["changes"] = report.changes
        notify(rt, f"entered {phase.name}", [f"{d.current} -> {phase.name} by {ident.arn}", f"{len(changes)} flag(s) changed",
                                             *([f"approved by {d.approver}"] if d.approver else []), f"reason: {d.reason or '-'}"])
        return Outcome(ExitCode.OK, f"entered {phase.name}: {len(changes)} flag(s) changed and confirmed",
                       gate_lines + _change_lines(changes), data,
                       hint=f"watch it bake: cutover watch ({_bake_text(phase)}); roll back any time: cutover rollback")


def _rollback_firsts(plan, live: dict[str, Param]) -> dict[str, Param]:
    """The SSM flag a full rollback would write first, as read now: the first one in plan order not at
    its rollback value (none when every flag is; the advance's own first write is watched too)."""
    for f in plan.ssm_flags:
        if not flagmod.is_at(f, live.get(f.key), f.rollback):
            return {f.parameter: live[f.key]} if f.key in live else {}
    return {}


def _window_results(rt: Runtime, phase: Phase, **context) -> list[GateResult]:
    """The phase's window checks, run now (each never raises)."""
    from cutover.gates import run_check

    ctx = dataclasses.replace(rt.gate_context(), bake=phase.bake, **context)
    return [run_check(c, ctx) for c in rt.plan.window_checks(phase.name)]


def _closed_windows(rt: Runtime, phase: Phase) -> list[GateResult]:
    """The phase's window checks run again now; the ones that no longer pass."""
    return [r for r in _window_results(rt, phase) if not r.passed]


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


def window_lines(rt: Runtime, phase: Phase | None) -> list[str]:
    """For `status`: each window of the next phase, open or closed and until when."""
    if phase is None:
        return []
    return [f"window: {r.detail} ({r.check}, for {phase.name})" for r in _window_results(rt, phase, outside_window=None)]


def _recheck_before_first_write(rt: Runtime, live: flagmod.Live, view: state.StateView) -> state.StateView:
    """The gates took a while: if anyone changed the state or a flag meanwhile (a rollback above all,
    or a hand edit), the decision to advance was taken on stale facts. Stop before the first write."""
    fresh, now_view, _ = _live(rt)
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


def _yield_and_stop(rt: Runtime, report: evidence.Report, data: dict, changes: list[flagmod.FlagChange],
                    err: Preempted) -> NoReturn:
    """A preempted run puts back what it wrote, records its evidence, and stops (exit 3)."""
    _yield_to_rollback(rt, changes)
    report.changes = [c.to_dict() for c in changes]
    rt.finish(report, Outcome(err.exit_code, err.message, data=data))
    raise err


def _again(rt: Runtime, command: str) -> str:
    return f"cutover {command}" + (" --dry-run" if rt.dry_run else "")


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


def guard_line(rt: Runtime) -> tuple[str, str] | None:
    """(state, headline) of the guard when the plan relies on it (some phase has auto_rollback)."""
    if rt.guard_store is None or not any(p.auto_rollback for p in rt.plan.phases):
        return None
    from cutover.commands import guard

    try:
        out = guard.status(rt, rt.guard_store())
    except CutoverError as err:
        return "unknown", f"guard: could not read it ({err.message})"
    return out.data.get("state", "unknown"), out.headline


def _check_not_clobbered(rt: Runtime, store: state.StateStore, version: int, expected_prev: int | None,
                         yields_to: Callable[[state.StateRecord], bool] = lambda rec: True) -> None:
    """SSM has no compare-and-swap, so a check-then-write can lose a race by a hair. Versions are
    sequential, though: if our write is not the one right after the version we last knew, someone
    wrote in between (a rollback, above all). If that someone is one we yield to, put their record
    back on top and stop as preempted."""
    if version == (expected_prev or 0) + 1:
        return
    foreign = _foreign_records(rt, expected_prev or 0, version)
    if not any(yields_to(rec) for rec in foreign):
        return
    # Put their newest record back on top. If yet another write lands between ours and that put-back
    # (the rollback finishing, say), the put-back's version says so: put that newer one back instead.
    # Each round ends with the newest foreign record on top; a round with nothing in between ends it.
    theirs, known = foreign[-1], version
    for _ in range(5):
        theirs.plan_items = None
        put = store.write(theirs, rt.clock)
        newer = _foreign_records(rt, known, put) if put != known + 1 else []
        if not newer:
            break
        theirs, known = newer[-1], put
    raise Preempted(f"preempted by `{theirs.command or 'another run'}` of {theirs.actor or 'someone'} in the same "
                    "instant; their record stands", "run `cutover status`")


def _foreign_records(rt: Runtime, after: int, before: int) -> list[state.StateRecord]:
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


def _yield_to_rollback(rt: Runtime, changes: list[flagmod.FlagChange]) -> None:
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


def _bake_text(phase: Phase) -> str:
    return f"bake {format_duration(phase.bake)}" if phase.bake else "no bake"


def _mark_interrupted(rt: Runtime, store: state.StateStore, phase: str, target: str, reason: str,
                      check: Callable[[Param | None], None], known_version: int) -> None:
    """Best effort: an AWS failure mid-flip is recorded so `status` explains it (a crash is explained
    by the stale `advancing` record and the dead lock instead). Never over a rollback's record: a
    preempted advance raises Preempted instead, writing nothing."""
    try:
        ident = rt.identity()
        _write_unless_preempted(rt, store, state.StateRecord(
            phase=phase, status=state.INTERRUPTED, target=target, actor=ident.arn, run_id=rt.run_id,
            plan_digest=rt.plan.digest, command="advance", reason=reason), check, known_version)
    except Preempted:
        raise
    except CutoverError:
        pass


def _state_param(rt: Runtime) -> Param | None:
    return rt.params.get_many([rt.plan.state_parameter]).get(rt.plan.state_parameter)


def _stop_if_preempted(rt: Runtime, state_param: Param | None, preempts: Callable[[state.StateRecord], bool]) -> None:
    """The preemption check made before every write: stop (Preempted) when the state record is no
    longer this run's and `preempts` says the run on top wins (an unreadable or deleted record stops
    a run too: someone took over by hand)."""
    seen = state.interpret(rt.plan, state_param).record
    if seen is not None and (seen.run_id == rt.run_id or not preempts(seen)):
        return
    who = f"`{seen.command}` of {seen.actor or 'someone'} (run {seen.run_id})" if seen else "someone (the state record was replaced)"
    raise Preempted(f"preempted by {who}; stopped before the next write", "run `cutover status`; the rollback owns the flags now")


def _write_unless_preempted(rt: Runtime, store: state.StateStore, record: state.StateRecord,
                            check: Callable[[Param | None], None], known_version: int,
                            yields_to: Callable[[state.StateRecord], bool] = lambda rec: True) -> int:
    """Write a state record only while this run still owns the state: check for a rollback right
    before the write is sent (again before any retry sent later than CHECK_VALID_FOR after it), and
    afterwards make sure nobody wrote in between (else put theirs back on top and stop as preempted)."""
    rt.params.pacer.wait()  # the write slot first, so the check and the write stay as close as they can be
    clearance = flagmod.Clearance(lambda: check(_state_param(rt)), rt.clock)
    clearance.renew()
    version = store.write(record, rt.clock, before_attempt=clearance.ensure)
    _check_not_clobbered(rt, store, version, known_version, yields_to)
    return version


# --- rollback ----------------------------------------------------------------------------------------
ROLLBACK_COMMANDS = ("rollback", "guard")  # what writes a rollback's records (the guard: its Automation document)


def _is_rollback(rec: state.StateRecord) -> bool:
    return rec.command in ROLLBACK_COMMANDS


def _is_full_rollback(rec: state.StateRecord) -> bool:
    heading = rec.target if rec.status == state.ROLLING_BACK else rec.phase
    return _is_rollback(rec) and heading == ROLLED_BACK


@dataclasses.dataclass
class RollbackDecision:
    """One rollback as decided from a single read of the flags, the state record and the lock: where to
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
    an Outcome when there is nothing to do."""
    plan = rt.plan
    live, view, lock = _live(rt)
    rec = None if view.problem else view.record
    current = view.phase if not view.problem else "unknown"

    if to is not None:
        if to not in plan.phase_names:
            raise UsageError(f"--to {to}: no such phase in {plan.path}", f"phases are: {', '.join(plan.phase_names)}")
        # An earlier phase (the machine's rollback_to_<phase>), or the current one: its declared values
        # written again where they drifted (or where an unfinished advance out of it wrote).
        back = to == current or machine.allows(plan, current, f"rollback_to_{to}")
        if view.problem or not back:
            raise UsageError(f"--to {to} must name the current phase ({current}) or one before it",
                             f"use plain `{_again(rt, 'rollback')}` to return every flag to its known-safe value")
        if rec.status == state.ROLLING_BACK and _is_full_rollback(rec) and rec.run_id != rt.run_id:
            raise Blocked(f"a full rollback is in progress (run {rec.run_id} of {rec.actor or 'someone'}); "
                          f"--to {to} would undo it; nothing was written",
                          "wait for it to finish (`cutover status`); if it died, finish it: cutover rollback")
    dest = to or ROLLED_BACK
    for function, err in live.unreadable.items():  # its flags are written anyway, after the ones before them
        rt.notes.append(f"cannot read Lambda function {function} ({err.message}): its flags show as (missing) "
                        "and are written after the flags before them in rollback order")
    target = {f.name: v for f, v in program.targets(plan, dest)}
    report.from_state, report.to_state = current, dest
    changes = flagmod.diff(plan, target, live)
    report.changes = [c.to_dict() for c in changes]
    data = {"from": current, "to": dest, "changes": report.changes, "dry_run": rt.dry_run}
    settled = rec is not None and rec.status == state.STABLE and rec.phase == dest
    never_started = rec is None and not view.problem and dest == ROLLED_BACK
    if not changes and (settled or never_started):
        return Outcome(ExitCode.OK, f"nothing to do: every flag is already at its {dest} value", ["no flag changes"], data)
    return RollbackDecision(current=current, dest=dest, to=to, live=live, view=view, lock=lock, rec=rec, target=target,
                            changes=changes, reason=reason, data=data)


class DisplayOnlyRollback:
    """A dry run's executor: what the rollback would write, nothing written (the read-only AWS session
    below refuses any write as a second safeguard)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def enter(self, d: RollbackDecision, report: evidence.Report) -> Outcome:
        return self.rt.finish(report, Outcome(ExitCode.OK, f"dry run: rollback {d.current} -> {d.dest} would change "
                                              f"{len(d.changes)} flag(s)", _change_lines(d.changes), d.data))


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
        if not rt.assume_yes and not rt.confirm(_confirmation(rt, f"rollback {current} -> {dest}", changes)):
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
            _stop_if_preempted(rt, state_param, _is_rollback)

        if to is not None:  # a partial rollback marks first: it must not write a flag over a full rollback's
            mark()
        check = before_write if to is not None and marking["version"] is not None else None
        # A full rollback writes the kill switch (its first change in plan order) first, then its marker in
        # the next write slot: the marker is what stops a running advance before its next write, and that
        # advance's writes in flight meanwhile are waited out and written over below, as they always were.
        converger = rt.converger(keep_going=True, before_write=check, after_first_write=mark)
        lines: list[str] = []
        rt.progress.begin(f"rollback {current} -> {dest}", changes)
        try:
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
            _yield_and_stop(rt, report, data, converger.result.changes, err)
        except Incomplete as err:
            report.changes = [c.to_dict() for c in converger.result.changes]
            if record_errors:
                err = Incomplete(f"{err.message}; the state record could not be written either: {record_errors[0].message}", err.hint)
            rt.finish(report, Outcome(err.exit_code, err.message, data=data))
            raise err from None
        all_changes = converger.result.changes
        report.changes = data["changes"] = [c.to_dict() for c in all_changes]
        restored = list(dict.fromkeys(c.name for c in all_changes))
        lines = _change_lines(all_changes) + lines
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
        _check_not_clobbered(rt, store, marked, known_version, yields_to=_is_full_rollback)
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
            _write_unless_preempted(rt, store, record, check, marked, yields_to=_is_rollback)
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


# --- history and unlock ------------------------------------------------------------------------------
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
