"""STS: who the caller is (account and ARN)."""

from __future__ import annotations

from cutover.ports import Identity
from cutover.adapters.aws.errors import ClientFactory, aws_errors


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
