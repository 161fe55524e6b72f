"""The only module that imports boto3: session, read-only guard, retries, error translation, adapters.

The endpoint comes from the standard AWS_ENDPOINT_URL variable, which botocore honours itself, so the
sandbox, moto or LocalStack work unchanged. Nothing imports this module for `--help` or `validate`.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bex
from botocore.config import Config
from botocore.parsers import ResponseParserError
from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url

from cutover import regions
from cutover.errors import (
    AlreadyExists,
    AwsError,
    CutoverError,
    NotFound,
    ReadOnlyViolation,
    RevisionConflict,
    UpdateInProgress,
    UsageError,
)
from cutover.ports import Alarm, AwsPorts, CalendarReading, FunctionConfig, Identity, LogEvent, Param, ParamVersion
from cutover.retry import THROTTLED

# --- read-only guard -----------------------------------------------------------------------------------

READ_PREFIXES = ("Describe", "Get", "List", "Filter", "BatchGet")
READ_OPERATIONS = frozenset({"LookupEvents", "SimulatePrincipalPolicy"})  # the simulation changes nothing


def is_read_operation(operation: str) -> bool:
    """True for an AWS operation name (PutParameter, GetParameters...) that only reads."""
    return operation.startswith(READ_PREFIXES) or operation in READ_OPERATIONS


# botocore's hyphenated service ids that differ from the IAM action prefix.
_IAM_PREFIX = {"cloudwatch-logs": "logs", "secrets-manager": "secretsmanager", "eventbridge": "events"}


def iam_prefix(service_id: str) -> str:
    """`cloudwatch-logs` -> `logs`: the prefix people see in IAM policies (ssm:PutParameter)."""
    sid = service_id.lower().replace(" ", "-")
    return _IAM_PREFIX.get(sid, sid.replace("-", ""))


def iam_action(model) -> str:
    return f"{iam_prefix(model.service_model.service_id.hyphenize())}:{model.name}"


def _refuse_writes(model, **_: Any) -> None:
    # 'before-parameter-build' is the first event of every API call, before validation, signing or
    # any byte on the wire; raising here means the request is never built.
    if not is_read_operation(model.name):
        action = iam_action(model)
        raise ReadOnlyViolation(
            f"dry-run is read-only: refused {action}",
            "nothing was sent to AWS; run the command without --dry-run to apply",
            code="ReadOnlyViolation",
            operation=action,
        )


# --- session and clients -------------------------------------------------------------------------------


class SessionHook(Protocol):
    def attach(self, session: boto3.Session) -> None: ...


def make_session(
    region: str | None, profile: str | None, read_only: bool, *, hooks: Iterable[SessionHook] = (),
    credentials: Mapping[str, str] | None = None,
) -> boto3.Session:
    """A session whose every client (made now or later) carries the read-only guard and the hooks.
    The AWS variables botocore reads (endpoints, retries, region) are checked first: a bad one is a
    usage error naming it, before any client exists, never a crash or minutes of retries later.
    `credentials` (from `assume_role`) replace the profile's."""
    check_environment(os.environ)
    try:
        session = boto3.Session(region_name=region or None, profile_name=None if credentials else (profile or None),
                                **(credentials or {}))
    except bex.ProfileNotFound:
        raise UsageError(
            f"AWS profile {profile or os.environ.get('AWS_PROFILE', '')!r} not found",
            "list profiles with `aws configure list-profiles`; pass --profile or set AWS_PROFILE",
        ) from None
    if session.region_name and not region:  # from AWS_DEFAULT_REGION or the profile (--region and the plan are checked already)
        _check_region(session.region_name, "AWS_DEFAULT_REGION=" if os.environ.get("AWS_DEFAULT_REGION") else "the profile's region ")
    # Clients copy the session's event handlers when they are created, so registering here, before any
    # client exists, puts the guard in every client this session will ever make.
    if read_only:
        session.events.register("before-parameter-build", _refuse_writes, unique_id="cutover-read-only")
    for hook in hooks:
        hook.attach(session)
    return session


def assume_role(role_arn: str, external_id: str | None, region: str, profile: str | None, session_name: str) -> dict[str, str]:
    """Credentials of `role_arn` (sent with `external_id` when given), for make_session: assumed from the
    caller's own credentials. Assuming writes nothing, so a dry run may do it too."""
    sts = Clients(make_session(region, profile, read_only=False))("sts")
    extra = {"ExternalId": external_id} if external_id else {}
    with aws_errors("sts:AssumeRole", role_arn):
        got = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, **extra)["Credentials"]
    return {"aws_access_key_id": got["AccessKeyId"], "aws_secret_access_key": got["SecretAccessKey"],
            "aws_session_token": got["SessionToken"]}


CONNECT_TIMEOUT = 5
READ_TIMEOUT = 20
# SSM's write quota is ~3/s account-wide; 8 standard-mode attempts ride out a throttled burst.
MAX_ATTEMPTS = {"ssm": 8}
DEFAULT_MAX_ATTEMPTS = 5
ATTEMPTS_LIMIT = 20  # with standard back-off (up to 20 s each) more would hold a rollback for many minutes
RETRY_MODES = ("legacy", "standard", "adaptive")


