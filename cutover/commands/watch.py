"""`cutover watch`: hold the current phase through its bake, watching its alarms and its flags.

Each poll reads the phase's alarms (one batched DescribeAlarms per alarms gate) and every flag plus
the state record (one GetParameters per 10 names). An alarm in ALARM, or a flag that drifted from the
phase's declared values (during shadow that is the read-only guard), ends the watch: with
auto-rollback it rolls back at once (exit 6), without it exits 1 and prints the rollback command. A
bake completed with everything quiet exits 0. A rollback made by someone else ends the watch (exit 3):
it never triggers a second, automatic one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from cutover.core import flags as flagmod
from cutover.commands import orchestrator
from cutover.core import state
from cutover.errors import CutoverError, ExitCode, UsageError
from cutover.model.plan import PENDING, ROLLED_BACK
from cutover.outcome import Outcome
from cutover.redact import shown
from cutover.commands.runtime import Runtime

MIN_INTERVAL = 1.0  # DescribeAlarms allows ~9 calls/s per account; one poll a second is far below
MAX_INTERVAL = 3600.0  # an alarm noticed an hour late is not being watched


def interval_problem(seconds: float) -> str | None:
    """Why `seconds` cannot be the time between polls (nan, inf, 0, negative, too long), or None."""
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:  # false for nan too
        return f"{seconds:g} is not a number of seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}"
    return None


@dataclass
class Poll:
    at: str
    phase: str
    baked: float
    bake: float
    alarms: list[dict] = field(default_factory=list)  # name, state, since
    drift: list[str] = field(default_factory=list)
    firing: list[str] = field(default_factory=list)
    event: str = "polling"  # polling | alarm | metric | drift | baked | rolled_back_elsewhere
    metrics: list[dict] = field(default_factory=list)  # each `watch:` check's judgement (every figure)
    drift_found: dict[str, str] = field(default_factory=dict)  # drifted flag -> what was found, as shown
    target: str = ""  # a plan with targets: the target polled

    @property
    def metric_failures(self) -> list[str]:
        """The reason lines of `watch:` checks that FAIL (they end the watch like an alarm)."""
        return [m["reason"] for m in self.metrics if m["outcome"] == "FAIL"]

    @property
    def metric_unjudged(self) -> list[str]:
        """Reasons of `watch:` checks with no usable judgement (INCONCLUSIVE or ERROR, not let through)."""
        return [m["reason"] for m in self.metrics if m["outcome"] != "FAIL" and not m["passed"]]

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "target" or v}  # (one target: as before)


def poll(rt: Runtime, phase: str) -> tuple[Poll, state.StateView]:
    plan = rt.plan
    live = rt.read_live([plan.state_parameter])
    view = state.interpret(plan, live.get(plan.state_parameter))
    declared = plan.values_for(phase)
    drifted = [f for f in plan.flags if not flagmod.is_at(f, live.get(f.key), declared[f.name])]
    drift = [f.name for f in drifted]
    found = {f.name: _found(f, live.get(f.key), declared[f.name]) for f in drifted}
    alarms = orchestrator.alarm_rows(rt, plan.alarm_checks(phase))
    firing = [a["name"] for a in alarms if a["state"] in orchestrator.FIRING]
    rec = view.record
    baked = (rt.clock.now() - state.parse_iso(rec.entered_at)).total_seconds() if rec and rec.entered_at else 0.0
    metrics = _judge_watch(rt, phase, state.parse_iso(rec.entered_at) if rec and rec.entered_at else None)
    return Poll(state.iso(rt.clock.now()), phase, max(baked, 0.0), plan.phase(phase).bake, alarms, drift, firing,
                metrics=metrics, drift_found=found), view


def _found(flag, param, declared: str) -> str:
    """`mode is 'live', declared 'safe'` (values as `redact.shown` displays them)."""
    if param is None:
        return f"{flag.name} is missing, declared {shown(flag, declared)!r}"
    if param.value == declared:  # a secure flag stored as plain String
        return f"{flag.name} holds its declared value as {param.type}, not SecureString"
    return f"{flag.name} is {shown(flag, param.value)!r}, declared {shown(flag, declared)!r}"


def _judge_watch(rt: Runtime, phase: str, entered_at) -> list[dict]:
    """The phase's `watch:` metric checks over the bake so far (none until one period has closed)."""
    from cutover.checks.metric import evidence, judge_bake

    if entered_at is None:
        return []
    out = []
    for check in rt.plan.watch_checks(phase):
        judgement = judge_bake(check, rt.aws, entered_at, rt.clock.now(), rt.plan.phase(phase).bake)
        out.append(evidence(check, judgement) if judgement else {
            "check": check.name, "outcome": "PENDING", "passed": False,
            "reason": f"{check.name} PENDING no period of the bake has closed yet (settle {_fmt(check.settle)})"})
    return out


@dataclass
class Watching:
    """One watch under way: the phase it holds, the state version it began on, its evidence report."""

    rt: Runtime
    phase: str
    version: object
    report: object
    auto_rollback: bool


def check_interval(interval: float) -> None:
    problem = interval_problem(interval)
    if problem:  # before any AWS call
        raise UsageError(f"interval {problem}", "poll every 30 s (the default) or pass --interval SECONDS")


def begin(rt: Runtime, auto_rollback: bool) -> Watching | Outcome:
    """What to watch, or (an Outcome) why there is nothing to watch."""
    plan = rt.plan
    view = state.StateStore(plan, rt.params).read()
    if view.problem:
        raise CutoverError(f"cannot watch: {view.problem}", view.fix)
    phase = view.phase
    if phase in (PENDING, ROLLED_BACK) or view.status != state.STABLE:
        return Outcome(ExitCode.OK, f"nothing to watch: the cutover is {phase} ({view.status})",
                       hint="advance first: cutover advance" if phase in (PENDING, ROLLED_BACK) else "run `cutover status`")
    return Watching(rt, phase, view.version, rt.new_report("watch", from_state=phase, to_state=phase),
                    auto_rollback or plan.phase(phase).auto_rollback)


