"""What a check type is: one object per type, in one module per type, listed once in `cutover.checks.TYPES`.

A type gives everything the rest of cutover needs to know about it:

- `kind` and `model`: the plan's `type:` word and the frozen dataclass a check of that type is;
- `schema`: its fragment of the plan's JSON Schema (`fragment(...)` below builds one), which the plan
  loader validates with and `cutover validate --schema` prints;
- `value(key, node, read)`, `build(name, values)` and `problems(check, fields)`: a key of its own read
  from its YAML node (nested objects; `read` is the loader's `Nodes`), the model from the loader's values,
  and the rules the schema cannot say (each problem as the node, the key path under the check, a message
  and a fix);
- `run(check, ctx)`: the gate (ctx is a `cutover.gates.GateContext`): a PASS detail (or `Passed`), or
  raise `Fail` / `Skip`;
- `describe(check)` and `details(check)`: the check in words for the runbook, and any lines under it;
- `iam(check, arn, read_only)`: the IAM statements its calls need (`arn` is `cutover.compile.iam.Arns`);
- `secret_refs(check)`: the Secrets Manager secrets it reads, each with a JSON key or None (a `{{secret:ID#key}}`
  in an http header counts): read, granted and seeded once per plan, whichever types read them;
- `needs(check)`: what must exist before it can pass, as `Need`s (alarms, log groups, secrets, calendars,
  shell variables, local programs): the IAM inventory and the runbook's "Before you start" list them;
- `seed(plan, seeder, now)` and `refresh(plan, seeder, now)`: what the emulator must hold for the type's
  checks to pass in a sandbox, and what must be written again once a rehearsal moves its clock on.

This layer sits under the plan loader and the gates, so it imports neither: the loader and the runner
come to it. A type's heavy machinery (HTTP, subprocess) is imported inside `run`, so that loading a plan
(`validate`, a rollback) does not pay for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Iterator, Protocol

# --- how a check reports anything but a pass ------------------------------------------------------------


class Fail(Exception):
    """Raise Fail(detail, next_action) and the runner turns it into a FAIL."""

    def __init__(self, detail: str, next_action: str, data: dict | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_action = next_action
        self.data = data  # figures for evidence and --json (a metric check's judgement)


@dataclass(frozen=True)
class Passed:
    """A check may return this instead of a bare detail string, to carry figures into the result."""

    detail: str
    data: dict | None = None


class Skip(Fail):
    """Not run, for a reason that is no failure (a dry run does not run a program that may write)."""


# --- schema fragments -----------------------------------------------------------------------------------


def ref(name: str, **extra: Any) -> dict:
    """A reference to one of the plan schema's `$defs` (durations, urls, log groups...)."""
    return {"$ref": f"#/$defs/{name}", **extra}


def text(**extra: Any) -> dict:
    return {"type": "string", **extra}


def list_of(item: dict, **extra: Any) -> dict:
    return {"type": "array", "items": item, "minItems": 1, **extra}


ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TIMEOUT = "how long the check may take before it fails"


def fragment(kind: str, title: str, props: dict, required: list[str], timeout: str, **extra: Any) -> dict:
    """One check type's schema: a closed object whose `type` is `kind`; every type has a `timeout`."""
    return {
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": ["type", *required],
        "properties": {
            "type": {"const": kind},
            **props,
            "timeout": ref("positive_duration", default=timeout, description=_TIMEOUT),
        },
        **extra,
    }


# --- IAM statements (cutover.compile.iam builds the policy from them) -------------------------------------


def statement(sid: str, actions: list[str], resources, condition: dict | None = None) -> dict:
    """One Allow statement; `resources` is "*" or a list of ARNs."""
    stmt = {"Sid": sid, "Effect": "Allow", "Action": actions,
            "Resource": resources if isinstance(resources, str) else list(resources)}
    if condition:
        stmt["Condition"] = condition
    return stmt


# --- what a check needs before it can pass (cutover.compile.iam.inventory, the runbook's prerequisites) ---