def client_config(service: str, attempts: int | None = None) -> Config:
    # Attempts in total, first one included. AWS_MAX_ATTEMPTS (the standard variable, same meaning)
    # still wins, e.g. to fail fast in tests. (Config's `max_attempts` would count retries only.)
    attempts = attempts or _max_attempts(os.environ) or MAX_ATTEMPTS.get(service, DEFAULT_MAX_ATTEMPTS)
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra="cutover",
    )


def check_environment(environ: Mapping[str, str]) -> None:
    """UsageError naming the first AWS variable that botocore (or cutover) could not use."""
    _max_attempts(environ)
    mode = environ.get("AWS_RETRY_MODE", "")
    if mode and mode not in RETRY_MODES:
        raise UsageError(f"AWS_RETRY_MODE={mode!r} is not a retry mode (legacy, standard or adaptive)",
                         "unset AWS_RETRY_MODE: cutover always uses standard retries")
    for name in sorted(n for n in environ if n == "AWS_ENDPOINT_URL" or n.startswith("AWS_ENDPOINT_URL_")):
        problem = _endpoint_problem(environ[name])
        if problem:
            raise UsageError(f"{name}={environ[name]!r} {problem}",
                             f"set {name} to the emulator's or endpoint's URL, e.g. http://127.0.0.1:5000, or unset it to reach AWS")


def _max_attempts(environ: Mapping[str, str]) -> int | None:
    raw = environ.get("AWS_MAX_ATTEMPTS", "").strip()
    if not raw:
        return None  # unset or empty: botocore ignores it too
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= ATTEMPTS_LIMIT):
        raise UsageError(f"AWS_MAX_ATTEMPTS={raw!r} is not a whole number from 1 to {ATTEMPTS_LIMIT}",
                         f"unset it (cutover makes {DEFAULT_MAX_ATTEMPTS} attempts per call, {MAX_ATTEMPTS['ssm']} for SSM) "
                         "or set e.g. AWS_MAX_ATTEMPTS=3")
    return int(raw)


def _endpoint_problem(url: str) -> str:
    """Why botocore (or an HTTP connection) could not use `url` as an endpoint; "" when it can."""
    if not url:
        return ""  # empty: botocore ignores it
    if "\n" in url or "\r" in url:
        return "contains a newline"
    if any(c.isspace() for c in url):
        return "contains a space"
    if not url.isprintable():
        return "contains a control character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number from 0 to 65535)
    except ValueError as e:  # "Invalid IPv6 URL", "Port out of range 0-65535"...
        return "has a bad port (a number from 1 to 65535)" if "port" in str(e).lower() else f"is not a URL ({e})"
    if parts.scheme not in ("http", "https"):
        return "must start with http:// or https://"
    if not parts.hostname:
        return "has no host"
    if not is_valid_endpoint_url(url) and not is_valid_ipv6_endpoint_url(url):
        return "is not a URL botocore accepts"
    return ""


def _check_region(region: str, source: str) -> None:
    problem = regions.problem(region)
    if problem:
        raise UsageError(f"{source}{problem[0]}", problem[1])


class Clients:
    """Clients made on first use (rollback needs only SSM), once, under a lock (gates run in threads)."""

    def __init__(self, session: boto3.Session, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url
        self._made: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, service: str, attempts: int | None = None):
        """`attempts`: a client of its own whose calls are tried that many times (a best-effort read)."""
        key = (service, attempts)
        with self._lock:
            if key not in self._made:
                with aws_errors(f"{service}:client"):
                    try:
                        self._made[key] = self._session.client(
                            service, config=client_config(service, attempts), endpoint_url=self._endpoint_url
                        )
                    except ValueError as e:  # botocore's "Invalid endpoint: ..." from endpoint_url in ~/.aws/config
                        raise UsageError(f"botocore refused the settings for a {service} client: {_one_line(str(e), 120)}",
                                         "check endpoint_url, max_attempts and retry_mode in your AWS config file") from None
            return self._made[key]


