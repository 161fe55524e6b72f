"""Human formatting for gate details (kept in `cutover.checks.fmt`, which the check types share)."""

from cutover.checks.fmt import duration, one_line, stamp

__all__ = ["duration", "one_line", "stamp"]
