"""The state record and the lease lock, both SSM parameters under the plan's state prefix, so every
operator on every machine sees the same thing.

State: `<prefix>/state`, JSON, one version per change (that is the history).
Lock:  `<prefix>/lock`, created with Overwrite=False (atomic create-if-absent), holding a lease.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from cutover.clock import Clock
from cutover.errors import AlreadyExists, Blocked, Incomplete, NotFound
from cutover.model import PENDING, ROLLED_BACK, Plan
from cutover.ports import Param, ParameterStore
from cutover.redact import REDACTOR

STABLE, ADVANCING, ROLLING_BACK, INTERRUPTED = "stable", "advancing", "rolling_back", "interrupted"
STATUSES = (STABLE, ADVANCING, ROLLING_BACK, INTERRUPTED)
MAX_RECORD_BYTES = 4096


def iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_iso(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


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

    def to_json(self) -> str:
        data = {k: v for k, v in asdict(self).items() if v not in (None, "")}
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
        data = json.loads(text)
        if not isinstance(data, dict) or "phase" not in data:
            raise ValueError("not a state record (no phase)")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


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
    except (ValueError, TypeError) as err:
        return StateView(
            None, param.version, f"the state record {plan.state_parameter} is corrupt ({type(err).__name__})",
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

    def write(self, record: StateRecord, clock: Clock) -> int:
        """Write a new version and read it back (reads may be stale: retry a few times)."""
        record.plan = self.plan.name
        record.reason = REDACTOR.text(record.reason)  # operators type reasons; AWS keeps them for years
        if record.plan_items is None:
            from cutover.plandiff import fingerprints

            record.plan_items = fingerprints(self.plan)
        record.updated_at = iso(clock.now())
        text = record.to_json()
        version = self.store.put(self.plan.state_parameter, text, overwrite=True)
        for attempt in range(10):
            seen = self.store.get_many([self.plan.state_parameter]).get(self.plan.state_parameter)
            if seen and seen.version >= version:
                if seen.version == version and seen.value != text:
                    break
                return version
            clock.sleep(0.1 * 2**min(attempt, 4))
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
            except (ValueError, TypeError):
                rows.append((v.version, when, None, "unreadable record"))
        return rows


# --- the lease lock ---------------------------------------------------------------------------------
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
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

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


def parse_lock(param: Param | None) -> LockRecord | None:
    if param is None:
        return None
    try:
        return LockRecord.from_json(param.value)
    except (ValueError, TypeError):
        # An unreadable lock is still a lock: treat it as held by an unknown holder that has expired,
        # so it can be taken over rather than blocking everyone forever.
        return LockRecord("unknown (unreadable lock record)", "?", 0, "?", "?", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z")


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
