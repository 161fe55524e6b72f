"""The guard's use cases: `guard arm`, `guard status`, `guard disarm`. Each reads what exists in the
account through the GuardStore port (`observe`), compares it with what the plan compiles to
(`compile.guard.desired`, `compare`: pure), then creates, updates or removes only what differs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Protocol

from cutover import limits
from cutover.compile.guard import (
    LAMBDA_SCRIPT,
    PUT_SCRIPT,
    SCRIPT_HANDLER,
    SCRIPT_RUNTIME,
    TARGET_ID,
    VERIFY_SCRIPT,
    Desired,
    armed_digest,
    without_administrator_trust,
    bootstrap_hint,
    check_plan,
    describe_writes,
    desired,
    document_writes,
    script_of,
    stack_name,
    watched_alarms,
    watches,
    write_label,
)
from cutover.compile.guard_names import Names, names
from cutover.core.notify import notify
from cutover.errors import Blocked, CutoverError, ExitCode, Incomplete
from cutover.model.plan import Plan, function_name
from cutover.outcome import Outcome
from cutover.redact import HIDDEN, shown
from cutover.commands.runtime import Runtime

# --- the port --------------------------------------------------------------------------------------------
class GuardStore(Protocol):
    """What the guard needs from AWS (`cutover.adapters.aws.GuardResources`). Reads return None when absent. The
    roles are only read: an admin creates them (`bootstrap_template`)."""

    def get_role(self, name: str, managed: Iterable[str] = ()) -> dict | None: ...
    def get_document(self, name: str, version: str | None = None) -> dict | None: ...
    def create_document(self, name: str, content: str, tags: dict[str, str]) -> str: ...
    def update_document(self, name: str, content: str, tags: dict[str, str]) -> str: ...
    def delete_document(self, name: str) -> bool: ...
    def get_rule(self, name: str) -> dict | None: ...
    def list_targets(self, rule: str) -> list[dict]: ...
    def put_rule(self, name: str, pattern: dict, description: str, tags: dict[str, str]) -> str: ...
    def put_targets(self, rule: str, targets: list[dict]) -> None: ...
    def remove_targets(self, rule: str, ids: list[str]) -> None: ...
    def delete_rule(self, name: str) -> bool: ...


# --- what exists, compared with what the plan wants --------------------------------------------------------
@dataclass
class Observed:
    roles: dict[str, dict | None]
    document: dict | None
    rule: dict | None
    targets: list[dict]


def observe(store: GuardStore, n: Names, want: Desired | None = None) -> Observed:
    """What exists; the managed policies `want`'s roles hold are read too (an operator may read those only)."""
    rule = store.get_rule(n.rule)
    managed = [name for spec in (want.roles if want else ()) for name in spec.managed]
    return Observed(
        roles={name: store.get_role(name, managed) for name in (n.automation_role, n.events_role)},
        document=store.get_document(n.document),
        rule=rule,
        targets=store.list_targets(n.rule) if rule is not None else [],
    )


@dataclass
class Resource:
    kind: str  # automation role | events role | document | rule | target
    name: str
    present: bool
    differences: list[str] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return self.present and not self.differences

    @property
    def verb(self) -> str:
        return "create" if not self.present else ("update" if self.differences else "unchanged")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "name": self.name, "present": self.present, "current": self.current,
                "differences": list(self.differences)}


def _content(doc: dict | None) -> dict | None:
    try:
        return json.loads(doc["content"]) if doc else None
    except (ValueError, TypeError, KeyError):
        return {}


