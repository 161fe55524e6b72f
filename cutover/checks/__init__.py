"""The check types: one module each (`cutover.checks.interface` says what a type gives), listed once here.

A new check type is one new module and one line in `TYPES`: the plan schema, the loader, the gate
runner, the runbook, the IAM policy and the sandbox's seeding all find it through this list.
"""

from __future__ import annotations

from cutover.checks import alarms, command, env, http, logs, logs_query, metric, secrets, window
from cutover.checks.interface import CheckType

# The one list.
TYPES: list[CheckType] = [
    env.TYPE, secrets.TYPE, http.HTTP, http.GRAPHQL, logs.FRESHNESS, logs.ABSENT, command.TYPE, alarms.TYPE, window.TYPE,
    metric.TYPE, logs_query.TYPE,
]


def secret_refs(plan) -> dict[str, set[str]]:
    """Every secret the plan's checks read -> the JSON keys read from it (empty set: a plain string secret)."""
    kinds = by_kind()
    refs: dict[str, set[str]] = {}
    for check in plan.checks.values():
        for sid, key in kinds[check.type].secret_refs(check):
            keys = refs.setdefault(sid, set())
            if key:
                keys.add(key)
    return refs


def needs(plan) -> dict[str, tuple]:
    """What the plan's checks need before they can pass (`CheckType.needs`): each kind of need -> its items,
    in plan order, each once. A kind no check needs is absent."""
    kinds = by_kind()
    found: dict[str, dict] = {}
    for check in plan.checks.values():
        for need in kinds[check.type].needs(check):
            found.setdefault(need.kind, {})[need.item] = None
    return {kind: tuple(items) for kind, items in found.items()}


def by_kind() -> dict[str, CheckType]:
    """Each listed type by its `type:` word (read at every use, so a type added to TYPES counts at once)."""
    return {t.kind: t for t in TYPES}
