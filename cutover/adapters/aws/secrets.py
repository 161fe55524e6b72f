"""Secrets Manager: the secrets gates read (values never leave the adapter unredacted)."""

from __future__ import annotations

import base64

from cutover.adapters.aws.errors import ClientFactory, aws_errors


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