@dataclass(frozen=True)
class Need:
    """One thing a check needs: `kind` is one of NEEDS, `item` a name (a tuple for `env` and `env_ref`)."""

    kind: str
    item: Any

    def __post_init__(self) -> None:
        if self.kind not in NEEDS:  # a type's own mistake: a need nobody reads would vanish silently
            raise ValueError(f"unknown need {self.kind!r}: one of {', '.join(NEEDS)}")


NEEDS = {
    "alarm": "a CloudWatch alarm, by name",
    "alarm_prefix": "every CloudWatch alarm whose name starts with this",
    "log_group": "a CloudWatch Logs log group",
    "change_calendar": "an SSM Change Calendar (name or ARN)",
    "secret_read": "a Secrets Manager secret read with GetSecretValue",
    "secret_described": "a Secrets Manager secret only described (DescribeSecret)",
    "env": "(variable, value): the operator's shell sets it to value; value None: set to anything",
    "env_ref": "(variable, default): a ${VAR} in a check's text; default None: it must be set",
    "command": "a local program's argv (a tuple), run by the gate",
    "url": "an HTTP(S) endpoint the check calls, as the plan writes it (the sandbox reroutes it to its stub)",
}


# --- the interface --------------------------------------------------------------------------------------

# A rule the schema cannot say, broken: (the node, its key path under the check, message, fix).
Problem = tuple[Any, tuple, str, str]


class Nodes(Protocol):
    """How the plan loader reads a YAML node the schema has validated (it passes its own: this layer sits
    under the loader). Nodes keep their positions, so a rule can point at one."""

    def fields(self, node: Any) -> dict[str, tuple[Any, Any]]:
        """A mapping's entries by key: (key node, value node)."""

    def number(self, node: Any) -> float: ...

    def scalar(self, node: Any) -> Any:
        """A scalar as YAML means it (a number, a boolean, null or text)."""

    def seconds(self, node: Any) -> float:
        """A duration (`30s`, `15m`, or whole seconds) in seconds."""


class CheckType:
    """One check type. Subclass it in one module, and add the instance to `cutover.checks.TYPES`."""

    kind: ClassVar[str]
    model: ClassVar[type]
    schema: ClassVar[dict]

    def value(self, key: str, node: Any, read: Nodes) -> Any:
        """One of the type's own keys from its YAML node (a nested object, say); None: the loader reads it
        as it reads that key in every type."""
        return None

    def build(self, name: str, values: dict[str, Any]) -> Any:
        """The model, from the check's keys as the loader reads them (durations in seconds, lists as tuples)."""
        return self.model(name=name, **values)

    def problems(self, check: Any, fields: dict) -> Iterator[Problem]:
        """Rules beyond the schema; `fields` maps each key (`type` first) to its (key node, value node)."""
        return iter(())

    def run(self, check: Any, ctx: Any) -> str | Passed:
        raise NotImplementedError

    def describe(self, check: Any) -> str:
        raise NotImplementedError

    def details(self, check: Any) -> list[str]:
        """Lines under the check's line in the runbook (markdown, indented), if it has more to say."""
        return []

    def iam(self, check: Any, arn: Any, read_only: bool) -> list[dict]:
        """IAM statements for the check's own calls (none: it calls no AWS API). Statements of one Sid, from
        several checks, become one: their resources in order, each once."""
        return []

    def secret_refs(self, check: Any) -> Iterator[tuple[str, str | None]]:
        """(secret id, JSON key or None) for each secret the check reads."""
        return iter(())

    def needs(self, check: Any) -> Iterator[Need]:
        """What must exist (or be set) before the check can pass; kinds as in NEEDS."""
        return iter(())

    def checks_in(self, plan: Any) -> list:
        """The plan's checks of this type, in plan order."""
        return [c for c in plan.checks.values() if c.type == self.kind]

    def seed(self, plan: Any, seeder: Any, now: datetime) -> list[str]:
        """Write what this type's checks in `plan` need to pass at `now` into the emulator (a
        `cutover.sandbox.seed.EmulatorSeeder`); any warnings for the operator. Called once per type, with
        all its checks, so what several checks name is written once."""
        return []

    def refresh(self, plan: Any, seeder: Any, now: datetime) -> None:
        """Once a rehearsal has fast-forwarded its clock to `now`: write again what ages (a log marker,
        metric data); what `seed` wrote otherwise still holds."""
