"""The small ports the core talks through. `cutover.adapters.aws` implements them with boto3; tests may use fakes.

Every adapter method raises only `cutover.errors` types (AwsError, NotFound, ReadOnlyViolation),
never botocore exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterator, Protocol

if TYPE_CHECKING:
    from cutover.model.metrics import MetricQuery


@dataclass(frozen=True)
class Param:
    name: str
    value: str
    version: int
    type: str = "String"  # String | SecureString | StringList
    last_modified: datetime | None = None


@dataclass(frozen=True)
class ParamVersion:
    name: str
    value: str
    version: int
    last_modified: datetime | None
    last_modified_user: str | None = None


@dataclass(frozen=True)
class Alarm:
    name: str
    state: str  # OK | ALARM | INSUFFICIENT_DATA
    updated_at: datetime  # StateUpdatedTimestamp, aware UTC
    reason: str = ""
    # Its configuration, for `expect` (None where AWS has none, e.g. a composite alarm's threshold).
    threshold: float | None = None
    comparison: str | None = None  # ComparisonOperator
    period: float | None = None  # seconds
    evaluation_periods: int | None = None
    metric: str | None = None  # MetricName (a metric-math alarm: its expression)
    namespace: str | None = None
    composite: bool = False


@dataclass(frozen=True)
class LogEvent:
    timestamp: datetime  # aware UTC
    message: str


@dataclass(frozen=True)
class Identity:
    arn: str
    account: str


class ParameterStore(Protocol):
    def get_many(self, names: list[str]) -> dict[str, Param]:
        """Current values, decrypted; a missing name is simply absent. Batches of 10 inside."""

    def put(self, name: str, value: str, *, secure: bool = False, overwrite: bool = True) -> int:
        """Write and return the new version. overwrite=False raises AlreadyExists if the name exists."""

    def delete(self, name: str) -> None:
        """Delete; a missing name is not an error."""

    def history(self, name: str) -> list[ParamVersion]:
        """Every stored version, oldest first (decrypted). NotFound if the parameter does not exist."""


@dataclass(frozen=True)
class FunctionConfig:
    """A Lambda function's configuration, as far as flags care. Other variables are carried through
    untouched and never displayed: they may hold anything."""

    name: str
    arn: str
    variables: dict[str, str]
    revision_id: str | None  # None where the emulator has none (moto)
    update_status: str = "Successful"  # LastUpdateStatus: Successful | InProgress | Failed
    update_reason: str = ""  # LastUpdateStatusReason (a failed update says why)
    state: str = "Active"
    kms_key_arn: str | None = None  # KMSKeyArn: the customer managed key of its environment (None: Lambda's own)


class FunctionStore(Protocol):
    def get(self, function: str) -> FunctionConfig:
        """GetFunctionConfiguration ($LATEST). NotFound if the function does not exist."""

    def put_environment(self, function: str, variables: dict[str, str], revision_id: str | None) -> FunctionConfig:
        """UpdateFunctionConfiguration with the whole environment (it replaces every variable), only
        if the function is still at `revision_id`: RevisionConflict if it changed, UpdateInProgress if
        an update is still being applied."""


class AlarmSource(Protocol):
    def describe(self, names: list[str], prefix: str | None = None) -> list[Alarm]:
        """Alarms by exact name (batches of 100) plus every alarm starting with prefix; paged inside."""


Datapoints = list[tuple[datetime, float]]  # (period start, aware UTC; value), oldest first


class MetricSource(Protocol):
    def get_data(self, queries: dict[str, "MetricQuery"], start: datetime, end: datetime,
                 period: int) -> dict[str, Datapoints]:
        """One GetMetricData request for every query (id -> metric), following NextToken to the last page;
        each id's datapoints in [start, end). AwsError when a result is not Complete after the last page
        (PartialData, Forbidden, InternalError): partial data is never judged."""


class LogsInsights(Protocol):
    def start_query(self, log_groups: list[str], query: str, start: datetime, end: datetime) -> str:
        """StartQuery; the query id. NotFound if a log group is missing."""

    def query_results(self, query_id: str) -> tuple[str, list[dict[str, str]]]:
        """GetQueryResults: its status (Scheduled, Running, Complete, Failed, Cancelled, Timeout, Unknown)
        and the rows so far, each field -> value (as text; @ptr left out)."""


class SecretSource(Protocol):
    def get_value(self, secret_id: str) -> str:
        """GetSecretValue's SecretString (or the binary, decoded). NotFound / AwsError otherwise."""

    def describe(self, secret_id: str) -> dict:
        """DescribeSecret's metadata (never a value)."""