def _doc_differences(plan: Plan, armed: dict, want: dict, tags: dict[str, str]) -> list[str]:
    diffs = []
    digest = armed_digest(armed, tags)
    if digest != plan.digest:
        diffs.append(f"armed for plan sha256 {(digest or 'unknown')[:12]}, the plan file is now {plan.digest[:12]}")
    by_key = {f.key: f for f in plan.flags}

    def show(w: dict) -> str:
        flag = by_key.get(w["key"])
        value = shown(flag, w["value"]) if flag is not None else HIDDEN
        return f"{value} ({w['type']})" if w["kind"] == "ssm" else value

    have = {w["key"]: w for w in document_writes(armed) if w["key"] != plan.state_parameter}
    need = {w["key"]: w for w in document_writes(want) if w["key"] != plan.state_parameter}
    for k, w in need.items():
        if k not in have:
            diffs.append(f"{write_label(w)} is not rolled back by the armed guard")
        elif (have[k]["value"], have[k]["type"]) != (w["value"], w["type"]):
            diffs.append(f"{write_label(w)}: armed {show(have[k])}, plan {show(w)}")
    diffs += [f"{write_label(w)} is rolled back by the armed guard but is not in the plan" for k, w in have.items() if k not in need]
    for step in armed.get("mainSteps", []):
        if step.get("action") != "aws:executeScript":
            continue
        payload = step.get("inputs", {}).get("InputPayload") or {}
        script, what = ((VERIFY_SCRIPT, "that checks the rollback and records it") if "StateParameter" in payload else
                        (PUT_SCRIPT, f"writing SSM flags from {step.get('name', '?')}") if "Parameters" in payload else
                        (LAMBDA_SCRIPT, f"for Lambda function {function_name(payload.get('Function', '?'))}"))
        if script_of(step) != (SCRIPT_RUNTIME, SCRIPT_HANDLER, script):
            diffs.append(f"the armed step {what} runs another script than this cutover's (armed by another version, or edited)")
    if not any("StateParameter" in (s.get("inputs", {}).get("InputPayload") or {}) for s in armed.get("mainSteps", [])):
        diffs.append("the armed document does not check its rollback: it would record rolled_back even if a flag failed")
    if not diffs and list(have) != list(need):
        diffs.append("the rollback order differs from the plan's")
    if not diffs and armed != want:
        diffs.append("the document differs from the plan's (state record, role or parameters)")
    return diffs


def _alarm_label(alarm) -> str:
    return alarm if isinstance(alarm, str) else f"{alarm.get('prefix', alarm)}*"


def fired_on(pattern: dict | None) -> dict[str, tuple[str, ...]]:
    """Alarm (a name, or 'prefix*') -> the states it fires on, from a rule's pattern (either shape)."""
    detail = (pattern or {}).get("detail") or {}
    out: dict[str, tuple[str, ...]] = {}
    for branch in detail.get("$or") or [detail]:
        states = tuple((branch.get("state") or {}).get("value") or ())
        for alarm in branch.get("alarmName") or []:
            key = _alarm_label(alarm)
            out[key] = tuple(dict.fromkeys((*out.get(key, ()), *states)))
    return out


def _alarm_differences(armed: dict | None, want: dict) -> list[str]:
    if armed == want:
        return []
    have, need = fired_on(armed), fired_on(want)
    diffs = []
    if [a for a in need if a not in have]:
        diffs.append("alarms not watched by the armed rule: " + ", ".join(a for a in need if a not in have))
    if [a for a in have if a not in need]:
        diffs.append("alarms watched by the armed rule but no longer in the plan: " + ", ".join(a for a in have if a not in need))
    for a in [a for a in need if a in have and have[a] != need[a]]:
        if "INSUFFICIENT_DATA" in need[a] and "INSUFFICIENT_DATA" not in have[a]:
            diffs.append(f"does not fire on INSUFFICIENT_DATA of {a}, the plan says it should (insufficient_data: fail)")
        elif "INSUFFICIENT_DATA" in have[a] and "INSUFFICIENT_DATA" not in need[a]:
            diffs.append(f"fires on INSUFFICIENT_DATA of {a}, the plan says it should not (insufficient_data: ok)")
        else:
            diffs.append(f"fires on {', '.join(have[a]) or 'nothing'} of {a}, the plan on {', '.join(need[a])}")
    return diffs or ["the rule's event pattern differs from the plan's"]


