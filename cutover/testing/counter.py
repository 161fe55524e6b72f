"""Test tooling on botocore's event hooks: count the API calls a command makes (`CallCounter`), and
inject throttling or dropped connections below botocore's retries (`FaultInjector`)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, Iterator

import boto3
import botocore.exceptions as bex
from botocore.awsrequest import AWSResponse

from cutover.adapters.aws import iam_action, iam_prefix, is_read_operation


class CallCounter:
    """Counts API calls (`calls`, once per operation) and HTTP attempts (`attempts`, retries included),
    keyed by IAM-style action, e.g. counter.calls["ssm:PutParameter"]."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, session: boto3.Session) -> None:
        session.events.register("before-call", self._on_call)
        session.events.register("before-send", self._on_send)

    def _on_call(self, model, **_: Any) -> None:
        with self._lock:
            self.calls[iam_action(model)] += 1

    def _on_send(self, event_name: str, **_: Any) -> None:
        _, service_id, operation = event_name.split(".", 2)
        with self._lock:
            self.attempts[f"{iam_prefix(service_id)}:{operation}"] += 1

    def __getitem__(self, action: str) -> int:
        return self.calls[action]

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def writes(self) -> dict[str, int]:
        return {a: n for a, n in self.calls.items() if not is_read_operation(a.split(":", 1)[1])}

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.attempts.clear()


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


class FaultInjector:
    """Injects throttling or connection failures at 'before-send', i.e. through botocore's real retry
    path (backoff, attempt counting). For JSON-protocol services: SSM, Logs, Secrets Manager, CloudWatch.

        faults = FaultInjector().throttle("ssm:PutParameter", times=2)
        ports = make_ports(region, None, False, hooks=[faults])
    """

    def __init__(self) -> None:
        self._plan: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()

    def throttle(self, action: str, times: int = 1) -> "FaultInjector":
        return self._add(action, "throttle", times)

    def disconnect(self, action: str, times: int = 1) -> "FaultInjector":
        return self._add(action, "disconnect", times)

    def _add(self, action: str, kind: str, times: int) -> "FaultInjector":
        with self._lock:
            self._plan.setdefault(action, []).extend([kind] * times)
        return self

    def attach(self, session: boto3.Session) -> None:
        session.events.register("before-send", self._on_send)

    def _on_send(self, event_name: str, request, **_: Any):
        _, service_id, operation = event_name.split(".", 2)
        action = f"{iam_prefix(service_id)}:{operation}"
        with self._lock:
            pending = self._plan.get(action)
            if not pending:
                return None
            kind = pending.pop(0)
            self.injected[action] += 1
        if kind == "disconnect":
            raise bex.EndpointConnectionError(endpoint_url=request.url)
        body = b'{"__type":"ThrottlingException","message":"Rate exceeded"}'
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "cutover-fault"}
        return AWSResponse(request.url, 400, headers, _RawBody(body))


