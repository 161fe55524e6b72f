"""The project's own errors. Each carries a one-line message, a hint and its contract exit code."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The contract's exit codes, the one definition: each with the word evidence records (`outcome`),
    a few words for `--help`, and its meaning for the README's and the runbook's tables."""

    OK = 0, "ok", "done or nothing to do", "done, or nothing to do"
    GATE_FAILED = 1, "gate_failed", "a gate failed", (
        "a gate failed (or the current phase is still baking; or, for `status --check`, an alarm of the current "
        "phase fires); nothing was written")
    USAGE = 2, "usage_error", "bad usage or invalid plan", "bad usage or invalid plan; nothing was written"
    BLOCKED = 3, "blocked", "blocked", (
        "blocked: lock held by another operator, approval missing, not confirmed, or preempted by a rollback")
    INCOMPLETE = 4, "incomplete", "could not finish", (
        "could not finish: AWS error or interruption; `status` tells what was written; re-run or roll back")
    DRIFT = 5, "drift", "drift or bad state record", (
        "drift (`status --check`): live flags differ from the recorded phase, or the state record is unusable")
    ROLLED_BACK = 6, "rolled_back", "rolled back", "rolled back (`watch --auto-rollback` fired)"
    CHANGES_PENDING = 7, "changes_pending", "changes pending (--detailed-exitcode)", (
        "changes pending: a dry run with `--detailed-exitcode` found work to do (0 then means nothing to do)")

    def __new__(cls, value: int, word: str, summary: str, meaning: str) -> "ExitCode":
        member = int.__new__(cls, value)
        member._value_ = value
        member.word, member.summary, member.meaning = word, summary, meaning
        return member

    @classmethod
    def table(cls) -> list[str]:
        """The codes as a Markdown table (README, runbook)."""
        return ["| code | meaning |", "|---|---|", *(f"| {c.value} | {c.meaning} |" for c in cls)]

    @classmethod
    def summary_line(cls) -> str:
        """The codes in one sentence (`cutover --help`)."""
        return "Exit codes: " + ", ".join(f"{c.value} {c.summary}" for c in cls)


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