def _target_view(t: dict) -> dict:
    return {k: t.get(k) for k in ("Id", "Arn", "RoleArn", "InputTransformer")}


def _policy_differences(kind: str, have: dict[str, dict], want: dict[str, dict]) -> list[str]:
    """A role's inline (or attached managed) policies against the plan's: by name, then content."""
    out = [f"{kind} policy {name} is missing" for name in want if name not in have]
    if any(name in have and have[name] != doc for name, doc in want.items()):
        out.append("its permissions differ from the plan's least privilege")
    extra = [name for name in have if name not in want]
    if extra:
        out.append(f"extra {kind} policies: {', '.join(extra)}")
    return out


def compare(plan: Plan, want: Desired, seen: Observed) -> list[Resource]:
    """Each resource, in the order `arm` makes them: present? and how it differs from the plan."""
    out = []
    for spec in want.roles:
        role = seen.roles.get(spec.name)
        r = Resource(spec.kind, spec.name, role is not None)
        if role is not None:
            if without_administrator_trust(role["trust"]) != spec.trust:
                r.differences.append("its trust policy differs")
            r.differences += _policy_differences("inline", role["policies"], spec.inline)
            r.differences += _policy_differences("managed", role.get("managed", {}), spec.managed)
        out.append(r)

    d = Resource("document", want.names.document, seen.document is not None)
    if seen.document is not None:
        if seen.document.get("type") not in ("Automation", None, ""):
            d.differences.append(f"it is a {seen.document['type']} document, not Automation")
        else:
            d.differences += _doc_differences(plan, _content(seen.document) or {}, want.document, seen.document.get("tags", {}))
    out.append(d)

    r = Resource("rule", want.names.rule, seen.rule is not None)
    if seen.rule is not None:
        if seen.rule.get("state") != "ENABLED":
            r.differences.append(f"the rule is {seen.rule.get('state') or 'not enabled'}")
        r.differences += _alarm_differences(seen.rule.get("pattern"), want.pattern)
    out.append(r)

    ours = next((t for t in seen.targets if t.get("Id") == TARGET_ID), None)
    t = Resource("target", f"{want.names.rule}/{TARGET_ID}", ours is not None)
    if ours is not None and _target_view(ours) != _target_view(want.target):
        t.differences.append("the target's document, role or input differs")
    out.append(t)
    return out


# --- use cases ---------------------------------------------------------------------------------------------
def _account(rt: Runtime) -> str:
    return rt.identity().account


def trigger_line(plan: Plan) -> str:
    """When the guard fires, per insufficient_data policy."""
    parts = []
    for w in watches(plan):
        if not w.empty:
            shown = ", ".join([*w.names, *(f"{p}* (prefix)" for p in w.prefixes)])
            when = ("ALARM or INSUFFICIENT_DATA (insufficient_data: fail)" if "INSUFFICIENT_DATA" in w.states
                    else "ALARM only (insufficient_data: ok)")
            parts.append(f"on {when}: {shown}")
    return "triggers on a CloudWatch alarm state change: " + ("; ".join(parts) or "none")


def _step_lines(rows: list[dict]) -> list[str]:
    """Numbered by step: a Lambda step lists the variables it sets in its one update."""
    out, last, n = [], None, 0
    for w in rows:
        what = f" ({w['flag']})" if w.get("flag") else ""
        if w["kind"] == "lambda":
            if w["step"] != last:
                n += 1
                out.append(f"    {n}. Lambda {function_name(w['function'])}, one update keeping its other variables:")
            out.append(f"         {w['variable']}{what} = {w['value']}")
        else:
            n += 1
            secure = " [SecureString]" if w["type"] == "SecureString" else ""
            out.append(f"    {n}. {w['parameter']}{what} = {w['value']}{secure}")
        last = w["step"]
    return out


