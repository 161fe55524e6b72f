"""The state record and the lease lock, both SSM parameters under the plan's state prefix, so every
operator on every machine sees the same thing.

State: `<prefix>/state`, JSON, one version per change (that is the history).
Lock:  `<prefix>/lock`, created with Overwrite=False (atomic create-if-absent), holding a lease.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import MISSING, asdict, dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Callable

from cutover.clock import Clock
from cutover.errors import AlreadyExists, Blocked, Incomplete, NotFound
from cutover.model.plan import PENDING, ROLLED_BACK, Plan
from cutover.ports import Param, ParameterStore
from cutover.redact import REDACTOR
from cutover.retry import backoff

STABLE, ADVANCING, ROLLING_BACK, INTERRUPTED = "stable", "advancing", "rolling_back", "interrupted"
STATUSES = (STABLE, ADVANCING, ROLLING_BACK, INTERRUPTED)
MAX_RECORD_BYTES = 4096
# The state record format this cutover reads and writes. A record declares its format in a "v" field;
# a record without one is format 1 (so format-1 records are written without it, byte for byte as before).
RECORD_FORMAT = 1


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(s: str) -> datetime:
    """An aware ISO-8601 time (records only hold times that passed `_check_time`)."""
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


# --- strict record parsing ---------------------------------------------------------------------------
class RecordError(ValueError):
    """A record that does not parse into the exact expected shape. The message says how, one clear
    sentence per kind of problem (it never quotes a value: a record may hold anything)."""


class NewerRecord(RecordError):
    def __init__(self, version: int) -> None:
        super().__init__(f"it declares record format v{version}, newer than v{RECORD_FORMAT}")
        self.version = version


def _label(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:40] + "...")


def _kind(value) -> str:
    """What a JSON value is, with its article: "a list", "an object", "null"..."""
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "a number", float: "a number", type(None): "null"}[type(value)]


def _check_str(key: str, value) -> None:
    if type(value) is not str:
        raise RecordError(f"its field {_label(key)} is {_kind(value)}, not a string")


def _check_optional_str(key: str, value) -> None:
    if value is not None:
        _check_str(key, value)


def _check_int(key: str, value) -> None:
    if type(value) is not int:  # (a JSON true is a bool, and bool is an int in Python)
        raise RecordError(f"its field {_label(key)} is {_kind(value)}, not a whole number")


def _check_items(key: str, value) -> None:
    if value is None:
        return
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        raise RecordError(f"its field {_label(key)} is not an object of strings")


def _check_time(key: str, value) -> None:
    _check_str(key, value)
    try:
        t = parse_iso(value)
        if t.tzinfo is None:
            raise ValueError("naive")
        t.astimezone(timezone.utc)  # a far-off offset can overflow: then no comparison could be made
    except (ValueError, OverflowError):
        raise RecordError(f"its field {_label(key)} is not an ISO-8601 time with a time zone") from None


_CHECKS = {"str": _check_str, "str | None": _check_optional_str, "int": _check_int,
           "dict[str, str] | None": _check_items}
TIME_FIELDS = {"entered_at", "updated_at", "acquired_at", "expires_at"}


def _load_object(text: str) -> dict:
    try:
        data = json.loads(text)
    except RecursionError:
        raise RecordError("it is nested too deeply to be a record") from None
    except ValueError:
        raise RecordError("it is not valid JSON") from None
    if type(data) is not dict:
        raise RecordError(f"it is {_kind(data)}, not an object")
    return data


def _checked(cls, data: dict) -> dict:
    """The record's fields, each checked against the dataclass's annotation (times: aware ISO-8601)."""
    spec = {f.name: f for f in fields(cls)}
    unknown = sorted(k for k in data if k not in spec)
    if unknown:
        raise RecordError(f"it has an unexpected field {_label(unknown[0])}")
    for name, f in spec.items():
        if name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RecordError(f"it has no {_label(name)} field")
            continue
        (_check_time if name in TIME_FIELDS else _CHECKS[f.type])(name, data[name])
    return data


@dataclass
class StateRecord:
    phase: str  # the machine state the flags are (or were last) declared at
    status: str = STABLE
    target: str | None = None  # where an advance or rollback is heading
    entered_at: str = ""  # when `phase` was entered (bakes are measured from it)
    actor: str = ""  # STS ARN of whoever made this change
    run_id: str = ""
    plan: str = ""  # plan name: a record written by another plan is refused
    plan_digest: str = ""
    command: str = ""
    reason: str = ""
    updated_at: str = ""
    preempted: str | None = None  # run id of the advance a rollback preempted
    approved_by: str | None = None
    plan_items: dict[str, str] | None = None  # plandiff.fingerprints of the plan that wrote it
    v: int = RECORD_FORMAT  # the record format (see RECORD_FORMAT)

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "")}
        if data.get("v") == 1:
            del data["v"]  # format 1 is the format of records without "v"
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        # Keep under the SSM standard-tier limit: fingerprints are a convenience, the reason is cut last.
        if len(text.encode()) > MAX_RECORD_BYTES:
            data.pop("plan_items", None)
            text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        if len(text.encode()) > MAX_RECORD_BYTES:
            data["reason"] = data.get("reason", "")[:200]
            text = json.dumps(data, separators=(",", ":"), sort_keys=True)
        return text

    @classmethod
    def from_json(cls, text: str) -> "StateRecord":
        """The record, or RecordError saying why the text is not one (NewerRecord: a format this
        cutover does not know; checked first, as a newer format may have other fields)."""
        data = _load_object(text)
        version = data.get("v", 1)
        _check_int("v", version)
        if version > RECORD_FORMAT:
            raise NewerRecord(version)
        if version < 1:
            raise RecordError("its record format 'v' is not 1 or more")
        return cls(**_checked(cls, data))


@dataclass
class StateView:
    """What the state parameter says, or why it cannot be trusted."""

    record: StateRecord | None
    version: int | None = None
    problem: str | None = None  # corrupt, foreign plan, unknown phase...
    fix: str = ""

    @property
    def phase(self) -> str:
        return self.record.phase if self.record and not self.problem else PENDING

    @property
    def status(self) -> str:
        return self.record.status if self.record and not self.problem else STABLE


def interpret(plan: Plan, param: Param | None) -> StateView:
    if param is None:
        return StateView(None)
    try:
        record = StateRecord.from_json(param.value)
    except NewerRecord as err:
        return StateView(
            None, param.version, f"the state record {plan.state_parameter} was written by a newer cutover ({err})",
            "upgrade cutover to read it; `cutover rollback` still returns every flag to its known-safe value "
            f"(it needs only the plan) and rewrites the record in format v{RECORD_FORMAT}",
        )
    except RecordError as err:
        return StateView(
            None, param.version, f"the state record {plan.state_parameter} is corrupt: {err}",
            "run `cutover rollback` (it needs only the plan) to return every flag to its known-safe value and rewrite the record",
        )
    if record.plan and record.plan != plan.name:
        return StateView(
            record, param.version, f"the state record {plan.state_parameter} belongs to plan '{record.plan}', not '{plan.name}'",
            "check --plan and state_prefix (two plans must not share one); if this is the right plan, "
            "`cutover rollback` restores its known-safe values and rewrites the record",
        )
    known = {PENDING, ROLLED_BACK, *plan.phase_names}
    for name in (record.phase, record.target):
        if name is not None and name not in known:
            return StateView(
                record, param.version, f"the state record names phase '{name}', which this plan does not declare",
                "run `cutover rollback` to return to known-safe values; it rewrites the record",
            )
    if record.status not in STATUSES:
        return StateView(record, param.version, f"the state record has an unknown status '{record.status}'", "run `cutover rollback`")
    return StateView(record, param.version)


class StateStore:
    def __init__(self, plan: Plan, store: ParameterStore) -> None:
        self.plan = plan
        self.store = store

    def read(self) -> StateView:
        return interpret(self.plan, self.store.get_many([self.plan.state_parameter]).get(self.plan.state_parameter))

    def write(self, record: StateRecord, clock: Clock, before_attempt: Callable[[], None] | None = None) -> int:
        """Write a new version and read it back (reads may be stale: retry a few times).
        `before_attempt` runs right before each request is sent (a run's preemption check)."""
        record.plan = self.plan.name
        record.reason = REDACTOR.text(record.reason)  # operators type reasons; AWS keeps them for years
        if record.plan_items is None:
            from cutover.model.plandiff import fingerprints

            record.plan_items = fingerprints(self.plan)
        record.updated_at = iso(clock.now())
        text = record.to_json()
        checked = {"before_attempt": before_attempt} if before_attempt else {}  # (only PatientStore takes it)
        version = self.store.put(self.plan.state_parameter, text, overwrite=True, **checked)
        for attempt in range(10):
            seen = self.store.get_many([self.plan.state_parameter]).get(self.plan.state_parameter)
            if seen and seen.version >= version:
                if seen.version == version and seen.value != text:
                    break
                return version
            clock.sleep(backoff(attempt, first=0.1, cap=1.6))
        raise Incomplete(
            f"the state record {self.plan.state_parameter} could not be confirmed after writing it",
            "run `cutover status`; re-run the command to converge again",
        )

    def history(self) -> list[tuple[int, str | None, StateRecord | None, str]]:
        """(version, when, record or None, raw problem) for every stored version, oldest first."""
        try:
            versions = self.store.history(self.plan.state_parameter)
        except NotFound:
            return []
        rows = []
        for v in versions:
            when = iso(v.last_modified) if v.last_modified else None
            try:
                rows.append((v.version, when, StateRecord.from_json(v.value), ""))
            except RecordError as err:
                rows.append((v.version, when, None, f"unreadable record: {err}"))
        return rows


# --- the lease lock ---------------------------------------------------------------------------------
MAX_PID = 2**31 - 1
EPOCH = "1970-01-01T00:00:00Z"


@dataclass
class LockRecord:
    holder: str
    host: str
    pid: int
    command: str
    run_id: str
    acquired_at: str
    expires_at: str
    reason: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "LockRecord":
        data = _checked(LockRecord, _load_object(text))
        if not 0 <= data["pid"] <= MAX_PID:
            raise RecordError(f"its field 'pid' is not a process id (0 to {MAX_PID})")
        return cls(**data)

    def expired(self, now: datetime) -> bool:
        return parse_iso(self.expires_at) <= now

    def holder_gone(self) -> bool:
        """Held from this host by a process that no longer exists (it crashed or was killed)."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def describe(self, now: datetime) -> str:
        age = int((now - parse_iso(self.acquired_at)).total_seconds())
        return f"{self.holder} on {self.host} (pid {self.pid}), running `{self.command}` for {age // 60}m{age % 60:02d}s"


def read_lock(plan: Plan, store: ParameterStore) -> LockRecord | None:
    return parse_lock(store.get_many([plan.lock_parameter]).get(plan.lock_parameter))


@dataclass
class UnreadableLock(LockRecord):
    """A lock record that does not parse is still a lock: held by an unknown holder and long expired,
    so it is taken over (with a log line) rather than blocking everyone forever."""

    problem: str = ""

    def describe(self, now: datetime) -> str:
        return f"an unreadable lock record ({self.problem})"


def parse_lock(param: Param | None) -> LockRecord | None:
    if param is None:
        return None
    try:
        return LockRecord.from_json(param.value)
    except RecordError as err:
        return UnreadableLock("unknown (unreadable lock record)", "?", 0, "?", "?", EPOCH, EPOCH, problem=str(err))


@dataclass
class Lease:
    """A held lock. Renewed while the command runs; released at the end."""

    plan: Plan
    store: ParameterStore
    clock: Clock
    record: LockRecord
    taken_over: LockRecord | None = None

    def renew_if_due(self) -> None:
        now = self.clock.now()
        if parse_iso(self.record.expires_at) - now > timedelta(seconds=self.plan.lock_lease / 2):
            return
        current = read_lock(self.plan, self.store)
        if current is None or current.run_id != self.record.run_id:
            raise Blocked(
                "the lock was taken from this run (broken with `cutover unlock --force`, or expired and taken over)",
                "run `cutover status` to see who holds it now",
            )
        self.record.expires_at = iso(now + timedelta(seconds=self.plan.lock_lease))
        self.store.put(self.plan.lock_parameter, self.record.to_json(), overwrite=True)

    def release(self) -> None:
        current = read_lock(self.plan, self.store)
        if current is not None and current.run_id == self.record.run_id:
            self.store.delete(self.plan.lock_parameter)


def acquire(
    plan: Plan, store: ParameterStore, clock: Clock, *, holder: str, command: str, run_id: str, log=None
) -> Lease:
    """Create the lock atomically; take over an expired lease or one whose holder process died here."""
    now = clock.now()
    mine = LockRecord(
        holder=holder, host=socket.gethostname(), pid=os.getpid(), command=command, run_id=run_id,
        acquired_at=iso(now), expires_at=iso(now + timedelta(seconds=plan.lock_lease)),
    )
    try:
        store.put(plan.lock_parameter, mine.to_json(), overwrite=False)
        return Lease(plan, store, clock, mine)
    except AlreadyExists:
        pass
    current = read_lock(plan, store)
    if current is not None and current.run_id == run_id:
        # Our own create went through but its response was lost, and a retry found it taken.
        return Lease(plan, store, clock, mine)
    if current is not None and not (current.expired(now) or current.holder_gone()):
        raise Blocked(
            f"the lock is held by {current.describe(now)}",
            "wait for it to finish, or if that run is dead: cutover unlock --force --reason \"...\""
            " (a rollback never needs the lock: cutover rollback)",
        )
    # Take over: delete, then create-if-absent again. Whoever loses that create is blocked.
    if log and current is not None:
        log.warning("lock_taken_over", old_holder=current.holder, old_host=current.host, old_pid=current.pid,
                    old_command=current.command, old_run_id=current.run_id, expired_at=current.expires_at)
    store.delete(plan.lock_parameter)
    try:
        store.put(plan.lock_parameter, mine.to_json(), overwrite=False)
    except AlreadyExists:
        winner = read_lock(plan, store)
        if winner is not None and winner.run_id == run_id:
            return Lease(plan, store, clock, mine, taken_over=current)
        raise Blocked(
            f"the lock was taken over by {winner.describe(now) if winner else 'another operator'} at the same moment",
            "run `cutover status`",
        )
    return Lease(plan, store, clock, mine, taken_over=current)
