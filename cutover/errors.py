"""The project's own errors. Each carries a one-line message, a hint and its contract exit code."""

from __future__ import annotations


class ExitCode:
    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    BLOCKED = 3
    INCOMPLETE = 4
    DRIFT = 5
    ROLLED_BACK = 6


class CutoverError(Exception):
    """Base error: `message` says what happened, `hint` what to do next."""

    exit_code = ExitCode.INCOMPLETE

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(CutoverError):
    exit_code = ExitCode.USAGE


class PlanError(UsageError):
    """An invalid plan, reported as FILE:LINE:COL: message."""

    def __init__(self, path: str, line: int, col: int, message: str, hint: str = "") -> None:
        super().__init__(f"{path}:{line}:{col}: {message}", hint)
        self.path, self.line, self.col, self.detail = path, line, col, message


class GateFailed(CutoverError):
    exit_code = ExitCode.GATE_FAILED


class Blocked(CutoverError):
    """Lock held by someone else, approval missing, or preempted by a rollback."""

    exit_code = ExitCode.BLOCKED


class AwsError(CutoverError):
    """An AWS call failed; `code` is the AWS error code (AccessDenied, ThrottlingException...)."""

    exit_code = ExitCode.INCOMPLETE

    def __init__(self, message: str, hint: str = "", code: str = "", operation: str = "", transient: bool = False) -> None:
        super().__init__(message, hint)
        self.code = code
        self.operation = operation
        self.transient = transient  # throttling, 5xx, connection trouble: worth retrying


class NotFound(AwsError):
    """The named AWS resource does not exist."""


class ReadOnlyViolation(AwsError):
    """A write was attempted while the session is read-only (dry-run)."""


class Incomplete(CutoverError):
    """Could not finish; `status` tells what was written."""

    exit_code = ExitCode.INCOMPLETE


class AlreadyExists(AwsError):
    """A create-if-absent write found the name taken (the lock is held)."""


class RevisionConflict(AwsError):
    """A Lambda function changed since we read it (PreconditionFailedException on RevisionId)."""


class UpdateInProgress(AwsError):
    """A Lambda function is still applying an earlier update (ResourceConflictException)."""
