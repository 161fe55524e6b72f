"""Flags kept in a Lambda function's environment.

UpdateFunctionConfiguration replaces the whole environment, so a write is read-merge-write: read the
function once, overlay our variables on every other one it has, and send the result only if the
function is still at the revision we read (RevisionId). If someone changed it in between, Lambda
refuses (PreconditionFailed): read again and merge again, so their change is kept, not overwritten.
Then wait until Lambda has applied the update (LastUpdateStatus) and check our variables by reading.
"""

from __future__ import annotations

from typing import Callable

from cutover.clock import Clock
from cutover.errors import AwsError, RevisionConflict, UpdateInProgress
from cutover.limits import ENV_LIMIT, env_size
from cutover.guard_scripts.merge_environment import ATTEMPTS, NotSet, Retry, UpdateFailed, merge
from cutover.ports import FunctionConfig, FunctionStore
from cutover.retry import backoff

WRITE_ATTEMPTS = ATTEMPTS  # read-merge-write rounds (the guard's too): conflicts with other writers, lost responses, throttling
SETTLE_TIMEOUT = 300.0  # seconds to wait for an update to be applied (VPC functions can take minutes)
READ_RETRIES = 8  # transient faults on reads


def holds(config: FunctionConfig, values: dict[str, str]) -> bool:
    return all(config.variables.get(k) == v for k, v in values.items())


class EnvWriter:
    """Reads and writes the flag variables of Lambda functions through a FunctionStore."""

    def __init__(self, functions: FunctionStore, clock: Clock) -> None:
        self.functions = functions
        self.clock = clock
        self.conflicts = 0  # writes refused because someone else changed the function (for reports/tests)

    def read(self, function: str) -> FunctionConfig:
        for attempt in range(READ_RETRIES + 1):
            try:
                return self.functions.get(function)
            except AwsError as err:
                if not err.transient or attempt == READ_RETRIES:
                    raise
                self.clock.sleep(backoff(attempt))
        raise AssertionError("unreachable")

    def settled(self, function: str) -> FunctionConfig:
        """The function's configuration once no update is being applied."""
        deadline = self.clock.monotonic() + SETTLE_TIMEOUT
        attempt = 0
        while True:
            config = self.read(function)
            if config.update_status != "InProgress":
                return config
            if self.clock.monotonic() >= deadline:
                raise AwsError(f"function {function} is still applying an update after {int(SETTLE_TIMEOUT)}s",
                               "check the function in the Lambda console, then re-run the command",
                               code="UpdateInProgress", operation="lambda:GetFunctionConfiguration")
            self.clock.sleep(backoff(attempt, cap=5.0))
            attempt += 1

    def apply(self, function: str, values: dict[str, str], before_put: Callable[[], None] | None = None) -> FunctionConfig:
        """Set `values` in the function's environment, every other variable kept; return the applied
        configuration (our variables confirmed by reading it back). `before_put` runs right before
        each update is sent (a run's preemption check). The loop is the guard's own (`merge`)."""
        seen: list[FunctionConfig] = []

        def read():
            config = self.settled(function)
            seen.append(config)
            return config.variables, config.revision_id, (config.update_reason or "no reason given") if config.update_status == "Failed" else None

        def write(merged: dict[str, str], revision: str | None, attempt: int) -> None:
            size = env_size(merged)
            if size > ENV_LIMIT:
                raise AwsError(f"the environment of {function} would be {size} bytes, over Lambda's {ENV_LIMIT}-byte "
                               "limit (its other variables count too); nothing was written to it",
                               "shorten the plan's values or remove unused variables from the function",
                               code="EnvironmentTooLarge", operation="lambda:UpdateFunctionConfiguration")
            if before_put:
                before_put()
            try:
                self.functions.put_environment(function, merged, revision)
            except RevisionConflict as err:
                self.conflicts += 1  # someone else changed it since our read: read again, merge again
                raise Retry(err) from err
            except UpdateInProgress as err:
                raise Retry(err) from err  # settled() waits for it
            except AwsError as err:
                if not err.transient:
                    raise
                self.clock.sleep(backoff(attempt))
                raise Retry(err) from err  # the write may have landed anyway: the next read tells

        try:
            merge(values, read, write, WRITE_ATTEMPTS)
        except UpdateFailed as err:
            raise AwsError(f"Lambda could not apply the environment update to {function}: {err}",
                           "fix what Lambda says, then re-run the command", code="UpdateFailed",
                           operation="lambda:UpdateFunctionConfiguration") from None
        except NotSet as err:
            last = err.last.args[0] if err.last else None
            reason = last.message if last else "its variables kept changing"
            raise AwsError(f"could not update the environment of {function} after {WRITE_ATTEMPTS} attempts: {reason}",
                           "someone else keeps changing the function: run `cutover status`, then re-run the command",
                           code=getattr(last, "code", "") or "Conflict", operation="lambda:UpdateFunctionConfiguration") from None
        return seen[-1]
