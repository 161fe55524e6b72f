"""The converging flag engine: read live values, write only what differs in plan order, paced to the
plan's write rate, and read back until every write is confirmed.

Nothing here depends on what a crashed process remembered: re-running `converge` with the same target
finds what is already done by reading, and finishes the rest.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from cutover.clock import Clock, SystemClock
from cutover.errors import AwsError, Incomplete, UsageError
from cutover.core.lambdaenv import EnvWriter
from cutover.model import program
from cutover.model.plan import Flag, LambdaTarget, Plan
from cutover.ports import FunctionStore, Param, ParameterStore
from cutover.redact import REDACTOR, is_public
from cutover.retry import backoff
from cutover.redact import shown as shown  # the one display of a flag value; callers use flags.shown

READ_BATCH = 10  # GetParameters takes at most 10 names
VERIFY_ATTEMPTS = 12  # stale reads: read back this many times, backing off, before giving up
THROTTLE_RETRIES = 8  # on top of botocore's own retries: a write is never dropped silently
REWRITE_ROUNDS = 3  # a rollback re-writes flags someone else changed after its write at most this many more times
# SSM has no compare-and-swap, so a run's preemption check and its write are two calls. Bounding the
# time between them bounds how late a preempted run's write can land:
CHECK_VALID_FOR = 2.0  # seconds: a write is sent at most this long after the check that cleared it
IN_FLIGHT = 3.0  # seconds allowed for a sent write request to reach AWS and be applied
WRITE_SLOT = CHECK_VALID_FOR + IN_FLIGHT  # what a rollback waits out after preempting a run


@dataclass
class FlagChange:
    flag: Flag
    old: str | None  # None: the parameter does not exist yet
    new: str
    old_version: int | None = None
    new_version: int | None = None
    written: bool = False
    confirmed: bool = False
    overwritten: bool = False  # read back at a newer version holding another value: someone wrote after us

    @property
    def name(self) -> str:
        return self.flag.name

    def to_dict(self) -> dict:
        return {
            "flag": self.flag.name,
            "kind": self.flag.kind,
            "target": self.flag.where,
            **({"parameter": self.flag.parameter} if self.flag.kind == "ssm" else {}),
            "old": shown(self.flag, self.old),
            "new": shown(self.flag, self.new),
            "old_version": self.old_version,
            "new_version": self.new_version,
            "written": self.written,
            "confirmed": self.confirmed,
        }


@dataclass
class ConvergeResult:
    changes: list[FlagChange] = field(default_factory=list)

    def latest(self) -> list[FlagChange]:
        """The last change of each flag (a rollback may write a flag again), in plan order."""
        return list({c.name: c for c in self.changes}.values())

    @property
    def confirmed(self) -> list[str]:
        return [c.name for c in self.latest() if c.confirmed]

    @property
    def pending(self) -> list[str]:
        return [c.name for c in self.latest() if not c.confirmed]


class Live(dict):
    """Live values keyed by `Flag.key` (an SSM flag's key is its parameter name, so extra parameters
    such as the state record sit beside them). `unreadable` names the Lambda functions whose
    configuration could not be read, with the error: their flags are simply absent."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.unreadable: dict[str, AwsError] = {}

    def raise_unreadable(self) -> None:
        """For commands that must not act on a partial view (advance)."""
        for err in self.unreadable.values():
            raise err


