"""The rollback program: what a rollback writes, in which order, grouped how.

A pure function of the plan and a destination. It is the one place that knows order and grouping:
SSM flags are written one by one in plan order (kill switches first); the variables of one Lambda
function are merged into its environment in one update, at the place of the function's first flag.
The converger (`flags.Converger`) executes these steps, the guard (`guard.build_document`) compiles them
into Automation steps, and the runbook (`runbook`) renders them as manual steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from cutover.model.plan import ROLLED_BACK, Flag, LambdaTarget, Plan


@dataclass(frozen=True)
class SetParameter:
    """Write one SSM parameter (SecureString when the flag is secure)."""

    flag: Flag
    value: str

    @property
    def flags(self) -> tuple[Flag, ...]:
        return (self.flag,)

    @property
    def values(self) -> tuple[str, ...]:
        return (self.value,)


@dataclass(frozen=True)
class MergeEnvironment:
    """Merge these variables into one Lambda function's environment (every other variable kept)."""

    function: str
    flags: tuple[Flag, ...]
    values: tuple[str, ...]

    @property
    def variables(self) -> dict[str, str]:
        return {f.target.variable: v for f, v in zip(self.flags, self.values)}


Step = Union[SetParameter, MergeEnvironment]


def group(writes: Iterable[tuple[Flag, str]]) -> tuple[Step, ...]:
    """Ordered (flag, value) writes as steps: one per SSM flag; one per Lambda function, holding all of
    that function's writes, at the place of its first one."""
    writes = list(writes)
    by_function: dict[str, list[tuple[Flag, str]]] = {}
    for flag, value in writes:
        if isinstance(flag.target, LambdaTarget):
            by_function.setdefault(flag.target.function, []).append((flag, value))
    steps: list[Step] = []
    for flag, value in writes:
        if not isinstance(flag.target, LambdaTarget):
            steps.append(SetParameter(flag, value))
        elif (batch := by_function.pop(flag.target.function, None)) is not None:
            steps.append(MergeEnvironment(flag.target.function, tuple(f for f, _ in batch), tuple(v for _, v in batch)))
    return tuple(steps)


def targets(plan: Plan, dest: str = ROLLED_BACK) -> list[tuple[Flag, str]]:
    """Every flag with its value at `dest` (default: the known-safe rollback values), in plan order."""
    values = plan.values_for(dest)
    return [(f, values[f.name]) for f in plan.flags]


def steps(plan: Plan, dest: str = ROLLED_BACK) -> tuple[Step, ...]:
    """The whole rollback to `dest` (the rollback values, or a phase for `rollback --to`)."""
    return group(targets(plan, dest))


def writes(program: Iterable[Step]) -> list[tuple[str, str]]:
    """A program as the sequence of (flag key, value) it writes: what the property test compares."""
    return [(f.key, v) for s in program for f, v in zip(s.flags, s.values)]