def _steps_for_evidence(resources: list[Resource], done: dict[str, str], dry_run: bool = False) -> list[dict]:
    rows = []
    for r in resources:
        if r.verb == "unchanged":
            outcome = "unchanged"
        elif dry_run:
            outcome = f"dry run: would {r.verb}"
        else:
            outcome = done.get(r.name + r.kind) or "not reached"
        rows.append({"step": f"{r.verb} {r.kind} {r.name}", "expected": "matches the plan", "outcome": outcome,
                     "ok": outcome != "not reached"})
    return rows


@dataclass
class ArmDecision:
    """What `arm` would make, decided from one read: every resource compared with the plan, those to write
    (`todo`), and what is shown and recorded."""

    want: Desired
    resources: list[Resource]
    todo: list[Resource]
    info: list[str]
    data: dict

    @property
    def plan_lines(self) -> list[str]:
        return [f"{r.verb} {r.kind} {r.name}" + (f": {'; '.join(r.differences)}" if r.differences else "") for r in self.resources]

    @property
    def summary(self) -> str:
        return ", ".join(f"{r.verb} {r.kind} {r.name}" for r in self.todo)


def arm(rt: Runtime, store: GuardStore) -> Outcome:
    """Create or update the guard for `rt.plan`; idempotent. Read and decide (`prepare_arm`), then an
    executor: `WritingArm`, or for a dry run `DisplayOnlyArm` (reads only)."""
    return decided_then_executed(rt, store, prepare_arm, arm_executor)


def decided_then_executed(rt: Runtime, store: GuardStore, prepare, executor) -> Outcome:
    """`prepare` (read and decide), then the executor of the decision; a decided Outcome (nothing to do) as it is."""
    report, decided = prepare(rt, store)
    if isinstance(decided, Outcome):
        return rt.finish(report, decided)
    return executor(rt, store).execute(decided, report)


def arm_executor(rt: Runtime, store: GuardStore) -> "DisplayOnlyArm | WritingArm":
    return DisplayOnlyArm(rt) if rt.dry_run else WritingArm(rt, store)


def prepare_arm(rt: Runtime, store: GuardStore) -> tuple:
    """(report, decision), or (report, Outcome) when the guard is armed and matches the plan already. One
    read of what exists (`observe`), then `decide_arm`; refused (exit 3) while the roles are not the plan's."""
    plan = rt.plan
    check_plan(plan)
    report = rt.new_report("guard-arm")
    want = desired(plan, _account(rt))
    d = decide_arm(plan, want, observe(store, want.names, want), rt.dry_run)
    report.steps = _steps_for_evidence(d.resources, {}, rt.dry_run)
    _require_bootstrapped(plan, d.resources)
    if not d.todo:
        return report, Outcome(ExitCode.OK, f"nothing to do: the guard for {plan.name} is armed and matches the plan",
                               d.plan_lines + d.info, d.data)
    return report, d


def decide_arm(plan: Plan, want: Desired, seen: Observed, dry_run: bool) -> ArmDecision:
    """Pure: what exists (`seen`) against what the plan compiles to (`want`)."""
    resources = compare(plan, want, seen)
    rows = describe_writes(plan, want.document)
    data = {"action": "arm", "plan": plan.name, "plan_digest": plan.digest, "dry_run": dry_run,
            "resources": [{**r.to_dict(), "action": r.verb} for r in resources], "steps": rows,
            "names": want.names.__dict__, "alarms": dict(zip(("names", "prefixes"), map(list, watched_alarms(plan))))}
    return ArmDecision(want, resources, [r for r in resources if r.verb != "unchanged"],
                       [trigger_line(plan), "it will, in order:", *_step_lines(rows)], data)


