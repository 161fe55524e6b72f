"""Gates: preflight checks that pass, fail closed (with a reason and a next action) or are skipped.

    run_gates(plan, phase_name, ctx, skip=()) -> list[GateResult]   # the phase's gates, in plan order
    run_check(check, ctx) -> GateResult                            # one check; never raises

The names below load on first use (PEP 562): a rollback's Runtime imports the gate context, and must
not pay for every check's HTTP, subprocess and statistics machinery before its first kill switch.
"""

from importlib import import_module

_WHERE = {
    "GateContext": ".context",
    **dict.fromkeys(("FAIL", "PASS", "SKIPPED", "GateResult", "blocking", "failed", "passed", "skipped"), ".result"),
    **dict.fromkeys(("run_check", "run_gates"), ".runner"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_WHERE[name], __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value
