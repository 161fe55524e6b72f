"""Which AWS errors are worth another try, and how long to wait before it: the one definition.

Who retries what (one owner per layer): botocore retries every call (standard mode) for faults on the
wire; on top, only the calls whose loss would break a promise retry again, with `backoff`: a flag or
state write (`flags.PatientStore`, `state.StateStore`: a write is never dropped silently, and a
read-back tells whether a write whose answer was lost had landed) and a Lambda read-merge-write
(`lambdaenv`). Gates do not retry: they report the fault (`checks.aws_faults`), and the operator re-runs.
"""

from __future__ import annotations

# AWS error codes meaning "slow down": the request was refused before it did anything.
THROTTLED = frozenset({
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "TooManyUpdates",
    "RequestThrottled",
})


def backoff(attempt: int, first: float = 0.5, cap: float = 8.0) -> float:
    """Seconds to wait before retry number `attempt` (0-based): doubling from `first`, at most `cap`."""
    return min(first * 2 ** min(attempt, 30), cap)
