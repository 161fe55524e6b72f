"""AWS errors as gate failures (kept in `cutover.checks.aws_faults`, which the check types share)."""

from cutover.checks.aws_faults import DENIED, aws_fail, code_of, is_not_found

__all__ = ["DENIED", "aws_fail", "code_of", "is_not_found"]