def make_ports(
    region: str | None,
    profile: str | None,
    read_only: bool,
    *,
    counter: SessionHook | None = None,  # e.g. testing.counter.CallCounter
    hooks: Iterable[SessionHook] = (),
    credentials: Mapping[str, str] | None = None,  # an assumed role's (assume_role); default: the profile's
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


# --- error translation -----------------------------------------------------------------------------------

NOT_FOUND = {"ParameterNotFound", "ParameterVersionNotFound", "ResourceNotFoundException", "NotFoundException"}
EXISTS = {"ParameterAlreadyExists", "ResourceExistsException", "ResourceAlreadyExistsException"}
DENIED = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedException",
    "AuthorizationError",
}
KMS = {
    "DecryptionFailure",
    "KMSAccessDeniedException",
    "KMSDisabledException",
    "KMSInvalidStateException",
    "KMSNotFoundException",
}
BAD_CREDENTIALS = {
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestExpired",
}
NO_CREDENTIALS = (
    bex.NoCredentialsError,
    bex.PartialCredentialsError,
    bex.CredentialRetrievalError,
    bex.SSOError,
    bex.SSOTokenLoadError,
    bex.UnauthorizedSSOTokenError,
    bex.TokenRetrievalError,
    bex.NoAuthTokenError,
)
CREDENTIALS_HINT = (
    "set AWS_PROFILE and run `aws sso login`, or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
    "(for the sandbox, use the variables `cutover sandbox` prints)"
)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _sanitize(aws_message: str) -> str:
    """AWS messages can echo request values (`Value 'x' at 'value' failed...`): drop quoted and
    `value: ...` parts so a secret or sensitive flag value never reaches a console or evidence.
    Lambda's 4 KB refusal quotes the whole environment after "String measured": cut it off."""
    aws_message = re.split(r"(?i)string measured", aws_message, maxsplit=1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", aws_message)
    text = re.sub(r"(?i)(value:)\s*[^,]*", r"\1 …", text)
    return _one_line(text, 160)


def _connection_hint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        return f"AWS_ENDPOINT_URL={endpoint} is set: is the emulator running (`cutover sandbox`)? Unset it to reach AWS"
    return "check the network, VPN or proxy (HTTPS_PROXY) and the region"


def translate(exc: Exception, action: str, resource: str = "") -> CutoverError:
    """A botocore/boto3 exception -> the project's error, one line, with a hint; code and operation kept."""
    on = f" on {resource}" if resource else ""
    if isinstance(exc, bex.ClientError):
        err = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(err.get("Code", "") or meta.get("HTTPStatusCode", "Unknown"))
        status = meta.get("HTTPStatusCode", 0)
        attempts = meta.get("RetryAttempts", 0) + 1
        kw = {"code": code, "operation": action}
        if code in NOT_FOUND:
            return NotFound(f"{resource or 'resource'} not found ({action})", "check the name and the region", **kw)
        if code in EXISTS:
            return AlreadyExists(f"{resource or 'resource'} already exists ({action})", "", **kw)
        if code == "PreconditionFailedException":
            return RevisionConflict(f"{resource or 'the resource'} changed since it was read ({action})",
                                    "someone else updated it: read it again", **kw)
        if code == "ResourceConflictException":
            return UpdateInProgress(f"{resource or 'the resource'} is still applying an earlier update ({action})",
                                    "wait until its LastUpdateStatus is Successful", **kw)
        if code in KMS:
            return AwsError(
                f"AWS could not decrypt {resource or 'the value'} ({action}: {code})",
                "grant kms:Decrypt on the KMS key that encrypts it (see `cutover iam-policy`)",
                **kw,
            )
        if code in DENIED or code.startswith("AccessDenied"):
            return AwsError(
                f"AWS denied {action}{on}",
                f"grant {action}{on} to the role you use (see `cutover iam-policy`), or use the release role",
                **kw,
            )
        if code in BAD_CREDENTIALS:
            return AwsError(f"AWS rejected the credentials for {action} ({code})", CREDENTIALS_HINT, **kw)
        if code in THROTTLED:
            kw["transient"] = True
            return AwsError(
                f"AWS throttled {action}{on} after {attempts} attempts",
                "wait a minute and re-run: the command converges (lower write_rate if this repeats)",
                **kw,
            )
        if status >= 500:
            kw["transient"] = True
            return AwsError(
                f"AWS failed {action}{on}: {code} (HTTP {status}) after {attempts} attempts",
                "a transient AWS error: re-run, the command converges",
                **kw,
            )
        detail = _sanitize(err.get("Message", ""))
        return AwsError(f"AWS rejected {action}{on}: {code}" + (f": {detail}" if detail else ""), "", **kw)
    code = type(exc).__name__
    kw = {"code": code, "operation": action}
    if isinstance(exc, NO_CREDENTIALS):
        return AwsError(f"no usable AWS credentials for {action} ({code})", CREDENTIALS_HINT, **kw)
    if isinstance(exc, bex.ReadTimeoutError):
        return AwsError(f"AWS did not answer {action}{on} within {READ_TIMEOUT}s", _connection_hint(), transient=True, **kw)
    if isinstance(exc, (bex.ConnectionError, bex.HTTPClientError)):
        where = getattr(exc, "kwargs", {}).get("endpoint_url") or "the AWS endpoint"
        return AwsError(f"could not connect to {where} for {action}", _connection_hint(), transient=True, **kw)
    if isinstance(exc, ResponseParserError):
        return AwsError(f"AWS sent an unreadable answer to {action}{on}", "a transient fault: re-run, the command converges",
                        transient=True, **kw)
    if isinstance(exc, bex.NoRegionError):
        return UsageError("no AWS region", "set `region:` in the plan, pass --region, or set AWS_DEFAULT_REGION")
    if isinstance(exc, bex.ParamValidationError):
        return AwsError(f"invalid request for {action}{on}: {_sanitize(str(exc))}", "", **kw)
    return AwsError(f"{action}{on} failed: {code}: {_sanitize(str(exc))}", "", **kw)


@contextmanager
def aws_errors(action: str, resource: str = "") -> Iterator[None]:
    """Translate anything boto3 raises inside the block; our own errors pass through untouched."""
    try:
        yield
    except CutoverError:
        raise
    except (bex.BotoCoreError, bex.ClientError, ResponseParserError) as exc:
        raise translate(exc, action, resource) from exc


def error_code(exc: bex.ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _names(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{', '.join(names[:2])} and {len(names) - 2} more"


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


ClientFactory = Callable[[str], Any]

# --- adapters ---------------------------------------------------------------------------------------------


class SsmParameterStore:
    """ParameterStore on SSM Parameter Store."""

    BATCH = 10  # GetParameters takes at most 10 names

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm")

    def get_many(self, names: list[str]) -> dict[str, Param]:
        found: dict[str, Param] = {}
        for batch in _chunks(_unique(names), self.BATCH):
            with aws_errors("ssm:GetParameters", _names(batch)):
                resp = self._client().get_parameters(Names=batch, WithDecryption=True)
            for p in resp.get("Parameters", []):  # InvalidParameters (missing names) are simply absent
                found[p["Name"]] = Param(
                    p["Name"], p["Value"], int(p["Version"]), p.get("Type", "String"), as_utc(p.get("LastModifiedDate"))
                )
        return found

    def put(self, name: str, value: str, *, secure: bool = False, overwrite: bool = True) -> int:
        with aws_errors("ssm:PutParameter", name):
            resp = self._client().put_parameter(
                Name=name, Value=value, Type="SecureString" if secure else "String", Overwrite=overwrite
            )
        return int(resp["Version"])

    def delete(self, name: str) -> None:
        try:
            with aws_errors("ssm:DeleteParameter", name):
                self._client().delete_parameter(Name=name)
        except NotFound:
            pass

    def history(self, name: str) -> list[ParamVersion]:
        versions: list[ParamVersion] = []
        with aws_errors("ssm:GetParameterHistory", name):
            pages = self._client().get_paginator("get_parameter_history")
            for page in pages.paginate(Name=name, WithDecryption=True, PaginationConfig={"PageSize": 50}):
                for p in page.get("Parameters", []):
                    user = p.get("LastModifiedUser")
                    versions.append(
                        ParamVersion(
                            p["Name"],
                            p.get("Value", ""),
                            int(p["Version"]),
                            as_utc(p.get("LastModifiedDate")),
                            None if user in (None, "", "N/A") else user,  # moto says "N/A"
                        )
                    )
        return sorted(versions, key=lambda v: v.version)


class LambdaFunctions:
    """FunctionStore on Lambda: a function's configuration ($LATEST) and its environment."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("lambda")

    def get(self, function: str) -> FunctionConfig:
        with aws_errors("lambda:GetFunctionConfiguration", f"function {function}"):
            resp = self._client().get_function_configuration(FunctionName=function)
        return _function_config(resp, function)

    def put_environment(self, function: str, variables: dict[str, str], revision_id: str | None) -> FunctionConfig:
        only_if = {"RevisionId": revision_id} if revision_id else {}
        with aws_errors("lambda:UpdateFunctionConfiguration", f"function {function}"):
            resp = self._client().update_function_configuration(
                FunctionName=function, Environment={"Variables": variables}, **only_if
            )
        return _function_config(resp, function)


def _function_config(resp: dict, function: str) -> FunctionConfig:
    env = resp.get("Environment") or {}
    if env.get("Error"):
        # The variables could not be decrypted: writing now would replace them all with ours alone.
        code = env["Error"].get("ErrorCode", "Error")
        raise AwsError(f"cannot read the environment of function {function} ({code})",
                       "grant kms:Decrypt on the function's KMS key to the role you use", code=code,
                       operation="lambda:GetFunctionConfiguration")
    return FunctionConfig(
        name=resp.get("FunctionName", function),
        arn=resp.get("FunctionArn", ""),
        variables=dict(env.get("Variables") or {}),
        revision_id=resp.get("RevisionId"),
        update_status=resp.get("LastUpdateStatus") or "Successful",  # absent right after creation
        update_reason=resp.get("LastUpdateStatusReason", ""),
        state=resp.get("State") or "Active",
        kms_key_arn=resp.get("KMSKeyArn") or None,
    )


class CloudWatchAlarms:
    """AlarmSource on CloudWatch: metric and composite alarms, by name and by prefix."""

    BATCH = 100  # DescribeAlarms takes at most 100 names
    TYPES = ["MetricAlarm", "CompositeAlarm"]  # without AlarmTypes, AWS returns metric alarms only

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("cloudwatch")

    def describe(self, names: list[str], prefix: str | None = None) -> list[Alarm]:
        found: dict[str, Alarm] = {}
        for batch in _chunks(_unique(names), self.BATCH):
            with aws_errors("cloudwatch:DescribeAlarms", _names(batch)):
                self._collect(found, AlarmNames=batch)
        if prefix:
            with aws_errors("cloudwatch:DescribeAlarms", f"alarms named {prefix}*"):
                self._collect(found, AlarmNamePrefix=prefix)
        return list(found.values())

    def _collect(self, found: dict[str, Alarm], **query: Any) -> None:
        pages = self._client().get_paginator("describe_alarms")
        for page in pages.paginate(AlarmTypes=self.TYPES, PaginationConfig={"PageSize": 100}, **query):
            for a in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                # StateTransitionedTimestamp (when the state last *changed*) is what "quiet for" means;
                # AWS also bumps StateUpdatedTimestamp on reason-only updates. moto returns only the latter.
                when = a.get("StateTransitionedTimestamp") or a.get("StateUpdatedTimestamp")
                found.setdefault(
                    a["AlarmName"],
                    Alarm(a["AlarmName"], a["StateValue"], as_utc(when), a.get("StateReason", ""), **self._config(a)),
                )

    @staticmethod
    def _config(a: dict) -> dict[str, Any]:
        """What `expect` compares. A metric-math alarm keeps its metrics in `Metrics`: its period is the
        returned query's, its metric the expression, its namespace the one its metrics share."""
        if "AlarmRule" in a:  # composite: no metric, threshold or period of its own
            return {"composite": True}
        queries = a.get("Metrics") or []
        returned = next((q for q in queries if q.get("ReturnData", True)), {})
        stats = [q["MetricStat"] for q in queries if "MetricStat" in q]
        spaces = {s["Metric"].get("Namespace") for s in stats}
        periods = {s.get("Period") for s in stats}
        period = (a.get("Period") or returned.get("Period") or returned.get("MetricStat", {}).get("Period")
                  or (periods.pop() if len(periods) == 1 else None))
        return {
            "threshold": a.get("Threshold"),
            "comparison": a.get("ComparisonOperator"),
            "period": float(period) if period else None,
            "evaluation_periods": a.get("EvaluationPeriods"),
            "metric": a.get("MetricName") or returned.get("Expression")
            or returned.get("MetricStat", {}).get("Metric", {}).get("MetricName"),
            "namespace": a.get("Namespace") or (spaces.pop() if len(spaces) == 1 else None),
        }


class SsmChangeCalendars:
    """ChangeCalendars on ssm:GetCalendarState, one calendar per call so an error names its calendar.
    (The emulator has no Change Calendar: the sandbox and rehearsals use `sandbox.OpenCalendars`.)"""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm")

    def state(self, calendar: str, at: datetime) -> CalendarReading:
        with aws_errors("ssm:GetCalendarState", f"change calendar {calendar}"):
            resp = self._client().get_calendar_state(
                CalendarNames=[calendar], AtTime=at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        return CalendarReading(str(resp.get("State", "")), _iso_instant(resp.get("NextTransitionTime")))


class SsmServiceSettings:
    """ServiceSettings on ssm:GetServiceSetting. Tried once: it only feeds a hint, and a status must not
    wait out retries for it. (The emulator has no GetServiceSetting: tests answer it with a fake server.)"""

    HIGH_THROUGHPUT = "/ssm/parameter-store/high-throughput-enabled"

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("ssm", attempts=1)

    def high_throughput(self) -> bool:
        with aws_errors("ssm:GetServiceSetting", self.HIGH_THROUGHPUT):
            resp = self._client().get_service_setting(SettingId=self.HIGH_THROUGHPUT)
        return str(resp.get("ServiceSetting", {}).get("SettingValue", "")).lower() == "true"


def _iso_instant(text: str | None) -> datetime | None:
    """GetCalendarState's ISO 8601 times ("2026-12-24T18:00:00Z") -> aware UTC; None if absent or unreadable."""
    if not text:
        return None
    try:
        return as_utc(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
    except ValueError:
        return None


class CloudWatchMetrics:
    """MetricSource on GetMetricData: every query in one request, its pages merged by query id."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("cloudwatch")

    def get_data(self, queries: dict[str, Any], start: datetime, end: datetime, period: int) -> dict[str, list]:
        request = [{"Id": qid, "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": q.namespace, "MetricName": q.metric,
                       "Dimensions": [{"Name": k, "Value": v} for k, v in q.dimensions.items()]},
            "Period": int(period), "Stat": q.stat}} for qid, q in queries.items()]
        with aws_errors("cloudwatch:GetMetricData", _names([q.metric for q in queries.values()])):
            pages = self._client().get_paginator("get_metric_data").paginate(
                MetricDataQueries=request, StartTime=start, EndTime=end, ScanBy="TimestampAscending")
            return merge_metric_pages(list(queries), pages)


class CloudWatchLogsInsights:
    """LogsInsights on StartQuery / GetQueryResults (the caller polls until the query is done)."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("logs")

    def start_query(self, log_groups: list[str], query: str, start: datetime, end: datetime) -> str:
        with aws_errors("logs:StartQuery", _names(log_groups)):
            resp = self._client().start_query(logGroupNames=log_groups, queryString=query,
                                              startTime=int(start.timestamp()), endTime=int(end.timestamp()))
        return resp["queryId"]

    def query_results(self, query_id: str) -> tuple[str, list[dict[str, str]]]:
        with aws_errors("logs:GetQueryResults", f"query {query_id}"):
            resp = self._client().get_query_results(queryId=query_id)
        rows = [{f["field"]: f.get("value", "") for f in row if f.get("field") != "@ptr"} for row in resp.get("results", [])]
        return resp.get("status", "Unknown"), rows


def merge_metric_pages(ids: list[str], pages: Iterable[dict]) -> dict[str, list]:
    """GetMetricData's pages -> each query id's datapoints, oldest first. A result's StatusCode on its
    last page stands: anything but Complete (PartialData, Forbidden, InternalError) is an AwsError."""
    found: dict[str, list] = {qid: [] for qid in ids}
    status: dict[str, str] = {}
    for page in pages:
        for r in page.get("MetricDataResults", []):
            found.setdefault(r["Id"], []).extend(zip(map(as_utc, r.get("Timestamps", [])), r.get("Values", [])))
            status[r["Id"]] = r.get("StatusCode", "Complete")
    if bad := sorted(f"{qid} {code}" for qid, code in status.items() if code != "Complete"):
        raise AwsError(f"GetMetricData returned incomplete results ({', '.join(bad)})",
                       "re-run; if it persists, narrow the window or the baseline offsets",
                       code=status[bad[0].split()[0]], operation="cloudwatch:GetMetricData")
    return {qid: sorted(points) for qid, points in found.items()}


class SecretsManagerSource:
    """SecretSource on Secrets Manager. Values are returned, never put in messages."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("secretsmanager")

    def get_value(self, secret_id: str) -> str:
        with aws_errors("secretsmanager:GetSecretValue", f"secret {secret_id}"):
            resp = self._client().get_secret_value(SecretId=secret_id)
        if resp.get("SecretString") is not None:
            return resp["SecretString"]
        raw: bytes = resp.get("SecretBinary") or b""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(raw).decode("ascii")

    def describe(self, secret_id: str) -> dict:
        with aws_errors("secretsmanager:DescribeSecret", f"secret {secret_id}"):
            resp = self._client().describe_secret(SecretId=secret_id)
        resp.pop("ResponseMetadata", None)
        return resp


class CloudWatchLogs:
    """LogSource on CloudWatch Logs FilterLogEvents, following nextToken to the end."""

    def __init__(self, clients: ClientFactory, page_size: int | None = None) -> None:
        self._client = lambda: clients("logs")
        self.page_size = page_size  # None = the service default; small values exercise paging in tests

    def events(self, log_group: str, start: datetime, end: datetime, filter_pattern: str = "") -> Iterator[LogEvent]:
        query: dict[str, Any] = {"logGroupName": log_group, "startTime": epoch_ms(start), "endTime": epoch_ms(end)}
        if filter_pattern:
            query["filterPattern"] = filter_pattern
        if self.page_size:
            query["limit"] = self.page_size
        while True:
            with aws_errors("logs:FilterLogEvents", f"log group {log_group}"):
                page = self._client().filter_log_events(**query)
            for e in page.get("events", []):
                yield LogEvent(datetime.fromtimestamp(e["timestamp"] / 1000, tz=timezone.utc), e.get("message", ""))
            # AWS may return empty pages with a token while it searches: only a missing token ends it.
            token = page.get("nextToken")
            if not token or token == query.get("nextToken"):
                return
            query["nextToken"] = token


class SnsNotifier:
    """Notifier on SNS Publish, with its own client: one attempt, short timeouts. A notification must
    never hold up a rollback or the exit after it."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._client = None

    def publish(self, topic_arn: str, subject: str, message: str) -> None:
        with aws_errors("sns:Publish", topic_arn):
            if self._client is None:
                self._client = self._session.client(
                    "sns", config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=2, read_timeout=3))
            self._client.publish(TopicArn=topic_arn, Subject=subject[:100], Message=message)


class IamAccess:
    """AccessSimulator on iam:SimulatePrincipalPolicy, with its own client: one attempt, short timeouts.
    It only advises (the readiness gate says "not checked" when it cannot ask), so it never waits long."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._client = None
        self._unavailable: AwsError | None = None  # an endpoint that cannot simulate (an emulator) is asked once

    def simulate(self, principal_arn: str, actions: list[str], resources: list[str],
                 context: dict[str, str]) -> dict[tuple[str, str], str]:
        if self._unavailable is not None:
            raise self._unavailable
        try:
            return self._simulate(principal_arn, actions, resources, context)
        except AwsError as err:
            if isinstance(err.__cause__, ResponseParserError):  # not an AWS answer: it will not become one
                self._unavailable = err
            raise

    def _simulate(self, principal_arn: str, actions: list[str], resources: list[str],
                  context: dict[str, str]) -> dict[tuple[str, str], str]:
        entries = [{"ContextKeyName": k, "ContextKeyValues": [v], "ContextKeyType": "string"} for k, v in context.items()]
        decisions: dict[tuple[str, str], str] = {}
        with aws_errors("iam:SimulatePrincipalPolicy", principal_arn):
            if self._client is None:
                self._client = self._session.client("iam", config=Config(
                    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=3, read_timeout=10))
            pages = self._client.get_paginator("simulate_principal_policy").paginate(
                PolicySourceArn=principal_arn, ActionNames=actions, ResourceArns=resources, ContextEntries=entries)
            for page in pages:
                for r in page.get("EvaluationResults", []):
                    for one in r.get("ResourceSpecificResults") or [
                            {"EvalResourceName": r.get("EvalResourceName", "*"), "EvalResourceDecision": r["EvalDecision"]}]:
                        decisions[(r["EvalActionName"], one["EvalResourceName"])] = one["EvalResourceDecision"]
        return decisions


class StsIdentity:
    """IdentitySource on STS GetCallerIdentity (cached: the caller does not change during a run)."""

    def __init__(self, clients: ClientFactory) -> None:
        self._client = lambda: clients("sts")
        self._cached: Identity | None = None

    def caller(self) -> Identity:
        if self._cached is None:
            with aws_errors("sts:GetCallerIdentity"):
                resp = self._client().get_caller_identity()
            self._cached = Identity(resp["Arn"], resp["Account"])
        return self._cached


class GuardResources:
    """The guard's AWS resources (`cutover guard`): an SSM Automation document, an EventBridge rule and
    its targets; the IAM roles (one inline policy each) are only read, an admin creates them from
    `cutover guard bootstrap`. Reads return None for a missing resource;
    every other failure is the project's own error. Policy and pattern documents go in and come out as
    dicts, contents as JSON text."""

    MISSING_ROLE = {"NoSuchEntity"}
    MISSING_DOCUMENT = {"InvalidDocument"}
    MISSING_RULE = {"ResourceNotFoundException"}

    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients

    @classmethod
    def connect(
        cls, region: str | None, profile: str | None, read_only: bool, *, hooks: Iterable[SessionHook] = ()
    ) -> "GuardResources":
        """On its own session, with the read-only guard when `read_only` (dry runs and `guard status`)."""
        return cls(Clients(make_session(region, profile, read_only, hooks=hooks)))

    def _call(self, service: str, method: str, action: str, resource: str, missing: Iterable[str] = (), **kw):
        """One API call; None when the error code says the resource does not exist."""
        with aws_errors(action, resource):
            try:
                return getattr(self._clients(service), method)(**kw)
            except bex.ClientError as exc:
                if error_code(exc) in missing:
                    return None
                raise

    @staticmethod
    def _policy(doc: Any) -> dict:
        """IAM policy documents: botocore decodes them to dicts; be lenient with URL-encoded JSON text."""
        if isinstance(doc, str):
            import json
            from urllib.parse import unquote

            return json.loads(unquote(doc))
        return doc or {}

    @staticmethod
    def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
        return [{"Key": k, "Value": v} for k, v in tags.items()]

    # --- IAM roles -------------------------------------------------------------------------------------
    def get_role(self, name: str, managed: Iterable[str] = ()) -> dict | None:
        """{"arn", "trust", "policies": {inline policy name: document}, "managed": {attached policy name:
        document, read for the names in `managed` only (what the operator may read), else None}} or None."""
        resp = self._call("iam", "get_role", "iam:GetRole", f"role {name}", self.MISSING_ROLE, RoleName=name)
        if resp is None:
            return None
        role = resp["Role"]
        names: list[str] = []
        with aws_errors("iam:ListRolePolicies", f"role {name}"):
            for page in self._clients("iam").get_paginator("list_role_policies").paginate(RoleName=name):
                names += page.get("PolicyNames", [])
        policies = {}
        for pname in names:
            got = self._call("iam", "get_role_policy", "iam:GetRolePolicy", f"role {name}", self.MISSING_ROLE,
                             RoleName=name, PolicyName=pname)
            if got is not None:
                policies[pname] = self._policy(got.get("PolicyDocument"))
        return {"arn": role["Arn"], "trust": self._policy(role.get("AssumeRolePolicyDocument")), "policies": policies,
                "managed": self._attached_policies(name, set(managed))}

    def _attached_policies(self, role: str, readable: set[str]) -> dict[str, dict | None]:
        """{managed policy name: its default version's document, or None if not `readable`} of the
        policies attached to `role`."""
        iam, attached = self._clients("iam"), []
        with aws_errors("iam:ListAttachedRolePolicies", f"role {role}"):
            for page in iam.get_paginator("list_attached_role_policies").paginate(RoleName=role):
                attached += page.get("AttachedPolicies", [])
        out = {}
        for p in attached:
            if p["PolicyName"] not in readable:
                out[p["PolicyName"]] = None
                continue
            with aws_errors("iam:GetPolicy", f"policy {p['PolicyArn']}"):
                version = iam.get_policy(PolicyArn=p["PolicyArn"])["Policy"]["DefaultVersionId"]
            with aws_errors("iam:GetPolicyVersion", f"policy {p['PolicyArn']}"):
                got = iam.get_policy_version(PolicyArn=p["PolicyArn"], VersionId=version)["PolicyVersion"]
            out[p["PolicyName"]] = self._policy(got.get("Document"))
        return out

    # --- SSM Automation document -------------------------------------------------------------------
    def get_document(self, name: str, version: str | None = None) -> dict | None:
        """The default version's (or `version`'s) content and the document's versions and tags, or None."""
        desc = self._call("ssm", "describe_document", "ssm:DescribeDocument", f"document {name}",
                          self.MISSING_DOCUMENT, Name=name)
        if desc is None:
            return None
        kw = {"DocumentVersion": version} if version else {}
        got = self._call("ssm", "get_document", "ssm:GetDocument", f"document {name}", self.MISSING_DOCUMENT,
                         Name=name, DocumentFormat="JSON", **kw)
        if got is None:
            return None
        d = desc["Document"]
        tags = {t["Key"]: t["Value"] for t in d.get("Tags", [])}
        return {"content": got.get("Content", ""), "version": str(got.get("DocumentVersion", "")),
                "default_version": str(d.get("DefaultVersion", "")), "latest_version": str(d.get("LatestVersion", "")),
                "type": d.get("DocumentType", ""), "description": d.get("Description", ""), "tags": tags}

    def create_document(self, name: str, content: str, tags: dict[str, str]) -> str:
        """`content` is YAML (SSM converts it: `get_document` reads it back as JSON)."""
        resp = self._call("ssm", "create_document", "ssm:CreateDocument", f"document {name}", Name=name,
                          Content=content, DocumentType="Automation", DocumentFormat="YAML", Tags=self._tags(tags))
        return str(resp["DocumentDescription"].get("DocumentVersion", "1"))

    def update_document(self, name: str, content: str, tags: dict[str, str]) -> str:
        """A new version with `content`, made the default (what `$DEFAULT` targets run). When an older
        version already holds exactly this content (SSM refuses a duplicate), that one becomes the default."""
        resp = self._call("ssm", "update_document", "ssm:UpdateDocument", f"document {name}",
                          {"DuplicateDocumentContent"}, Name=name, Content=content, DocumentVersion="$LATEST",
                          DocumentFormat="YAML")
        version = str(resp["DocumentDescription"]["DocumentVersion"]) if resp else self._version_holding(name, content)
        self._call("ssm", "update_document_default_version", "ssm:UpdateDocumentDefaultVersion",
                   f"document {name}", Name=name, DocumentVersion=version)
        self._call("ssm", "add_tags_to_resource", "ssm:AddTagsToResource", f"document {name}",
                   ResourceType="Document", ResourceId=name, Tags=self._tags(tags))
        return version

    def _version_holding(self, name: str, content: str) -> str:
        import json

        import yaml

        desc = self.get_document(name)
        latest = int(desc["latest_version"]) if desc and desc["latest_version"].isdigit() else 0
        for v in range(latest, 0, -1):
            got = self.get_document(name, str(v))  # read back as JSON; written as YAML
            if got is not None and json.loads(got["content"]) == yaml.safe_load(content):
                return str(v)
        raise AwsError(f"SSM says a version of document {name} holds this content, but none was found",
                       "re-run `cutover guard arm`", code="DuplicateDocumentContent", operation="ssm:UpdateDocument")

    def delete_document(self, name: str) -> bool:
        return self._call("ssm", "delete_document", "ssm:DeleteDocument", f"document {name}",
                          self.MISSING_DOCUMENT, Name=name) is not None

    # --- EventBridge rule and targets ----------------------------------------------------------------
    def get_rule(self, name: str) -> dict | None:
        """{"arn", "pattern" (dict), "state", "description"} or None."""
        import json

        resp = self._call("events", "describe_rule", "events:DescribeRule", f"rule {name}", self.MISSING_RULE, Name=name)
        if resp is None:
            return None
        pattern = resp.get("EventPattern")
        return {"arn": resp.get("Arn", ""), "pattern": json.loads(pattern) if pattern else None,
                "state": resp.get("State", ""), "description": resp.get("Description", "")}

    def list_targets(self, rule: str) -> list[dict]:
        """Every target of the rule (botocore's paginator follows NextToken); [] when there is no rule."""
        with aws_errors("events:ListTargetsByRule", f"rule {rule}"):
            try:
                pages = self._clients("events").get_paginator("list_targets_by_rule").paginate(Rule=rule)
                return [t for page in pages for t in page.get("Targets", [])]
            except bex.ClientError as exc:
                if error_code(exc) in self.MISSING_RULE:
                    return []
                raise

    def put_rule(self, name: str, pattern: dict, description: str, tags: dict[str, str]) -> str:
        import json

        resp = self._call("events", "put_rule", "events:PutRule", f"rule {name}", Name=name,
                          EventPattern=json.dumps(pattern), State="ENABLED", Description=description[:512],
                          Tags=self._tags(tags))
        return resp.get("RuleArn", "")

    def put_targets(self, rule: str, targets: list[dict]) -> None:
        resp = self._call("events", "put_targets", "events:PutTargets", f"rule {rule}", Rule=rule, Targets=targets)
        self._entries_ok(resp, "events:PutTargets", rule)

    def remove_targets(self, rule: str, ids: list[str]) -> None:
        if not ids:
            return
        resp = self._call("events", "remove_targets", "events:RemoveTargets", f"rule {rule}", self.MISSING_RULE,
                          Rule=rule, Ids=ids)
        self._entries_ok(resp, "events:RemoveTargets", rule)

    def delete_rule(self, name: str) -> bool:
        return self._call("events", "delete_rule", "events:DeleteRule", f"rule {name}", self.MISSING_RULE,
                          Name=name) is not None

    @staticmethod
    def _entries_ok(resp: dict | None, action: str, rule: str) -> None:
        failed = (resp or {}).get("FailedEntries") or []
        if (resp or {}).get("FailedEntryCount") or failed:
            first = failed[0] if failed else {}
            raise AwsError(f"AWS rejected {action} on rule {rule}: {first.get('ErrorCode', 'failed entry')}",
                           _sanitize(first.get("ErrorMessage", "")), code=first.get("ErrorCode", ""), operation=action)


