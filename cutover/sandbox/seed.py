"""Writes into the emulator what a plan reads (parameters, functions, secrets, alarms, log groups,
metrics): loopback endpoints only, never a real account."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.exceptions as bex

from cutover.adapters.aws import Clients, GuardResources, as_utc, aws_errors, epoch_ms, error_code, translate
from cutover.errors import AwsError, NotFound, UsageError
from cutover.model.templates import is_loopback


def _tiny_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@dataclass
class Written:
    """What one seeder wrote of the checks' fixtures, for the sandbox's summary."""

    alarms: list[str] = field(default_factory=list)
    log_groups: dict[str, int] = field(default_factory=dict)  # group -> events written
    metric_points: int = 0

    @property
    def log_events(self) -> int:
        return sum(self.log_groups.values())


# A client costs about 50 ms to make (botocore reads and parses its service's model), and a seeder is made
# for every seeding and refresh (every test, every rehearsal step): the seeders of one emulator and region
# share their clients. A role's seeder does not: the emulator issued its credentials, and a reset forgets them.
_SHARED: dict[tuple[str, str], tuple[boto3.Session, Clients]] = {}


class EmulatorSeeder:
    """Writes fixtures into an AWS emulator (moto) on loopback: used by `cutover sandbox`, `rehearse` and
    tests. It refuses any other endpoint, so it can never write fixtures into a real account."""

    ALARM_NAMESPACE = "Cutover/Sandbox"
    STREAM = "cutover-sandbox"

    def __init__(self, endpoint: str, region: str, role_arn: str | None = None) -> None:
        """`role_arn`: write as that role, in its account (the emulator routes an assumed role's calls to the
        role's account), as a target of another account is reached."""
        if not is_loopback(urlsplit(endpoint).hostname or ""):
            raise UsageError(f"refusing to seed {endpoint}: not a loopback emulator", "seed only 127.0.0.1")
        self.written = Written()
        if not role_arn and (endpoint, region) in _SHARED:
            self._session, self._clients = _SHARED[(endpoint, region)]
            return
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
        if role_arn:
            got = session.client("sts", endpoint_url=endpoint).assume_role(
                RoleArn=role_arn, RoleSessionName="cutover-sandbox-seed")["Credentials"]
            session = boto3.Session(aws_access_key_id=got["AccessKeyId"], aws_secret_access_key=got["SecretAccessKey"],
                                    aws_session_token=got["SessionToken"], region_name=region)
        self._session = session
        self._clients = Clients(session, endpoint_url=endpoint)
        if not role_arn:
            _SHARED[(endpoint, region)] = (self._session, self._clients)

    def client_environment(self) -> dict[str, str]:
        """This seeder's credentials and region as the environment variables a plain boto3 client reads."""
        creds = self._session.get_credentials().get_frozen_credentials()
        return {"AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key,
                "AWS_SESSION_TOKEN": creds.token or "", "AWS_DEFAULT_REGION": self._session.region_name,
                "AWS_REGION": self._session.region_name}

    def put_parameter(self, name: str, value: str, *, secure: bool = False) -> None:
        with aws_errors("ssm:PutParameter", name):
            self._clients("ssm").put_parameter(
                Name=name, Value=value, Type="SecureString" if secure else "String", Overwrite=True
            )

    def delete_parameter(self, name: str) -> None:
        """Delete a parameter and its history; a missing one is fine."""
        try:
            self._clients("ssm").delete_parameter(Name=name)
        except bex.ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ParameterNotFound":
                raise translate(err, "ssm:DeleteParameter", name) from None

    SANDBOX_ROLE = "cutover-sandbox-lambda"

    def put_function(self, name: str, variables: dict[str, str]) -> None:
        """A Lambda function with this environment (the emulator stores it; it never runs the code)."""
        fn = self._clients("lambda")
        try:
            with aws_errors("lambda:GetFunctionConfiguration", f"function {name}"):
                fn.get_function_configuration(FunctionName=name)
        except NotFound:
            with aws_errors("lambda:CreateFunction", f"function {name}"):
                fn.create_function(
                    FunctionName=name, Runtime="python3.12", Role=self._lambda_role(), Handler="app.handler",
                    Code={"ZipFile": _tiny_zip()}, Environment={"Variables": variables},
                )
            return
        self.put_environment(name, variables)

    def put_environment(self, name: str, variables: dict[str, str]) -> None:
        """Replace a function's whole environment (a hand edit in the console, say)."""
        with aws_errors("lambda:UpdateFunctionConfiguration", f"function {name}"):
            self._clients("lambda").update_function_configuration(FunctionName=name, Environment={"Variables": variables})

    def environment(self, name: str) -> dict[str, str]:
        with aws_errors("lambda:GetFunctionConfiguration", f"function {name}"):
            resp = self._clients("lambda").get_function_configuration(FunctionName=name)
        return dict((resp.get("Environment") or {}).get("Variables") or {})

    def _lambda_role(self) -> str:
        iam = self._clients("iam")
        trust = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}'
        with aws_errors("iam:CreateRole", self.SANDBOX_ROLE):
            try:
                return iam.create_role(RoleName=self.SANDBOX_ROLE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            except bex.ClientError as exc:
                if error_code(exc) != "EntityAlreadyExists":
                    raise
                return iam.get_role(RoleName=self.SANDBOX_ROLE)["Role"]["Arn"]

    def put_secret(self, secret_id: str, value: str) -> None:
        sm = self._clients("secretsmanager")
        with aws_errors("secretsmanager:CreateSecret", f"secret {secret_id}"):
            try:
                sm.create_secret(Name=secret_id, SecretString=value)
            except bex.ClientError as exc:
                if error_code(exc) != "ResourceExistsException":
                    raise
                sm.put_secret_value(SecretId=secret_id, SecretString=value)

    def put_alarm(self, name: str, state: str = "OK", reason: str = "seeded by cutover sandbox", expect=None) -> None:
        """A metric alarm on a dummy metric (the emulator never evaluates it), then its state. `expect`
        (an AlarmExpect) sets the configuration a plan's alarms check verifies."""
        e = expect.declared() if expect is not None else {}
        cw = self._clients("cloudwatch")
        with aws_errors("cloudwatch:PutMetricAlarm", name):
            cw.put_metric_alarm(
                AlarmName=name,
                Namespace=e.get("namespace", self.ALARM_NAMESPACE),
                MetricName=e.get("metric", "Sandbox"),
                Statistic="Sum",
                Period=int(e.get("period", 60)),
                EvaluationPeriods=e.get("evaluation_periods", 1),
                Threshold=e.get("threshold", 1),
                ComparisonOperator=e.get("comparison", "GreaterThanThreshold"),
            )
        self.set_alarm_state(name, state, reason)
        if name not in self.written.alarms:
            self.written.alarms.append(name)

    def set_alarm_state(self, name: str, state: str, reason: str = "set by cutover sandbox") -> None:
        """Incident injection: moto changes the state (and StateUpdatedTimestamp) only when told to."""
        with aws_errors("cloudwatch:SetAlarmState", name):
            self._clients("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason=reason)

    def alarm_states(self) -> dict[str, dict[str, Any]]:
        """Every metric alarm in the emulator: name -> {"state", "reason", "updated"} (what the sandbox's
        guard imitation watches for state changes)."""
        out: dict[str, dict[str, Any]] = {}
        with aws_errors("cloudwatch:DescribeAlarms"):
            for page in self._clients("cloudwatch").get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
                for a in page.get("MetricAlarms", []):
                    out[a["AlarmName"]] = {"state": a.get("StateValue", ""), "reason": a.get("StateReason", ""),
                                           "updated": as_utc(a.get("StateUpdatedTimestamp"))}
        return out

    def put_role(self, name: str, trust: dict, policies: dict[str, dict], description: str = "",
                 tags: dict[str, str] | None = None) -> None:
        """Create a role with these inline policies, or bring an existing one back to them (what an admin
        applying `cutover guard bootstrap` does; cutover itself never writes IAM in a real account)."""
        import json

        iam = self._clients("iam")
        with aws_errors("iam:CreateRole", f"role {name}"):
            try:
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust), Description=description,
                                Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()])
            except bex.ClientError as exc:
                if error_code(exc) != "EntityAlreadyExists":
                    raise
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
            for policy_name, doc in policies.items():
                iam.put_role_policy(RoleName=name, PolicyName=policy_name, PolicyDocument=json.dumps(doc))
            for gone in set(iam.list_role_policies(RoleName=name)["PolicyNames"]) - set(policies):  # as a stack update does
                iam.delete_role_policy(RoleName=name, PolicyName=gone)

    def attach_managed_policy(self, role: str, arn: str, doc: dict, description: str = "") -> None:
        """Create (or bring back to `doc`) the managed policy `arn` and attach it to `role`."""
        import json

        iam, name = self._clients("iam"), arn.rsplit("/", 1)[1]
        with aws_errors("iam:CreatePolicy", f"policy {name}"):
            try:
                iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc), Description=description)
            except bex.ClientError as exc:
                if error_code(exc) != "EntityAlreadyExists":
                    raise
                for old in iam.list_policy_versions(PolicyArn=arn)["Versions"]:  # IAM keeps at most 5
                    if not old["IsDefaultVersion"]:
                        iam.delete_policy_version(PolicyArn=arn, VersionId=old["VersionId"])
                iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(doc), SetAsDefault=True)
            iam.attach_role_policy(RoleName=role, PolicyArn=arn)

    def call_api(self, service: str, api: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """One API call by its AWS name (`ssm`, `PutParameter`), as an Automation `aws:executeAwsApi` step
        makes it: the sandbox's guard imitation runs the armed document's steps with it."""
        client = self._clients(service.lower())
        method = {api_name: py for py, api_name in client.meta.method_to_api_mapping.items()}.get(api)
        if method is None:
            raise UsageError(f"{service} has no API {api}", "check the document step's Service and Api")
        with aws_errors(f"{service.lower()}:{api}", str(inputs.get("Name", ""))):
            resp = getattr(client, method)(**inputs)
        return {k: v for k, v in resp.items() if k != "ResponseMetadata"}

    def guard_resources(self) -> GuardResources:
        """The guard's resources (document, rule, targets, roles) in the emulator."""
        return GuardResources(self._clients)

    def put_log_group(self, group: str) -> None:
        logs = self._clients("logs")
        with aws_errors("logs:CreateLogGroup", f"log group {group}"):
            for create, kw in (
                (logs.create_log_group, {"logGroupName": group}),
                (logs.create_log_stream, {"logGroupName": group, "logStreamName": self.STREAM}),
            ):
                try:
                    create(**kw)
                except bex.ClientError as exc:
                    if error_code(exc) != "ResourceAlreadyExistsException":
                        raise
        self.written.log_groups.setdefault(group, 0)

    def put_metric_points(self, query: Any, points: list[tuple[datetime, float]]) -> None:
        """Datapoints of one metric (a model MetricQuery: namespace, name, dimensions), 500 per call."""
        dims = [{"Name": k, "Value": v} for k, v in query.dimensions.items()]
        data = [{"MetricName": query.metric, "Dimensions": dims, "Timestamp": when, "Value": value}
                for when, value in points]
        for i in range(0, len(data), 500):
            with aws_errors("cloudwatch:PutMetricData", query.metric):
                self._clients("cloudwatch").put_metric_data(Namespace=query.namespace, MetricData=data[i:i + 500])
        self.written.metric_points += len(data)

    def put_log_event(self, group: str, message: str, when: datetime) -> None:
        self.put_log_group(group)
        with aws_errors("logs:PutLogEvents", f"log group {group}"):
            resp = self._clients("logs").put_log_events(
                logGroupName=group,
                logStreamName=self.STREAM,
                logEvents=[{"timestamp": epoch_ms(when), "message": message}],
            )
        # Events over 2 h in the future or 14 days old are dropped with a 200: never silently.
        if resp.get("rejectedLogEventsInfo"):
            raise AwsError(
                f"the emulator rejected a log event for {group} at {when.isoformat()} (too far from the real time)",
                "log events must be within 14 days before and 2 hours after the real clock",
                code="RejectedLogEvent",
                operation="logs:PutLogEvents",
            )
        self.written.log_groups[group] += 1
