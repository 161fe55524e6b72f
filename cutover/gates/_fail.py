"""How a check reports anything but a pass (kept in `cutover.checks.interface`, with the check types)."""

from cutover.checks.interface import Fail, Passed, Skip

__all__ = ["Fail", "Passed", "Skip"]