def read_live(plan: Plan, store: ParameterStore, extra: list[str] = (), functions: FunctionStore | None = None,
              clock: Clock | None = None) -> Live:
    """Every flag's live value (missing ones absent), plus any extra SSM names: one GetParameters per
    10 names and one GetFunctionConfiguration per Lambda function.

    A function that cannot be read does not stop the read (a rollback must still reach the SSM kill
    switches): it is listed in `unreadable`. Live values of sensitive flags are registered with the
    redactor: a hand-edited value is as private as a declared one."""
    live = Live(store.get_many([f.parameter for f in plan.ssm_flags] + list(extra)))
    if plan.functions:
        reader = env_writer(functions, clock or SystemClock())
        for function in plan.functions:
            try:
                config = reader.read(function)
            except AwsError as err:
                live.unreadable[function] = err
                continue
            for f in plan.flags:
                if isinstance(f.target, LambdaTarget) and f.target.function == function and f.target.variable in config.variables:
                    live[f.key] = Param(f.key, config.variables[f.target.variable], 0)
    _register_private(plan, live)
    return live


def read_params(plan: Plan, store: ParameterStore, names: list[str]) -> Live:
    """Just these SSM names (flags' parameters and others), in one call for up to 10: a rollback's read
    before its kill switch. Private live values are registered as `read_live` does."""
    live = Live(store.get_many(names))
    _register_private(plan, live)
    return live


def _register_private(plan: Plan, live: Live) -> None:
    for f in plan.flags:
        if f.key in live and not is_public(f, live[f.key].value):
            REDACTOR.register(live[f.key].value)


def leading_ssm_flags(plan: Plan, most: int) -> list[Flag]:
    """The SSM flags that come first in rollback (plan) order, up to `most`, stopping at the first
    Lambda flag: the flags a rollback can read in one call before deciding its first write."""
    leading = []
    for f in plan.flags[:most]:
        if f.kind != "ssm":
            break
        leading.append(f)
    return leading


def env_writer(functions: FunctionStore | None, clock: Clock) -> EnvWriter:
    if functions is None:  # make_ports always sets it: only a hand-built AwsPorts can lack it
        raise UsageError("this plan has Lambda flags but no Lambda client was set up", "report this as a bug")
    return EnvWriter(functions, clock)


def is_at(flag: Flag, param: Param | None, value: str) -> bool:
    if param is None or param.value != value:
        return False
    # A secure flag stored as plain String is not converged: its value is readable by anyone with GetParameter.
    return not flag.secure or param.type == "SecureString"




def diff(plan: Plan, target: dict[str, str], live: dict[str, Param]) -> list[FlagChange]:
    """The changes that bring live values to target, in plan (rollback) order."""
    changes = []
    for flag in plan.flags:
        if flag.name not in target:
            continue
        param = live.get(flag.key)
        if not is_at(flag, param, target[flag.name]):
            changes.append(
                FlagChange(flag, param.value if param else None, target[flag.name], param.version if param else None)
            )
    return changes


class PatientStore:
    """A ParameterStore whose writes never give up silently on a transient fault (throttling, 5xx,
    dropped connection): back off and retry, on top of botocore's own retries. A write may have
    reached SSM although we saw an error (its response was lost): a read-back tells, and then it
    is not written again."""

    def __init__(self, store: ParameterStore, clock: Clock, pacer: "Pacer | None" = None) -> None:
        self.inner = store
        self.clock = clock
        self.pacer = pacer  # every put, flag or state or lock, counts against the one write quota

    def get_many(self, names):
        return self._patiently(lambda: self.inner.get_many(names))

    def history(self, name):
        return self._patiently(lambda: self.inner.history(name))

    def delete(self, name):
        return self._patiently(lambda: self.inner.delete(name))

    def put(self, name: str, value: str, *, secure: bool = False, overwrite: bool = True,
            before_attempt: Callable[[], None] | None = None) -> int:
        """`before_attempt` runs right before each request is sent (a run's preemption check)."""
        for attempt in range(THROTTLE_RETRIES + 1):
            if self.pacer:
                self.pacer.wait()
            if before_attempt:
                before_attempt()
            start = self.clock.monotonic()
            try:
                return self.inner.put(name, value, secure=secure, overwrite=overwrite)
            except AwsError as err:
                if not err.transient:
                    raise
                seen = self._patiently(lambda: self.inner.get_many([name])).get(name)
                if seen is not None and seen.value == value:
                    return seen.version
                if attempt == THROTTLE_RETRIES:
                    raise
                self.clock.sleep(backoff(attempt))
            finally:
                if self.pacer:
                    self.pacer.booked(start, self.clock.monotonic())
        raise AssertionError("unreachable")

    def _patiently(self, call):
        for attempt in range(THROTTLE_RETRIES + 1):
            try:
                return call()
            except AwsError as err:
                if not err.transient or attempt == THROTTLE_RETRIES:
                    raise
                self.clock.sleep(backoff(attempt))


