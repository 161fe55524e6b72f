"""`cutover guard arm|status|disarm` of a plan with targets (issue 17). Alarms and EventBridge rules are
regional, so every target has its own document, rule and rule target, in its own account and region,
restoring only that target's flags and state record: each is the single-target use case (`commands.guard`)
on that target's Runtime (its role assumed, as every command with targets does) and its GuardStore
(`rt.guard_store`, on the same credentials). The two IAM roles are one pair per account, covering every
region of it (`compile.guard.guard_regions`).

`arm` and `disarm` read and decide in every target first, ask once for all, then write each target in
parallel. A target that cannot be reached (or is not bootstrapped) fails alone, named with why; the others
are still armed (or disarmed); the exit code is the worst target's."""

from __future__ import annotations

from typing import Callable

from cutover.commands import guard
from cutover.commands.runtime import Runtime
from cutover.commands.waves import RuntimeFor, TargetResult, each_target, rollback_order, worst
from cutover.errors import Blocked, ExitCode, UsageError
from cutover.model.plan import Plan
from cutover.model.targets import RolloutTarget
from cutover.outcome import Outcome

Confirm = Callable[[str], bool]


def chosen(plan: Plan, only: str | None) -> list[RolloutTarget]:
    """Every target in wave order, or `--target NAME` alone (exit 2 for an unknown name)."""
    return [t for wave in reversed(rollback_order(plan, only)) for t in wave]


def arm(plan: Plan, runtime_for: RuntimeFor, dry_run: bool = False, confirm: Confirm = lambda summary: True,
        only: str | None = None) -> Outcome:
    return _change(plan, runtime_for, dry_run, confirm, only, "arm", guard.prepare_arm, guard.arm_executor)


def disarm(plan: Plan, runtime_for: RuntimeFor, dry_run: bool = False, confirm: Confirm = lambda summary: True,
           only: str | None = None) -> Outcome:
    return _change(plan, runtime_for, dry_run, confirm, only, "disarm", guard.prepare_disarm, guard.disarm_executor)


def _change(plan: Plan, runtime_for: RuntimeFor, dry_run: bool, confirm: Confirm, only: str | None, verb: str,
            prepare: Callable, executor: Callable) -> Outcome:
    """Read and decide in every target (`prepare`), confirm once, then each target's executor."""
    def reach(t: RolloutTarget) -> Runtime:
        rt = runtime_for(t)
        rt.identity()  # (its account: the roles' pair is the account's)
        return rt

    reached = each_target(chosen(plan, only), reach)
    if verb == "arm":
        _check_one_role_pair_per_account(plan, [(t, rt) for t, rt, err in reached if err is None])
    runtimes = {t: rt for t, rt, err in reached if err is None}

    def read_and_decide(t: RolloutTarget):
        rt = runtimes[t]
        store = rt.guard_store()
        return (rt, store, *prepare(rt, store))

    decided = {t: (p, err) for t, p, err in each_target(list(runtimes), read_and_decide)}
    prepared = [(t, *decided.get(t, (None, err))) for t, _, err in reached]
    todo = [(t, p) for t, p, err in prepared if err is None and not isinstance(p[3], Outcome)]
    if todo and not dry_run and not confirm(f"{verb} the guard in {len(todo)} target(s):\n" + "\n".join(
            f"  {t.name} ({t.where}): {_summary(d)}" for t, (_, _, _, d) in todo)):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")

    def execute(t: RolloutTarget) -> Outcome:
        rt, store, report, d = next(p for t2, p, err in prepared if t2 == t)
        return rt.finish(report, d) if isinstance(d, Outcome) else executor(rt, store).execute(d, report)

    ready = [t for t, _, err in prepared if err is None]
    done = {t: (out, err) for t, out, err in each_target(ready, execute)}
    results = [TargetResult(t, *(done[t] if t in done else (None, err))) for t, _, err in prepared]
    return _combined(results, verb, dry_run, only)


