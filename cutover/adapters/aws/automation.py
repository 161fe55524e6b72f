"""SSM Automation across accounts and regions: one execution with TargetLocations (`rollback --in-aws`)."""

from __future__ import annotations

import botocore.exceptions as bex

from cutover.adapters.aws.errors import ClientFactory, aws_errors, error_code


class SsmAutomationStarter:
    """AutomationStarter on SSM and IAM, in the caller's account and the client's region."""

    def __init__(self, clients: ClientFactory) -> None:
        self._clients = clients

    def _exists(self, service: str, method: str, action: str, resource: str, missing: set[str], **kw) -> bool:
        with aws_errors(action, resource):
            try:
                getattr(self._clients(service), method)(**kw)
                return True
            except bex.ClientError as exc:
                if error_code(exc) in missing:
                    return False
                raise

    def role_exists(self, name: str) -> bool:
        return self._exists("iam", "get_role", "iam:GetRole", f"role {name}", {"NoSuchEntity"}, RoleName=name)

    def document_exists(self, name: str) -> bool:
        return self._exists("ssm", "describe_document", "ssm:DescribeDocument", f"document {name}", {"InvalidDocument"},
                            Name=name)

    def start(self, document: str, parameters: dict[str, list[str]], locations: list[dict], max_errors: str,
              max_concurrency: str) -> str:
        with aws_errors("ssm:StartAutomationExecution", f"document {document}"):
            resp = self._clients("ssm").start_automation_execution(
                DocumentName=document, Parameters=parameters, TargetLocations=locations, MaxErrors=max_errors,
                MaxConcurrency=max_concurrency)
        return resp["AutomationExecutionId"]
