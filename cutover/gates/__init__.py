"""Gates: preflight checks that pass, fail closed (with a reason and a next action) or are skipped.

    run_gates(plan, phase_name, ctx, skip=()) -> list[GateResult]   # the phase's gates, in plan order
    run_check(check, ctx) -> GateResult                            # one check; never raises
"""

from .context import GateContext
from .result import FAIL, PASS, SKIPPED, GateResult, blocking, failed, passed, skipped
from .runner import CHECKS, run_check, run_gates

__all__ = [
    "CHECKS",
    "FAIL",
    "PASS",
    "SKIPPED",
    "GateContext",
    "GateResult",
    "blocking",
    "failed",
    "passed",
    "run_check",
    "run_gates",
    "skipped",
]
