"""Fake AWS ports for gate tests. They implement the Protocols in cutover.ports and, like the real
adapters, raise only cutover.errors types."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Iterator

from cutover.testing.clock import FakeClock
from cutover.errors import AwsError, NotFound
from cutover.gates.context import GateContext
from cutover.ports import Alarm, AwsPorts, Identity, LogEvent, Param
from cutover.redact import Redactor


class FakeSecrets:
    def __init__(self, values: dict[str, str] | None = None, errors: dict[str, Exception] | None = None,
                 meta: dict[str, dict] | None = None) -> None:
        self.values = dict(values or {})
        self.errors = dict(errors or {})  # id -> error raised by get_value and describe
        self.meta = dict(meta or {})  # id -> DescribeSecret metadata
        self.calls: list[tuple[str, str]] = []

    def get_value(self, secret_id: str) -> str:
        self.calls.append(("get_value", secret_id))
        if secret_id in self.errors:
            raise self.errors[secret_id]
        if secret_id not in self.values:
            raise NotFound(f"secret {secret_id} not found", code="ResourceNotFoundException")
        return self.values[secret_id]

    def describe(self, secret_id: str) -> dict:
        self.calls.append(("describe", secret_id))
        if secret_id in self.errors:
            raise self.errors[secret_id]
        if secret_id in self.meta:
            return dict(self.meta[secret_id])
        if secret_id in self.values:
            return {"Name": secret_id}
        raise NotFound(f"secret {secret_id} not found", code="ResourceNotFoundException")


class FakeLogs:
    """Log groups of events. The filter pattern is honoured coarsely (a quoted literal must appear),
    or ignored with honour_filter=False so tests can prove the gate matches in Python."""

    def __init__(self, groups: dict[str, list[LogEvent]] | None = None, *, error: Exception | None = None,
                 delay: float = 0.0, honour_filter: bool = True, clock: FakeClock | None = None,
                 call_cost: float = 0.0) -> None:
        self.groups = {k: list(v) for k, v in (groups or {}).items()}
        self.error = error
        self.delay = delay  # real seconds, to simulate a hung AWS call
        self.honour_filter = honour_filter
        self.clock, self.call_cost = clock, call_cost  # each call advances a FakeClock (slow AWS, no sleeping)
        self.calls: list[tuple[str, datetime, datetime, str]] = []

    def add(self, group: str, when: datetime, message: str) -> None:
        self.groups.setdefault(group, []).append(LogEvent(when, message))

    def events(self, log_group: str, start: datetime, end: datetime, filter_pattern: str = "") -> Iterator[LogEvent]:
        self.calls.append((log_group, start, end, filter_pattern))
        if self.delay:
            time.sleep(self.delay)
        if self.clock is not None and self.call_cost:
            self.clock.advance(self.call_cost)
        if self.error is not None:
            raise self.error
        if log_group not in self.groups:
            raise NotFound(f"log group {log_group} not found", code="ResourceNotFoundException")
        literal = filter_pattern.strip('"') if self.honour_filter else ""
        for ev in sorted(self.groups[log_group], key=lambda e: e.timestamp):
            if start <= ev.timestamp <= end and literal in ev.message:
                yield ev


class FakeAlarms:
    def __init__(self, alarms: list[Alarm] = (), *, error: Exception | None = None) -> None:
        self.alarms = list(alarms)
        self.error = error
        self.calls: list[tuple[list[str], str | None]] = []

    def describe(self, names: list[str], prefix: str | None = None) -> list[Alarm]:
        self.calls.append((list(names), prefix))
        if self.error is not None:
            raise self.error
        return [a for a in self.alarms if a.name in names or (prefix and a.name.startswith(prefix))]


class FakeCalendars:
    """ChangeCalendars (moto has no GetCalendarState): name -> CalendarReading, or an error to raise."""

    def __init__(self, readings: dict | None = None, errors: dict[str, Exception] | None = None) -> None:
        self.readings = dict(readings or {})
        self.errors = dict(errors or {})
        self.calls: list[tuple[str, datetime]] = []

    def state(self, calendar: str, at: datetime):
        self.calls.append((calendar, at))
        if calendar in self.errors:
            raise self.errors[calendar]
        if calendar not in self.readings:
            raise NotFound(f"change calendar {calendar} not found", code="ResourceNotFoundException")
        return self.readings[calendar]


class FakeParams:
    def __init__(self) -> None:
        self.values: dict[str, Param] = {}

    def get_many(self, names: list[str]) -> dict[str, Param]:
        return {n: self.values[n] for n in names if n in self.values}

    def put(self, name: str, value: str, *, secure: bool = False, overwrite: bool = True) -> int:
        raise AwsError("gates never write", code="ReadOnlyViolation")

    def delete(self, name: str) -> None:
        raise AwsError("gates never write", code="ReadOnlyViolation")

    def history(self, name: str):
        raise NotFound(name)


class FakeIdentity:
    def caller(self) -> Identity:
        return Identity("arn:aws:sts::123456789012:assumed-role/release/tester", "123456789012")


def alarm(name: str, state: str, clock: FakeClock, age: float) -> Alarm:
    """An alarm that has been in `state` for `age` seconds on `clock`."""
    return Alarm(name, state, clock.now() - timedelta(seconds=age))


def make_ctx(*, env: dict | None = None, secrets: FakeSecrets | None = None, logs: FakeLogs | None = None,
             alarms: FakeAlarms | None = None, clock=None, calendars: FakeCalendars | None = None, **kw) -> GateContext:
    """A GateContext over fakes, with its own Redactor (tests must not leak registrations)."""
    ports = AwsPorts(
        params=FakeParams(),
        alarms=alarms or FakeAlarms(),
        secrets=secrets or FakeSecrets(),
        logs=logs or FakeLogs(),
        identity=FakeIdentity(),
        region="us-east-2",
        calendars=calendars,
    )
    return GateContext(aws=ports, env=env or {}, clock=clock or FakeClock(), redactor=Redactor(), **kw)
