"""SNS: the PII-safe notices of state changes."""

from __future__ import annotations

import boto3
from botocore.config import Config

from cutover.adapters.aws.errors import aws_errors


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
