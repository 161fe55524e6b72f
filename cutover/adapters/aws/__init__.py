"""The AWS adapters, the only package that imports boto3 in production (with the sandbox, the test
doubles and the guard's in-AWS scripts): one module per service, behind the ports of `cutover.ports`.

The endpoint comes from the standard AWS_ENDPOINT_URL variable, which botocore honours itself, so the
sandbox, moto or LocalStack work unchanged. Nothing imports this package for `--help` or `validate`.

    readonly    the read-only guard of a dry run's session
    session     sessions and clients (AWS variables checked, retries, timeouts, an assumed role)
    errors      AWS errors as one line with a hint; helpers the adapters share
    ssm, functions, cloudwatch, secrets, sns, iam, sts
                one adapter module per service
    guard       the guard's resources (IAM roles, Automation document, EventBridge rules)
"""

from __future__ import annotations

from typing import Iterable

from cutover.errors import UsageError
from cutover.ports import AwsPorts
from cutover.adapters.aws.cloudwatch import (CloudWatchAlarms, CloudWatchLogs, CloudWatchLogsInsights, CloudWatchMetrics,
                                             merge_metric_pages)
from cutover.adapters.aws.errors import as_utc, aws_errors, epoch_ms, error_code, translate
from cutover.adapters.aws.guard import GuardResources
from cutover.adapters.aws.readonly import iam_action, iam_prefix, is_read_operation
from cutover.adapters.aws.functions import LambdaFunctions
from cutover.adapters.aws.iam import IamAccess
from cutover.adapters.aws.secrets import SecretsManagerSource
from cutover.adapters.aws.session import Clients, SessionHook, assume_role, client_config, make_session
from cutover.adapters.aws.sns import SnsNotifier
from cutover.adapters.aws.ssm import SsmChangeCalendars, SsmParameterStore, SsmServiceSettings
from cutover.adapters.aws.sts import StsIdentity
from cutover.adapters.aws.automation import SsmAutomationStarter


def make_ports(
    region: str | None,
    profile: str | None,
    read_only: bool,
    *,
    counter: SessionHook | None = None,  # e.g. testing.counter.CallCounter
    hooks: Iterable[SessionHook] = (),
    credentials=None,  # an assumed role's (assume_role); default: the profile's
) -> AwsPorts:
    """Every adapter, from one session (so one guard, one set of credentials, one counter)."""
    session = make_session(region, profile, read_only, hooks=[*([counter] if counter else []), *hooks], credentials=credentials)
    if not session.region_name:
        raise UsageError(
            "no AWS region", "set `region:` in the plan, pass --region, or set AWS_REGION / AWS_DEFAULT_REGION"
        )
    clients = Clients(session)
    return AwsPorts(
        params=SsmParameterStore(clients),
        alarms=CloudWatchAlarms(clients),
        secrets=SecretsManagerSource(clients),
        logs=CloudWatchLogs(clients),
        identity=StsIdentity(clients),
        region=session.region_name,
        notifier=SnsNotifier(session),
        functions=LambdaFunctions(clients),
        access=IamAccess(session),
        calendars=SsmChangeCalendars(clients),
        metrics=CloudWatchMetrics(clients),
        insights=CloudWatchLogsInsights(clients),
        settings=SsmServiceSettings(clients),
    )


__all__ = [  # what the rest of cutover (and the tests) import from here
    "SsmAutomationStarter",
    "make_ports", "make_session", "assume_role", "client_config", "Clients", "SessionHook",
    "aws_errors", "as_utc", "epoch_ms", "error_code", "translate",
    "iam_action", "iam_prefix", "is_read_operation",
    "SsmParameterStore", "SsmChangeCalendars", "SsmServiceSettings", "LambdaFunctions", "CloudWatchAlarms",
    "CloudWatchMetrics", "CloudWatchLogsInsights", "CloudWatchLogs", "merge_metric_pages", "SecretsManagerSource",
    "SnsNotifier", "IamAccess", "StsIdentity", "GuardResources",
]
