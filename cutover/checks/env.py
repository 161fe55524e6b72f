"""env: the operator's environment has the declared values (equals) and non-empty variables (present)."""

from __future__ import annotations

from dataclasses import dataclass, field
import re
from typing import Iterator

from cutover.checks.interface import ENV_NAME, CheckType, Fail, Need, fragment, list_of, text
from cutover.checks.words import code, safe


@dataclass(frozen=True)
class EnvCheck:
    name: str
    equals: dict[str, str] = field(default_factory=dict)
    present: tuple[str, ...] = ()
    timeout: float = 10.0
    type: str = "env"


# A variable whose name looks like a credential never has its actual value shown.
_SENSITIVE_NAME = re.compile(r"(?i)(key|token|secret|pass|credential|auth|cookie|session)")
_SHOWABLE_LEN = 40


def _shown(ctx, name: str, actual: str) -> str | None:
    """The actual value if it is safe to print, else None."""
    if _SENSITIVE_NAME.search(name) or len(actual) > _SHOWABLE_LEN or ctx.redactor.text(actual) != actual:
        return None
    return actual


def _mismatch(ctx, name: str, actual: str | None, expected: str) -> str:
    if actual is None:
        return f"{name} is not set, expected {expected!r}"
    if actual.strip() == expected:
        return f"{name} has surrounding whitespace, expected exactly {expected!r}"
    shown = _shown(ctx, name, actual)
    if shown is None:
        return f"{name} has another value (hidden), expected {expected!r}"
    return f"{name} is {shown!r}, expected {expected!r}"


def _run(check: EnvCheck, ctx) -> str:
    problems: list[str] = []
    fixes: list[str] = []
    for name, expected in check.equals.items():
        actual = ctx.env.get(name)
        if actual != expected:
            problems.append(_mismatch(ctx, name, actual, expected))
            fixes.append(f"{name}={expected}")
    for name in check.present:
        actual = ctx.env.get(name)
        if not actual:
            problems.append(f"{name} is {'empty' if actual == '' else 'not set'}")
            fixes.append(f"{name}=<value>")
    if problems:
        raise Fail(
            "; ".join(problems),
            f"export {' '.join(fixes)} in the shell running cutover (check which profile/.env you loaded), then re-run",
        )
    n = len(check.equals) + len(check.present)
    if not n:
        raise Fail("no variables listed; the gate would pass vacuously", "list variables under equals/present")
    return f"{len(check.equals)} equal, {len(check.present)} present"


class Env(CheckType):
    kind = "env"
    model = EnvCheck
    schema = fragment(
        "env",
        "env check",
        {
            "equals": {
                "type": "object",
                "minProperties": 1,
                "description": "variables that must have exactly these values",
                "propertyNames": text(title="variable", pattern=ENV_NAME, description="an environment variable name"),
                "additionalProperties": text(description="the required value, quoted"),
            },
            "present": list_of(
                text(pattern=ENV_NAME, description="an environment variable name"),
                uniqueItems=True,
                description="variables that must be set",
            ),
        },
        [],
        "10s",
        anyOf=[{"required": ["equals"]}, {"required": ["present"]}],
    )

    run = staticmethod(_run)  # the gate, above

    def needs(self, check: EnvCheck) -> Iterator[Need]:
        yield from (Need("env", (k, v)) for k, v in check.equals.items())
        yield from (Need("env", (k, None)) for k in check.present)

    def describe(self, check: EnvCheck) -> str:
        parts = [code(f"{k}={safe(v)}") for k, v in check.equals.items()] + [f"{code(k)} set" for k in check.present]
        return "your shell has " + ", ".join(parts) if parts else "no environment requirements"


TYPE = Env()
