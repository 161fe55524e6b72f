"""Lambda: a function's configuration and environment, and the update that writes it."""

from __future__ import annotations

from cutover.errors import AwsError
from cutover.ports import FunctionConfig
from cutover.adapters.aws.errors import ClientFactory, aws_errors


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