class DisplayOnlyArm:
    """A dry run's executor: what arming would write, nothing written (the session is read-only too)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def execute(self, d: ArmDecision, report) -> Outcome:
        plan = self.rt.plan
        return self.rt.finish(report, Outcome(
            ExitCode.OK, f"dry run: arming the guard for {plan.name} would {_count(d.todo)}; nothing was written",
            d.plan_lines + d.info, d.data, hint="run `cutover guard arm` to apply"))


class WritingArm:
    """The executor that writes the document, the rule and its target, reads them back, and tells the
    plan's topic. It finishes its report itself: a failure is evidence too."""

    def __init__(self, rt: Runtime, store: GuardStore) -> None:
        self.rt, self.store = rt, store

    def execute(self, d: ArmDecision, report) -> Outcome:
        rt, store, plan, want, resources, todo = self.rt, self.store, self.rt.plan, d.want, d.resources, d.todo
        if not rt.confirm(f"arm the guard for {plan.name}: {d.summary}"):
            raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
        done: dict[str, str] = {}
        try:
            _apply(store, want, resources, done)
            after = compare(plan, want, observe(store, want.names, want))
            off = [r for r in after if not r.current]
            if off:
                raise Incomplete("the guard was written but reads back different: " +
                                 "; ".join(f"{r.kind} {r.name}: {', '.join(r.differences) or 'missing'}" for r in off),
                                 "re-run `cutover guard arm`; `cutover guard status` shows what differs")
        except CutoverError as err:
            report.steps = _steps_for_evidence(resources, done)
            rt.finish(report, Outcome(err.exit_code, err.message, data=d.data))
            raise
        report.steps = _steps_for_evidence(resources, done)
        lines = [f"{done.get(r.name + r.kind, 'unchanged')} {r.kind} {r.name}"
                 + (f" (its default version is now {done['document version']})" if r.kind == "document" and "document version" in done else "")
                 for r in resources]
        notify(rt, "guard ARMED", [f"{_count(todo, past=True)}", trigger_line(plan),
                                   f"rolls back {len(plan.flags)} flag(s) to their known-safe values, then reads them back: rolled_back only if all are restored"])
        return rt.finish(report, Outcome(
            ExitCode.OK, f"guard armed for {plan.name}: {_count(todo, past=True)}", lines + d.info, d.data,
            hint="`cutover guard status` shows it; disarm for planned work with `cutover guard disarm`"))


def _require_bootstrapped(plan: Plan, resources: list[Resource]) -> None:
    """arm writes only the document, the rule and its target: the roles must already be the plan's."""
    off = [r for r in resources if r.kind.endswith(" role") and not r.current]
    if off:
        raise Blocked("the guard's roles are not bootstrapped for this plan: " + "; ".join(
            f"{r.kind} {r.name} {'is missing' if not r.present else 'differs (' + ', '.join(r.differences) + ')'}" for r in off)
            + "; nothing was written", bootstrap_hint(plan))


def _count(todo: list[Resource], past: bool = False) -> str:
    created = sum(1 for r in todo if r.verb == "create")
    updated = len(todo) - created
    parts = []
    if created:
        parts.append(f"{'created' if past else 'create'} {created} resource(s)")
    if updated:
        parts.append(f"{'updated' if past else 'update'} {updated} resource(s)")
    return " and ".join(parts) or "change nothing"


def _apply(store: GuardStore, want: Desired, resources: list[Resource], done: dict[str, str]) -> None:
    """The document (it names the automation role), then the rule, then its target (it names the events
    role). `done` gets each resource's outcome (and the document's new default version) as it goes."""
    by_kind = {r.kind: r for r in resources}
    content = limits.document_content(want.document)
    d = by_kind["document"]
    if d.verb == "create":
        store.create_document(d.name, content, want.tags)
        done[d.name + d.kind] = "created"
    elif d.verb == "update":
        version = store.update_document(d.name, content, want.tags)
        done[d.name + d.kind] = "updated"
        done["document version"] = version
    r = by_kind["rule"]
    if r.verb != "unchanged":
        store.put_rule(r.name, want.pattern, want.rule_description, want.tags)
        done[r.name + r.kind] = "created" if not r.present else "updated"
    t = by_kind["target"]
    if t.verb != "unchanged":
        store.put_targets(want.names.rule, [want.target])
        done[t.name + t.kind] = "created" if not t.present else "updated"


