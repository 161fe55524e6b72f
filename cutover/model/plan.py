"""The frozen, typed plan. `cutover.plan.load` builds it from phases.yaml; everything else only reads it.

Durations are seconds (float). Mappings are plain dicts by convention: treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol, Union

from cutover.model.targets import Fanout, RolloutTarget, TargetScope, Wave

PENDING = "pending"
ROLLED_BACK = "rolled_back"


@dataclass(frozen=True)
class SsmTarget:
    """A flag kept in an SSM parameter."""

    parameter: str
    kind: str = "ssm"

    @property
    def key(self) -> str:
        """Where the flag lives, unique in a plan: the key of its live value (see `flags.read_live`)."""
        return self.parameter

    def describe(self) -> str:
        return self.parameter


@dataclass(frozen=True)
class LambdaTarget:
    """A flag kept in one environment variable of a Lambda function ($LATEST). `function` is spelled as
    the plan spells it (a name or an ARN); every flag of one function spells it the same way."""

    function: str
    variable: str
    kind: str = "lambda"
    kms_key: str | None = None  # the customer managed key encrypting the environment (key or alias ARN)

    @property
    def key(self) -> str:
        return f"lambda:{self.function}/{self.variable}"  # '/' occurs in neither a function name nor an ARN

    @property
    def function_name(self) -> str:
        return function_name(self.function)

    def describe(self) -> str:
        return f"{self.function_name} env {self.variable}"


def function_name(function: str) -> str:
    """'rp-mw-prod-worker', '123456789012:function:rp-mw-prod-worker' or its full ARN -> the bare name."""
    return function.split(":function:", 1)[1] if ":function:" in function else function


Target = Union[SsmTarget, LambdaTarget]


@dataclass(frozen=True)
class Flag:
    name: str
    target: Target
    rollback: str
    sensitive: bool = False
    secure: bool = False  # SSM only: stored as SecureString
    description: str = ""
    line: int = 0
    # Values of a sensitive flag that may be shown in plain text ("none", "*"); any other is hidden.
    public_values: tuple[str, ...] = ()

    def is_public(self, value: str) -> bool:
        """A value that may be shown as it is: any value of a flag that is not sensitive, and the
        `public_values` of one that is."""
        return not self.sensitive or value in self.public_values

    @property
    def key(self) -> str:
        """The flag's live value is keyed by this (for an SSM flag: its parameter name)."""
        return self.target.key

    @property
    def kind(self) -> str:
        return self.target.kind

    @property
    def parameter(self) -> str:
        """The SSM parameter name (SSM flags only)."""
        assert isinstance(self.target, SsmTarget), f"flag {self.name} is not an SSM flag"
        return self.target.parameter

    @property
    def where(self) -> str:
        """Where the flag lives, for people: '/rp-mw/prod/safe_mode' or 'rp-mw-prod-worker env VAR'."""
        return self.target.describe()


class Check(Protocol):
    """A check as the plan holds it: the frozen dataclass of its type, defined with the type in its module
    of `cutover.checks` (this layer sits under them, so it knows a check by its `type:` word only)."""

    name: str
    type: str
    timeout: float


@dataclass(frozen=True)
class Phase:
    name: str
    set: dict[str, str]
    gates: tuple[str, ...]
    description: str = ""
    bake: float = 0.0
    approval: bool = False
    approvers: tuple[str, ...] = ()  # ARN patterns (fnmatch: * and ?) allowed to approve; empty = anyone
    separate_approver: bool = False  # the approver must not be who entered the previous phase
    auto_rollback: bool = False  # `watch` rolls back on its own in this phase, without --auto-rollback
    watch: tuple[str, ...] = ()  # metric checks judged at every `cutover watch` poll during the bake


