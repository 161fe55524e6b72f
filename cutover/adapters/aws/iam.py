"""IAM: the rollback-readiness simulation (SimulatePrincipalPolicy)."""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.parsers import ResponseParserError

from cutover.errors import AwsError
from cutover.adapters.aws.errors import aws_errors


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