def _summary(d) -> str:
    return d.summary if isinstance(d, guard.ArmDecision) else "; ".join(d.lines)


def _check_one_role_pair_per_account(plan: Plan, reached: list[tuple[RolloutTarget, Runtime]]) -> None:
    """The roles of an account cover the regions of the targets that declare it (`Plan.at_target`): a
    target without `account:` and one naming the same account would each expect the pair to cover only
    its own regions, and fight over it. Refused (exit 2) before anything is written."""
    declared: dict[str, dict[str | None, list[str]]] = {}
    for t, rt in reached:
        declared.setdefault(rt.identity().account, {}).setdefault(t.account, []).append(t.name)
    for account, spellings in declared.items():
        if len(spellings) > 1:
            names = ", ".join(n for ns in spellings.values() for n in ns)
            raise UsageError(f"{plan.path}: targets {names} are all in account {account}, but not all of them say "
                             "account: (the guard's roles are one pair per account, covering its regions); nothing was written",
                             f"write account: \"{account}\" on each of them, or on none")


def _combined(results: list[TargetResult], verb: str, dry_run: bool, only: str | None) -> Outcome:
    failed = [r for r in results if r.exit_code != ExitCode.OK]
    lines = [line for r in results for line in r.section()]
    data = {"action": verb, "dry_run": dry_run, "targets": [r.to_dict() for r in results],
            "failed": [r.target.name for r in failed]}
    past = {"arm": "armed", "disarm": "disarmed"}[verb]
    if failed:
        names = ", ".join(f"{r.target.name} ({r.target.where})" for r in failed)
        retry = " ; ".join(f"cutover guard {verb} --target {r.target.name} --yes" for r in failed)
        return Outcome(worst(failed), f"guard not {past} in {len(failed)} of {len(results)} target(s): {names}"
                       + (f"; {past} in the others" if len(failed) < len(results) and not dry_run else ""),
                       lines, data, hint=f"fix what each says, then retry: {retry}")
    if dry_run:
        pending = sum(1 for r in results if r.outcome.headline.startswith("dry run:"))  # (the others: nothing to do)
        return Outcome(ExitCode.OK, f"dry run: `guard {verb}` would change {pending} of {len(results)} target(s); "
                       "nothing was written", lines, data, hint=f"run `cutover guard {verb}` to apply" if pending else "")
    return Outcome(ExitCode.OK, f"guard {past} in {len(results)} target(s)"
                   + ("" if only is None else f" ({only})"), lines, data,
                   hint="`cutover guard status` shows every target" if verb == "arm" else
                   "no automatic rollback now; re-arm after planned work: cutover guard arm")


def status(plan: Plan, runtime_for: RuntimeFor, check: bool = False, only: str | None = None) -> Outcome:
    """A section per target: armed, partly armed, stale or not armed, and why. `--check`: exit 5 unless every
    target's guard is armed and matches the plan. A target that cannot be read exits with its error either way."""
    results = [TargetResult(t, out, err) for t, out, err in each_target(
        chosen(plan, only), lambda t: _status_one(runtime_for(t)))]
    lines = [line for r in results for line in r.section()]
    state = {r.target.name: (r.outcome.data.get("state") if r.outcome else "unknown") for r in results}
    off = [n for n, s in state.items() if s != "armed"]
    data = {"targets": [r.to_dict() for r in results], "states": state, "not_armed": off}
    unread = [r for r in results if r.outcome is None]
    code = worst(unread) if unread else (ExitCode.DRIFT if check and off else ExitCode.OK)
    if not off:
        return Outcome(code, f"guard ARMED in {len(results)} target(s), each matching the plan", lines, data)
    return Outcome(code, f"guard not armed and current in {len(off)} of {len(results)} target(s): "
                   + ", ".join(f"{n} ({state[n]})" for n in off), lines, data,
                   hint="see each target's section; `cutover guard arm` arms (or re-arms) every target")


def _status_one(rt: Runtime) -> Outcome:
    return guard.status(rt, rt.guard_store())