TROUBLE = ("alarm", "metric", "drift")  # the events that roll back (with auto-rollback)


def judge(w: Watching, p: Poll, now_view: state.StateView) -> str:
    """Set p.event from one poll; return why the watch ends ("" while it goes on)."""
    if now_view.version != w.version and (now_view.problem or now_view.status != state.STABLE or now_view.phase != w.phase):
        p.event = "rolled_back_elsewhere"
        who = now_view.record.actor if now_view.record else "someone"
        return f"the state changed while watching ({who}: {now_view.phase}, {now_view.status}); watch stopped"
    if p.firing or p.drift or p.metric_failures:
        p.event = "alarm" if p.firing else "metric" if p.metric_failures else "drift"
        why = (f"alarm {', '.join(p.firing)} in ALARM" if p.firing else "; ".join(p.metric_failures)
               if p.metric_failures else f"flag drift: {'; '.join(p.drift_found.get(n, n) for n in p.drift)}")
        w.report.notes.append(f"{why} during {w.phase}")
        return why
    if p.baked >= p.bake and p.metric_unjudged:  # never a silent pass on no data
        p.event = "unjudged"
        return f"{w.phase} baked, but a watched metric has no judgement: {'; '.join(p.metric_unjudged)}"
    if p.baked >= p.bake:
        p.event = "baked"
        return f"{w.phase} baked for {_fmt(p.bake)} with every alarm quiet and no drift"
    return ""


UNJUDGED_HINT = ("check the metric and re-run `cutover watch` (it judges the whole bake again), or roll back: "
                 "cutover rollback --yes --reason \"no metric data\"")


def pause(p: Poll, interval: float) -> float:
    """How long to sleep before the next poll: the interval, or less when the bake ends sooner."""
    return min(interval, max(p.bake - p.baked, 0.0)) or interval


def watch(rt: Runtime, auto_rollback: bool, interval: float, show: Callable[[Poll], None],
          max_polls: int | None = None) -> Outcome:
    check_interval(interval)
    w = begin(rt, auto_rollback)
    if isinstance(w, Outcome):
        return w
    polls = 0
    while True:
        p, now_view = poll(rt, w.phase)
        polls += 1
        why = judge(w, p, now_view)
        show(p)
        if why:
            return rt.finish(w.report, _ending(w, p, why))
        if max_polls is not None and polls >= max_polls:
            return rt.finish(w.report, Outcome(ExitCode.OK, f"stopped after {polls} polls; {w.phase} still baking",
                                               data={"last_poll": p.to_dict()}))
        rt.clock.sleep(pause(p, interval))


def _ending(w: Watching, p: Poll, why: str) -> Outcome:
    """The outcome of a single-target watch that ended with `why` (p.event says how)."""
    data = {"last_poll": p.to_dict()}
    if p.event == "rolled_back_elsewhere":
        return Outcome(ExitCode.BLOCKED, why, data=data, hint="run `cutover status`")
    if p.event in TROUBLE and w.auto_rollback:
        rolled = orchestrator.rollback(w.rt, reason=f"auto-rollback by watch: {why}")
        return Outcome(ExitCode.ROLLED_BACK, f"{why}: rolled back automatically ({rolled.headline})",
                       rolled.lines, {**data, "rollback": rolled.data})
    if p.event in TROUBLE:
        return Outcome(ExitCode.GATE_FAILED, f"{why} during {w.phase}; nothing was changed", data=data,
                       hint=orchestrator.rollback_now_hint(why))
    if p.event == "unjudged":
        return Outcome(ExitCode.GATE_FAILED, why, data=data, hint=UNJUDGED_HINT)
    nxt = w.rt.plan.next_phase(w.phase)
    return Outcome(ExitCode.OK, why, data=data,
                   hint=f"the next advance may proceed: cutover advance{' --approve' if nxt and nxt.approval else ''} --reason \"...\""
                   if nxt else "this is the last phase: the cutover is complete")


def _fmt(seconds: float) -> str:
    from cutover.model.durations import format_duration

    return format_duration(seconds)


# --- renderers -------------------------------------------------------------------------------------
def json_lines(write: Callable[[str], None]) -> Callable[[Poll], None]:
    import json

    return lambda p: write(json.dumps(p.to_dict(), sort_keys=True))


class LiveView:
    """A rich live view: alarms with their state and time in state, the bake's progress, drift."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.live = Live(console=Console(stderr=True), auto_refresh=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)

    def __call__(self, p: Poll) -> None:
        from rich.console import Group
        from rich.markup import escape
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        table = Table(title=f"{p.phase}: baked {_fmt(p.baked)} of {_fmt(p.bake)}  ({p.at})")
        table.add_column("alarm")
        table.add_column("state")
        table.add_column("since")
        for a in p.alarms:
            style = "red" if a["state"] != "OK" else "green"
            table.add_row(a["name"], f"[{style}]{a['state']}[/{style}]", a["since"])
        drift = f"[red]drift: {'; '.join(p.drift_found.get(n, n) for n in p.drift)}[/red]" if p.drift else "[green]flags as declared[/green]"
        bar = ProgressBar(total=max(p.bake, 1), completed=min(p.baked, p.bake))
        metrics = [f"[{'green' if m['outcome'] == 'PASS' else 'red'}]{escape(m['reason'])}[/]" for m in p.metrics]
        self.live.update(Group(table, bar, drift, *metrics), refresh=True)