class LogSource(Protocol):
    def events(
        self, log_group: str, start: datetime, end: datetime, filter_pattern: str = ""
    ) -> Iterator[LogEvent]:
        """Every matching event in [start, end], paging through all results. NotFound if the group is missing."""


class IdentitySource(Protocol):
    def caller(self) -> Identity: ...


class AccessSimulator(Protocol):
    def simulate(self, principal_arn: str, actions: list[str], resources: list[str],
                 context: dict[str, str]) -> dict[tuple[str, str], str]:
        """iam:SimulatePrincipalPolicy: (action, resource) -> allowed | explicitDeny | implicitDeny, for the
        principal's identity policies. AwsError (NotFound for an unknown principal) when it cannot be asked."""


@dataclass(frozen=True)
class CalendarReading:
    """An SSM Change Calendar's state at an instant: OPEN or CLOSED, and when that next changes."""

    state: str
    next_transition: datetime | None = None  # aware UTC; None when the calendar does not say


class ChangeCalendars(Protocol):
    def state(self, calendar: str, at: datetime) -> CalendarReading:
        """ssm:GetCalendarState of one calendar (a name or an ARN) at `at`. AwsError when it cannot be read."""


class Notifier(Protocol):
    def publish(self, topic_arn: str, subject: str, message: str) -> None:
        """Send a short message; raise AwsError on failure (the caller logs it and moves on)."""


HIGH_THROUGHPUT_SETTING = "/ssm/parameter-store/high-throughput-enabled"  # its SettingId (GetServiceSetting)


class ServiceSettings(Protocol):
    def high_throughput(self) -> bool:
        """Whether SSM Parameter Store's higher-throughput setting is on for the account and region."""


class AutomationStarter(Protocol):
    """SSM Automation in the caller's account and one region: the start of one execution across accounts
    and regions (`rollback --in-aws`), and what it needs there. AwsError when AWS refuses."""

    def role_exists(self, name: str) -> bool:
        """Whether the caller's account has the IAM role `name` (iam:GetRole)."""

    def document_exists(self, name: str) -> bool:
        """Whether this region holds the Automation document `name` (ssm:DescribeDocument)."""

    def start(self, document: str, parameters: dict[str, list[str]], locations: list[dict], max_errors: str,
              max_concurrency: str) -> str:
        """ssm:StartAutomationExecution of `document` with TargetLocations `locations`: its execution id."""


@dataclass
class AwsPorts:
    """Everything the core needs from AWS, bundled so use cases take one argument."""

    params: ParameterStore
    alarms: AlarmSource
    secrets: SecretSource
    logs: LogSource
    identity: IdentitySource
    region: str = ""
    notifier: Notifier | None = None
    functions: FunctionStore | None = None  # Lambda, for plans with Lambda flags
    access: AccessSimulator | None = None  # IAM policy simulation (the rollback-readiness gate); None: not checked
    calendars: ChangeCalendars | None = None  # SSM Change Calendars (window checks); None: every calendar unreadable
    metrics: MetricSource | None = None  # CloudWatch GetMetricData, for metric checks
    insights: LogsInsights | None = None  # CloudWatch Logs Insights, for logs_query checks
    settings: ServiceSettings | None = None  # SSM service settings (the higher-throughput hint)