def patient(store: ParameterStore, clock: Clock, pacer: "Pacer | None" = None) -> PatientStore:
    return store if isinstance(store, PatientStore) else PatientStore(store, clock, pacer)


# Seconds added to 1/rate between writes. Measured through the fault proxy's quota (3 PutParameter in
# any 1 s window), 45-60 writes per run from a separate process, on this project's shared 2-core machine:
# - spaced from write *starts* only, margins 0, 1, 2, 3, 5, 10, 20 ms (load 4-7): 16-35 throttled per 61
#   writes at every margin (a late arrival lands closer than 1/rate to the next; botocore's own retry
#   of the throttled call is not paced, and throttles cascade);
# - spaced from the estimated arrival (below), margins 0, 2, 5 ms, two runs each (load 8.5-9):
#   0-2 throttled per 46 writes at every margin, no cascade; 10 ms (docs/BENCHMARKS.md, load 3-5): 0.
# The margin barely matters next to the arrival estimate; 5 ms keeps half the old one's headroom.
PACING_MARGIN = 0.005


class Pacer:
    """Keeps writes at most `rate` per second, the account-wide SSM write quota, never in bursts: each
    write starts 1/rate (+ PACING_MARGIN) after the previous one reached AWS. When that was is
    estimated from its round trip: its start, unless the round trip took longer than the fastest one
    seen, when it may have arrived late (a loaded machine, a retry): then its end minus that fastest
    round trip. Spacing from starts alone lets a late arrival and an on-time one land closer than
    1/rate, and one throttle costs far more than the milliseconds saved (measured: README, pacing)."""

    def __init__(self, rate: float, clock: Clock, margin: float = PACING_MARGIN) -> None:
        self.interval = 1.0 / rate + margin
        self.clock = clock
        self._next: float | None = None
        self._rtt: float | None = None  # the fastest round trip seen
        self._lock = threading.Lock()

    def wait(self, idle: Callable[[], None] | None = None) -> None:
        """Block until the next write may start (using the wait for `idle` work first)."""
        if self._next is not None and self.clock.monotonic() < self._next:
            if idle:
                idle()
            self.clock.sleep(self._next - self.clock.monotonic())

    def booked(self, start: float, end: float) -> None:
        """A write was sent at `start` and answered at `end`."""
        with self._lock:
            rtt = end - start
            self._rtt = rtt if self._rtt is None else min(self._rtt, rtt)
            arrived = max(start, end - self._rtt)
            self._next = max(self._next or 0.0, arrived + self.interval)


class Clearance:
    """A run's permission to send writes, from its last preemption check that passed: good for
    CHECK_VALID_FOR seconds. `ensure()` right before each request re-checks once it is older (after a
    pacing wait, a throttled retry, a Lambda update still being applied), so no write of a preempted run
    is sent more than CHECK_VALID_FOR after a check that could have seen the rollback."""

    def __init__(self, check: Callable[[], None], clock: Clock) -> None:
        self.check = check  # raises to stop the run
        self.clock = clock
        self.at: float | None = None

    def renew(self) -> None:
        started = self.clock.monotonic()  # the check's read may show the state as of its start
        self.check()
        self.at = started

    def ensure(self) -> None:
        if self.at is None or self.clock.monotonic() - self.at > CHECK_VALID_FOR:
            self.renew()