@dataclass(frozen=True)
class Plan:
    name: str
    region: str
    state_prefix: str
    flags: tuple[Flag, ...]  # in rollback order
    checks: dict[str, Check]  # in declaration order
    phases: tuple[Phase, ...]  # Phase 0 first
    description: str = ""
    write_rate: float = 3.0
    lock_lease: float = 900.0
    version: int = 1
    notify_topic: str | None = None  # SNS topic ARN told of every state change (PII-safe text)
    account: str | None = None  # the AWS account id the plan acts on (`account:`), when pinned
    targets: tuple[RolloutTarget, ...] = ()  # `targets:` as declared; none: the plan's region, the caller's account
    waves: tuple[Wave, ...] = ()  # `waves:` (one wave of every target when targets come without waves)
    fanout: Fanout | None = None
    scope: TargetScope | None = None  # a target's plan (`at_target`): which target, and its account's regions
    digest: str = ""  # sha256 hex of the plan file's bytes
    path: str = "phases.yaml"

    # --- derived views -------------------------------------------------------------------------
    @property
    def state_parameter(self) -> str:
        return f"{self.state_prefix}/state"

    @property
    def lock_parameter(self) -> str:
        return f"{self.state_prefix}/lock"

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.phases)

    # Cached: a plan never changes once built, and these are asked once per flag at 2,000 flags.
    @cached_property
    def ssm_flags(self) -> tuple[Flag, ...]:
        return tuple(f for f in self.flags if f.kind == "ssm")

    @cached_property
    def functions(self) -> tuple[str, ...]:
        """The Lambda functions whose environment holds flags, as the plan spells them, in plan order."""
        return tuple(dict.fromkeys(f.target.function for f in self.flags if isinstance(f.target, LambdaTarget)))

    @property
    def function_keys(self) -> dict[str, str | None]:
        """Each flag function (as spelled) -> the customer managed KMS key the plan names for it, or None."""
        return {f.target.function: f.target.kms_key for f in self.flags if isinstance(f.target, LambdaTarget)}

    @cached_property
    def sensitive_values(self) -> tuple[str, ...]:
        """Every value the plan declares for its sensitive flags (rollback and each phase's `set`), less
        the flags' public values (those are shown everywhere, so they are never registered); each once,
        longest first."""
        values = (v for f in self.flags if f.sensitive
                  for v in (f.rollback, *(p.set[f.name] for p in self.phases if f.name in p.set)) if not f.is_public(v))
        return tuple(sorted(set(values), key=lambda v: (-len(v), v)))  # longest first: a value holding another is masked whole

    @cached_property
    def _flags_by_name(self) -> dict[str, Flag]:
        return {f.name: f for f in self.flags}

    def flag(self, name: str) -> Flag:
        return self._flags_by_name[name]

    def phase(self, name: str) -> Phase:
        for p in self.phases:
            if p.name == name:
                return p
        raise KeyError(name)

    def phase_index(self, name: str) -> int:
        return self.phase_names.index(name)

    def rollback_values(self) -> dict[str, str]:
        return {f.name: f.rollback for f in self.flags}

    def at_target(self, target: RolloutTarget) -> "Plan":
        """This plan as a single-target plan on `target`'s region and account (what each target runs),
        knowing which target it is and the regions of every target in that account (`scope`)."""
        import dataclasses

        regions = tuple(dict.fromkeys(t.region for t in self.targets if t.account == target.account)) or (target.region,)
        return dataclasses.replace(self, region=target.region, account=target.account, targets=(), waves=(), fanout=None,
                                   scope=TargetScope(target.name, regions))

    def values_for(self, state: str) -> dict[str, str]:
        """Every flag's value in a machine state: rollback values overlaid by each phase's `set` up to it.

        `pending` and `rolled_back` are the rollback values.
        """
        values = self.rollback_values()
        if state in (PENDING, ROLLED_BACK):
            return values
        for p in self.phases:
            values.update(p.set)
            if p.name == state:
                return values
        raise KeyError(state)

    def next_phase(self, state: str) -> Phase | None:
        """The phase an `advance` from `state` enters; None at the last phase."""
        if state in (PENDING, ROLLED_BACK):
            return self.phases[0]
        i = self.phase_index(state)
        return self.phases[i + 1] if i + 1 < len(self.phases) else None

    def gates_of_type(self, phase: str, kind: str) -> list[Check]:
        """A phase's gates of one type (`type:` word), in gate order."""
        return [c for g in self.phase(phase).gates if (c := self.checks[g]).type == kind]

    def alarm_checks(self, phase: str) -> list[Check]:
        """The alarms gates of a phase (what `watch` and `status` look at)."""
        return self.gates_of_type(phase, "alarms")

    def window_checks(self, phase: str) -> list[Check]:
        """The window gates of a phase (re-checked just before an advance writes, shown by `status`)."""
        return self.gates_of_type(phase, "window")

    def watch_checks(self, phase: str) -> list[Check]:
        """The metric checks a phase's `watch:` lists, judged at every `cutover watch` poll."""
        return [self.checks[name] for name in self.phase(phase).watch]  # type: ignore[misc]
