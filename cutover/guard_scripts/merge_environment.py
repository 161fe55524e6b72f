"""The guard's Lambda step: merge the plan's rollback values into one function's environment.

UpdateFunctionConfiguration replaces the whole environment, so this reads, merges our variables over
the others and writes only if the function is still at the revision it read; if someone changed it
meanwhile Lambda refuses (PreconditionFailed) and it reads and merges again, so their change is kept.
The step fails unless our variables read back set.

`merge` is the one read-merge-write loop: `cutover rollback` runs it too (`lambdaenv.EnvWriter`).
"""

import time

ATTEMPTS = 6  # read-merge-write rounds
SETTLE_SECONDS = 300  # to wait for Lambda to apply an update
RETRY = ("PreconditionFailedException", "ResourceConflictException")  # changed meanwhile / update in progress


class Retry(Exception):
    """A write refused that a fresh read and merge may get through (changed meanwhile, update in
    progress, a transient fault)."""


class UpdateFailed(Exception):
    """Lambda took the update but could not apply it (its LastUpdateStatus is Failed)."""


class NotSet(Exception):
    """The variables are still not set after every round; `last` is the last refusal, if any."""

    def __init__(self, last):
        super().__init__(str(last) if last else "its variables kept changing")
        self.last = last


def merge(want, read, write, attempts=ATTEMPTS):
    """Set the variables `want` in an environment, every other variable kept.

    read() -> (variables, revision or None, failure reason when the last update failed, else None), once
    no update is being applied; write(merged, revision, attempt) sends the merged environment at the
    revision read, raising Retry when a fresh round may get through. The last round only reads: did the
    last write land? Returns once a read shows `want`; raises UpdateFailed or NotSet."""
    wrote, last = False, None
    for attempt in range(attempts + 1):
        variables, revision, failed = read()
        if wrote and failed is not None:
            raise UpdateFailed(failed)
        if all(variables.get(k) == v for k, v in want.items()):
            return
        if attempt == attempts:
            break
        try:
            write(dict(variables, **want), revision, attempt)
            wrote = True
        except Retry as err:
            last = err
    raise NotSet(last)


def handler(events, context):
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    function, want = events["Function"], events["Variables"]
    client = boto3.client("lambda", config=Config(retries={"mode": "standard", "max_attempts": 10}))
    refused = []

    def read():
        config = settled(client, function)
        failed = config.get("LastUpdateStatusReason") or "no reason given" if config.get("LastUpdateStatus") == "Failed" else None
        return variables(config, function), config.get("RevisionId"), failed

    def write(merged, revision, attempt):
        at = {"RevisionId": revision} if revision else {}  # emulators may have none
        try:
            client.update_function_configuration(FunctionName=function, Environment={"Variables": merged}, **at)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code not in RETRY:
                raise
            refused.append(code)
            raise Retry(code) from err

    try:
        merge(want, read, write)
    except UpdateFailed as err:
        raise RuntimeError(f"Lambda could not apply the update to {function}: {err}") from None
    except NotSet:
        raise RuntimeError(f"{function}: variables {sorted(want)} are not at their rollback values after {ATTEMPTS} "
                           f"attempts ({len(refused)} refused: the function kept changing)") from None
    return {"Function": function, "Variables": sorted(want), "Conflicts": len(refused)}


def settled(client, function):
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        config = client.get_function_configuration(FunctionName=function)
        if config.get("LastUpdateStatus") != "InProgress":
            return config
        if time.monotonic() > deadline:
            raise RuntimeError(f"{function} is still applying an update after {SETTLE_SECONDS}s")
        time.sleep(2)


def variables(config, function):
    env = config.get("Environment") or {}
    if env.get("Error"):  # undecryptable: writing would replace every other variable with ours alone
        raise RuntimeError(f"cannot read the environment of {function}: {env['Error'].get('ErrorCode')}")
    return dict(env.get("Variables") or {})
