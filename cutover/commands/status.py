"""`status`: read everything once, judge the flags (pure), say it; and the alarm rows `watch` shares."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from cutover.core import flags as flagmod
from cutover.core import state
from cutover.errors import CutoverError, ExitCode
from cutover.model.durations import format_duration
from cutover.model.plan import PENDING, ROLLED_BACK, Plan
from cutover.outcome import Outcome
from cutover.commands.runtime import Runtime
from cutover.commands.transition import bake_remaining, caller_account, read_all, window_lines


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
    live, view, lock = read_all(rt)
    now, account = rt.clock.now(), caller_account(rt)
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
    explain: list[str] = []  # what an unfinished run or an odd flag means (a plan with targets shows these too)
    if interrupted:
        finish = ("finish it by re-running `cutover rollback`" if rec.status == state.ROLLING_BACK
                  else "finish it with `cutover advance`, or undo it with `cutover rollback`")
        explain.append(f"{rec.status} was interrupted: {finish}")
        lines.append(f"    {explain[-1]}")

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
        explain.append(f"mixed between {rec.phase} and {rec.target}: at {rec.target}: {', '.join(on_target) or 'none'}; "
                       f"at {rec.phase}: {', '.join(on_recorded) or 'none'}")
        lines.append(f"    {explain[-1]}")
    data["drift"] = drift
    if verdict.restored_unrecorded:
        explain.append("every flag is at its rollback value, but the state record says otherwise: a rollback that could "
                       "not write the record (or a hand edit); `cutover rollback` writes the record")
        lines.append(f"    {explain[-1]}")
    elif drift and not view.problem and all(flagmod.is_at(f, live.get(f.key), f.rollback) for f in plan.flags if f.name in drift):
        explain.append("the flags that differ are at their rollback values: a rollback that stopped before it marked the state "
                       "record (it writes the kill switch first), or a hand edit; `cutover rollback` finishes it")
        lines.append(f"    {explain[-1]}")
    data["explain"] = explain
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
    try:
        return alarm_rows(rt, [c for c in rt.plan.checks.values() if c.type == "alarms"])
    except CutoverError as err:
        return [{"name": "(alarms)", "state": "UNKNOWN", "since": err.message}]


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