class Converger:
    """Writes a list of changes and confirms them.

    `before_write(state_param)` is called before every write with the freshly read state record (the
    read rides along with the read-back of earlier writes, so preemption costs no extra call); it raises
    to stop the run before the next write.
    """

    def __init__(
        self,
        plan: Plan,
        store: ParameterStore,
        clock: Clock,
        *,
        functions: FunctionStore | None = None,
        before_write: Callable[[Param | None], None] | None = None,
        on_event: Callable[[str, FlagChange], None] | None = None,
        keep_going: bool = False,
        after_first_write: Callable[[], None] | None = None,
        watch: dict[str, Param] | None = None,
        overtaken: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.keep_going = keep_going  # after a failed write, write the rest (rollback) instead of stopping
        self.clock = clock
        self.functions = functions
        self.env = env_writer(functions, clock) if plan.functions else None
        self.before_write = before_write
        self.on_event = on_event or (lambda event, change: None)
        self.store = patient(store, clock, Pacer(plan.write_rate, clock))
        self.pacer = self.store.pacer or Pacer(plan.write_rate, clock)
        self.store.pacer = self.pacer
        self.result = ConvergeResult()  # every change made so far (a preempted caller yields them back)
        self.failures: list[tuple[str, AwsError]] = []
        self.rewrites: list[str] = []  # flags settle() found changed by someone else and wrote again
        self._unwritable: set[str] = set()  # keys of flags whose write failed: not retried by settle()
        self._failed_functions: set[str] = set()
        # SSM writes sent and not yet confirmed (nor found overwritten), oldest first: kept as writes
        # are sent and confirmed, so a read-back after every write costs O(1), not a scan of the run.
        self._outstanding: dict[int, FlagChange] = {}
        self.clearance = Clearance(self._check_state, clock) if before_write else None
        # Runs once, right after the first write is sent (or has failed): a rollback's `rolling_back`
        # marker, which takes the next write slot instead of the kill switch's.
        self.after_first_write = after_first_write
        # A full rollback writes its kill switch before its marker: the first flag it restores is the
        # sign to stop by. `watch`: the SSM flags (by parameter, as this run last knew them) a rollback
        # would write first; this run's first SSM write joins them. Read with every preemption check;
        # one found at a newer version holding another value calls `overtaken(flag name)`, which raises.
        self._watched = dict(watch or {})
        self.overtaken = overtaken
        self._watched_mine = False

    def run(self, changes: list[FlagChange]) -> ConvergeResult:
        """Write `changes` in order and confirm each by reading it back. Stops (Incomplete) at a flag
        someone else changed right after we wrote it: waiting would not confirm it."""
        self._write_all(changes)
        self._verify()
        self._raise_failures()
        overwritten = [c.name for c in self.result.latest() if c.overwritten]
        if overwritten:
            raise self._incomplete(f"changed by someone else right after this run wrote them: {', '.join(overwritten)}",
                                   "run `cutover status` to see who holds the flags now")
        return self.result

    def restore(self, target: dict[str, str], live: dict[str, Param]) -> ConvergeResult:
        """A rollback: write every flag not at `target`, confirm, then settle(). Flags this run has
        written already (a kill switch written before the full read) are not written again."""
        self._write_all(self.still_to_write(target, live))
        self._verify()
        return self.settle(target)

    def still_to_write(self, target: dict[str, str], live: dict[str, Param]) -> list[FlagChange]:
        """The changes that bring `live` to `target`, less the flags this run has written or failed to
        write (settle() reads those again at the end)."""
        done = {c.flag.key for c in self.result.changes if c.written} | self._unwritable
        return [c for c in diff(self.plan, target, live) if c.flag.key not in done]

    def write_first(self, change: FlagChange) -> None:
        """One change before anything else is read (a rollback's kill switch); `after_first_write` runs
        right after it. Confirmed with the rest, by restore()."""
        self._write_all([change])

    def settle(self, target: dict[str, str]) -> ConvergeResult:
        """Read every flag again and re-write, paced, each one found at another value (a preempted
        run's in-flight write landed after ours), until a read shows every flag at `target`: at most
        REWRITE_ROUNDS rounds of re-writes, then Incomplete (someone keeps writing). Flags whose write
        failed are not retried (the failure is reported instead)."""
        for round_ in range(REWRITE_ROUNDS + 1):
            wrong = [c for c in diff(self.plan, target, self._fresh_live()) if c.flag.key not in self._unwritable]
            if not wrong:
                break
            if round_ == REWRITE_ROUNDS:
                self.result.changes += wrong
                raise self._incomplete(
                    f"flags kept changing while rolling back: {', '.join(c.name for c in wrong)} changed again after "
                    f"{REWRITE_ROUNDS} re-writes", "someone else is writing them: run `cutover status`, then roll back again")
            for change in wrong:
                self.on_event("rewriting", change)
            self.rewrites += [c.name for c in wrong]
            self._write_all(wrong)
            self._verify()
        self._raise_failures()
        return self.result

    # --- writes -----------------------------------------------------------------------------------
    def _write_all(self, changes: list[FlagChange]) -> None:
        """Execute the changes as the rollback program groups them (`program.group`): one write per SSM
        flag, paced at the quota; one read-merge-write per Lambda function, at its first flag."""
        self.result.changes += changes
        by_key = {c.flag.key: c for c in changes}
        for step in program.group((c.flag, c.new) for c in changes):
            batch = [by_key[f.key] for f in step.flags]
            if isinstance(step, program.MergeEnvironment) and step.function in self._failed_functions:
                continue
            if isinstance(step, program.SetParameter):
                self.pacer.wait(idle=self._read_back)  # the SSM write quota
            if self.clearance:
                self.clearance.renew()
            try:
                if isinstance(step, program.SetParameter):
                    self._write(batch[0])
                else:
                    self._write_function(step.function, batch)
            except AwsError as err:
                why = f"writing {batch[0].flag.where} failed: {err.message}"
                if not self.keep_going:
                    raise self._incomplete(why, err.hint) from err
                # A rollback goes on: one unwritable target must not keep the others from their safe values.
                self.failures.append((why, err))
                self._unwritable.add(batch[0].flag.key)
                if isinstance(step, program.MergeEnvironment):
                    self._failed_functions.add(step.function)
                    self._unwritable.update(f.key for f in self.plan.flags if f.kind == "lambda" and f.target.function == step.function)
            self._first_write_done()

    def _first_write_done(self) -> None:
        hook, self.after_first_write = self.after_first_write, None
        if hook:
            hook()

    def _check_state(self) -> None:
        """The preemption check, its state read riding along with the read-back of earlier writes."""
        live = self._read_back(with_state=True)
        self.before_write(live.get(self.plan.state_parameter))
        for name, known in self._watched.items():
            seen = live.get(name)
            if self.overtaken and seen is not None and seen.version > known.version and seen.value != known.value:
                self.overtaken(next(f.name for f in self.plan.ssm_flags if f.parameter == name))

    def _ensure_cleared(self) -> None:
        if self.clearance:
            self.clearance.ensure()

    def _write(self, change: FlagChange) -> None:
        flag = change.flag
        change.new_version = self.store.put(flag.parameter, change.new, secure=flag.secure, overwrite=True,
                                            before_attempt=self._ensure_cleared)
        change.written = True
        self._outstanding[id(change)] = change
        if flag.parameter in self._watched or not self._watched_mine:
            self._watched[flag.parameter] = Param(flag.parameter, change.new, change.new_version or 0)
            self._watched_mine = True
        self.on_event("written", change)

    def _write_function(self, function: str, changes: list[FlagChange]) -> None:
        """Every pending change of one function (`changes`: this run's, for that function) in one update,
        at the place of its first flag in plan order; confirmed by the configuration read once Lambda has
        applied it."""
        batch = [c for c in changes if not c.written]
        config = self.env.apply(function, {c.flag.target.variable: c.new for c in batch}, before_put=self._ensure_cleared)
        for change in batch:
            change.written = True
            self.on_event("written", change)
        for change in batch:
            if config.variables.get(change.flag.target.variable) == change.new and not change.confirmed:
                change.confirmed = True
                self.on_event("confirmed", change)

    def _raise_failures(self) -> None:
        if self.failures:
            raise self._incomplete("; ".join(why for why, _ in self.failures), self.failures[0][1].hint) from self.failures[0][1]

    # --- read-back --------------------------------------------------------------------------------
    def _read_back(self, with_state: bool = False) -> dict[str, Param]:
        """One GetParameters call: up to 10 unconfirmed written flags (plus the state record and the
        watched flags)."""
        names = [self.plan.state_parameter, *self._watched] if with_state else []
        waiting = self._waiting()[: READ_BATCH - len(names)]
        names += [c.flag.parameter for c in waiting]
        if not names:
            return {}
        live = self.store.get_many(names)
        for change in waiting:
            if change.flag.parameter in live:
                self._confirm(change, live[change.flag.parameter])
        return live

    def _waiting(self) -> list[FlagChange]:
        # Lambda changes are confirmed when written, or not at all; failed writes are not waited for.
        return list(self._outstanding.values())

    def _confirm(self, change: FlagChange, param: Param) -> None:
        # A stale read shows an older version: only the written version (or a newer one holding the
        # same value) confirms the write. A newer version holding another value is someone else's write.
        if is_at(change.flag, param, change.new) and param.version >= (change.new_version or 0):
            if not change.confirmed:
                change.confirmed = True
                self.on_event("confirmed", change)
        elif param.version > (change.new_version or 0):
            change.overwritten = True
        if change.confirmed or change.overwritten:
            self._outstanding.pop(id(change), None)

    def _rounds(self) -> Iterator[None]:
        """VERIFY_ATTEMPTS rounds of reading, backing off between them (stale reads settle in seconds)."""
        for attempt in range(VERIFY_ATTEMPTS):
            if attempt:
                self.clock.sleep(backoff(attempt - 1, first=0.1, cap=2.0))
            yield

    def _verify(self) -> None:
        for _ in self._rounds():
            waiting = self._waiting()
            if not waiting:
                break
            for i in range(0, len(waiting), READ_BATCH):
                batch = waiting[i : i + READ_BATCH]
                live = self.store.get_many([c.flag.parameter for c in batch])
                for change in batch:
                    if change.flag.parameter in live:
                        self._confirm(change, live[change.flag.parameter])
            if not self._outstanding:
                break
        if any(c.written and not c.confirmed and not c.overwritten for c in self.result.latest()):
            raise self._incomplete("some writes could not be confirmed by reading them back", "")

    def _fresh_live(self) -> Live:
        """Every flag read again. A read older than a version we confirmed is stale: read again
        (a few times, backing off) rather than write again over our own confirmed write."""
        ours = {c.flag.key: c.new_version for c in self.result.changes if c.confirmed and c.new_version}
        for _ in self._rounds():
            live = read_live(self.plan, self.store, functions=self.functions, clock=self.clock)
            if all(live.get(key) is None or live[key].version >= version for key, version in ours.items()):
                break
        return live

    def _incomplete(self, why: str, hint: str) -> Incomplete:
        result = self.result
        done = ", ".join(result.confirmed) or "none"
        todo = ", ".join(result.pending) or "none"
        err = Incomplete(
            f"{why}; confirmed: {done}; not confirmed: {todo}",
            hint or "run `cutover status` to see every flag, then re-run the command or `cutover rollback`",
        )
        err.result = result
        return err