def status(rt: Runtime, store: GuardStore, check: bool = False) -> Outcome:
    """Armed or not; whether it matches the plan (digest, flags, values, alarms); what it would do."""
    plan = rt.plan
    want = desired(plan, _account(rt))
    seen = observe(store, want.names, want)
    resources = compare(plan, want, seen)
    armed_parts = [r for r in resources if not r.kind.endswith(" role")]  # the roles are the bootstrap's
    present = [r for r in armed_parts if r.present]
    current = all(r.current for r in resources)
    if not present:
        state, headline = "disarmed", f"guard NOT ARMED for {plan.name}"
    elif len(present) < len(armed_parts) or not all(r.present for r in resources):
        state = "partial"
        headline = f"guard PARTLY ARMED for {plan.name}: missing {', '.join(r.kind for r in resources if not r.present)}"
    elif current:
        state, headline = "armed", f"guard ARMED for {plan.name} and it matches the plan"
    else:
        n = sum(len(r.differences) for r in resources)
        state, headline = "stale", f"guard ARMED for {plan.name} but STALE: {n} difference(s) from the plan"
    lines = []
    for r in resources:
        mark = "current" if r.current else ("MISSING" if not r.present else "DIFFERS")
        extra = ""
        if r.kind == "document" and seen.document is not None:
            extra = f" (default version {seen.document.get('default_version')} of {seen.document.get('latest_version')})"
        if r.kind == "rule" and seen.rule is not None:
            extra = f" ({seen.rule.get('state')})"
        lines.append(f"{r.kind} {r.name}{extra}: {mark}")
        lines += [f"    {d}" for d in r.differences]
    others = [t.get("Id") for t in seen.targets if t.get("Id") != TARGET_ID]
    if others:
        lines.append(f"note: the rule has other targets, not cutover's: {', '.join(others)}")
    lines.append(trigger_line(plan) + ("" if seen.rule is not None else " (once armed)"))
    armed_doc = _content(seen.document)
    if armed_doc:
        rows = describe_writes(plan, armed_doc)
        lines.append("when it fires it would, in order:")
    else:
        rows = describe_writes(plan, want.document)
        lines.append("armed from this plan it would, in order:")
    lines += _step_lines(rows)
    data = {"action": "status", "plan": plan.name, "plan_digest": plan.digest, "state": state,
            "armed": state in ("armed", "stale"), "current": current,
            "armed_digest": armed_digest(armed_doc, (seen.document or {}).get("tags")) if armed_doc else None,
            "resources": [r.to_dict() for r in resources], "differences": [d for r in resources for d in r.differences],
            "steps": rows, "other_targets": others, "names": want.names.__dict__,
            "alarms": dict(zip(("names", "prefixes"), map(list, watched_alarms(plan))))}
    hint = {"disarmed": "arm it with `cutover guard arm` (try --dry-run first)",
            "partial": "finish it with `cutover guard arm`, or remove it with `cutover guard disarm`",
            "stale": "re-arm with `cutover guard arm` so it rolls back what the plan says now"}.get(state, "")
    if not all(r.current for r in resources if r.kind.endswith(" role")):
        hint = "the roles are not this plan's: " + bootstrap_hint(plan)
    code = ExitCode.DRIFT if check and state != "armed" else ExitCode.OK
    return Outcome(code, headline, lines, data, hint=hint)


@dataclass
class DisarmDecision:
    """What `disarm` would remove (kind, name), in order: the rule's targets, the rule, the document."""

    names: Names
    found: list[tuple[str, str]]
    targets: list[str]  # the ids of the rule's targets
    lines: list[str]
    kept: list[str]
    data: dict


def disarm(rt: Runtime, store: GuardStore) -> Outcome:
    """Remove the target(s), the rule and the document. The roles stay: they are the admin's bootstrap
    (removing them is deleting its stack). Read and decide (`prepare_disarm`), then an executor:
    `WritingDisarm`, or for a dry run `DisplayOnlyDisarm` (reads only)."""
    return decided_then_executed(rt, store, prepare_disarm, disarm_executor)


def disarm_executor(rt: Runtime, store: GuardStore) -> "DisplayOnlyDisarm | WritingDisarm":
    return DisplayOnlyDisarm(rt) if rt.dry_run else WritingDisarm(rt, store)


def prepare_disarm(rt: Runtime, store: GuardStore) -> tuple:
    """(report, decision), or (report, Outcome) when nothing is armed: one read, then `decide_disarm`."""
    n = names(rt.plan)
    report = rt.new_report("guard-disarm")
    d = decide_disarm(rt.plan, n, observe(store, n), rt.dry_run)
    report.steps = [{"step": line, "expected": "removed", "outcome": "dry run: would remove" if rt.dry_run else "not reached",
                     "ok": rt.dry_run} for line in d.lines]
    if not d.found:
        return report, Outcome(ExitCode.OK, f"nothing to do: no guard is armed for {rt.plan.name}", d.kept, d.data)
    return report, d


def decide_disarm(plan: Plan, n: Names, seen: Observed, dry_run: bool) -> DisarmDecision:
    """Pure: what of the guard exists, to be removed; the bootstrap's roles are kept."""
    found = []
    if seen.targets:
        found.append(("targets", f"{n.rule}: {', '.join(t.get('Id', '?') for t in seen.targets)}"))
    if seen.rule is not None:
        found.append(("rule", n.rule))
    if seen.document is not None:
        found.append(("document", n.document))
    kept = [name for name in (n.automation_role, n.events_role) if seen.roles.get(name) is not None]
    kept_line = ([f"kept: roles {', '.join(kept)} (the bootstrap's; to remove them an admin deletes the stack: "
                  f"aws cloudformation delete-stack --stack-name {stack_name(plan)})"] if kept else [])
    data = {"action": "disarm", "plan": plan.name, "dry_run": dry_run,
            "resources": [{"kind": k, "name": v} for k, v in found], "names": n.__dict__}
    return DisarmDecision(n, found, [t["Id"] for t in seen.targets], [f"remove {kind} {name}" for kind, name in found],
                          kept_line, data)


class DisplayOnlyDisarm:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def execute(self, d: DisarmDecision, report) -> Outcome:
        return self.rt.finish(report, Outcome(ExitCode.OK, f"dry run: disarming the guard for {self.rt.plan.name} would remove "
                                                         f"{len(d.found)} resource(s); nothing was written", d.lines + d.kept, d.data,
                                              hint="run `cutover guard disarm` to apply"))


class WritingDisarm:
    """Removes what was found, in order, then reads back; finishes its report itself."""

    def __init__(self, rt: Runtime, store: GuardStore) -> None:
        self.rt, self.store = rt, store

    def execute(self, d: DisarmDecision, report) -> Outcome:
        rt, store, plan, n = self.rt, self.store, self.rt.plan, d.names
        if not rt.confirm(f"disarm the guard for {plan.name}: no automatic rollback until it is armed again; " + "; ".join(d.lines)):
            raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
        try:
            for i, (kind, name) in enumerate(d.found):
                if kind == "targets":
                    store.remove_targets(n.rule, d.targets)
                elif kind == "rule":
                    store.delete_rule(name)
                else:
                    store.delete_document(name)
                report.steps[i].update(outcome="removed", ok=True)
            left = observe(store, n)
            if left.rule is not None or left.document is not None:
                raise Incomplete("the guard was removed but some of it still reads back", "re-run `cutover guard disarm`")
        except CutoverError as err:
            rt.finish(report, Outcome(err.exit_code, err.message, data=d.data))
            raise
        notify(rt, "guard DISARMED", [f"removed {len(d.found)} resource(s)", "no automatic rollback until `cutover guard arm`"])
        return rt.finish(report, Outcome(ExitCode.OK, f"guard disarmed for {plan.name}: removed {len(d.found)} resource(s)",
                                         d.lines + d.kept, d.data,
                                         hint="no automatic rollback now; re-arm after planned work: cutover guard arm"))
