"""State record interpretation and the lease lock, on an in-memory store with an injected clock."""

import socket
import subprocess
import sys

import pytest

from cutover.core import state
from cutover.testing.clock import FakeClock
from cutover.errors import Blocked
from cutover.model.plan import Flag, Phase, Plan, SsmTarget
from cutover.ports import Param
from tests.fakes import FakeParameterStore

PLAN = Plan(name="t", region="us-east-2", state_prefix="/cutover/t",
            flags=(Flag("a", SsmTarget("/app/a"), "off"),), checks={},
            phases=(Phase("shadow", {}, ()), Phase("canary", {"a": "on"}, ())), lock_lease=900)


def param(text):
    return Param(PLAN.state_parameter, text, 1)


def test_missing_record_is_pending():
    view = state.interpret(PLAN, None)
    assert view.phase == "pending" and view.problem is None


@pytest.mark.parametrize("text,words", [
    ('{"phase": "canary"', "corrupt"),
    ("[]", "corrupt"),
    ('{"phase": "canary", "plan": "other-plan"}', "belongs to plan 'other-plan'"),
    ('{"phase": "gone", "plan": "t"}', "names phase 'gone'"),
    ('{"phase": "canary", "plan": "t", "status": "weird"}', "unknown status"),
])
def test_bad_records_are_explained_with_a_fix(text, words):
    view = state.interpret(PLAN, param(text))
    assert words in view.problem and "rollback" in view.fix or "state_prefix" in view.fix
    assert view.phase == "pending"  # never trusted


@pytest.mark.parametrize("text,why", [
    ('{"phase": "canary"', "it is not valid JSON"),
    ('["canary"]', "it is a list, not an object"),
    ("[" * 2000 + "]" * 2000, "it is nested too deeply to be a record"),
    ('{"status": "stable"}', "it has no 'phase' field"),
    ('{"phase": ["canary"]}', "its field 'phase' is a list, not a string"),
    ('{"phase": "canary", "target": {"x": 1}}', "its field 'target' is an object, not a string"),
    ('{"phase": "canary", "preempted": true}', "its field 'preempted' is a boolean, not a string"),
    ('{"phase": "canary", "plan_items": {"a": 1}}', "its field 'plan_items' is not an object of strings"),
    ('{"phase": "canary", "entered_at": "2099-01-01T00:00:00"}', "its field 'entered_at' is not an ISO-8601 time with a time zone"),
    ('{"phase": "canary", "updated_at": 1767225600}', "its field 'updated_at' is a number, not a string"),
    ('{"phase": "canary", "colour": "red"}', "it has an unexpected field 'colour'"),
    ('{"phase": "canary", "v": true}', "its field 'v' is a boolean, not a whole number"),
    ('{"phase": "canary", "v": 0}', "its record format 'v' is not 1 or more"),
])
def test_a_record_of_the_wrong_shape_is_corrupt_with_one_explanation_per_kind(text, why):
    view = state.interpret(PLAN, param(text))
    assert view.record is None and view.phase == "pending"
    assert view.problem == f"the state record {PLAN.state_parameter} is corrupt: {why}"


def test_a_record_of_a_newer_format_is_unreadable_and_says_so():
    view = state.interpret(PLAN, param('{"v": 2, "phase": "canary", "plan": "t", "new_field": [1]}'))
    assert view.record is None
    assert "was written by a newer cutover (it declares record format v2, newer than v1)" in view.problem
    assert "upgrade cutover" in view.fix and "rollback" in view.fix


def test_format_1_records_are_written_without_v_and_read_with_or_without_it():
    rec = state.StateRecord(phase="canary", entered_at="2026-01-01T00:00:00Z")
    assert '"v"' not in rec.to_json()
    assert state.StateRecord.from_json('{"phase": "canary", "v": 1}').v == 1
    assert state.StateRecord.from_json(rec.to_json()) == rec


@pytest.mark.parametrize("text,why", [
    ("[1, 2]", "it is a list, not an object"),
    ('"locked"', "it is a string, not an object"),
    ('{"holder": "bob"}', "it has no 'host' field"),
    ('{"holder": "b", "host": "h", "pid": 1, "command": "c", "run_id": "r", "acquired_at": "2026-01-01T00:00:00Z", '
     '"expires_at": "2099-01-01T00:00:00"}', "its field 'expires_at' is not an ISO-8601 time with a time zone"),
    ('{"holder": "b", "host": "h", "pid": 1e3, "command": "c", "run_id": "r", "acquired_at": "2026-01-01T00:00:00Z", '
     '"expires_at": "2026-01-01T00:00:00Z"}', "its field 'pid' is a number, not a whole number"),
    ('{"holder": "b", "host": "h", "pid": -1, "command": "c", "run_id": "r", "acquired_at": "2026-01-01T00:00:00Z", '
     '"expires_at": "2026-01-01T00:00:00Z"}', "its field 'pid' is not a process id"),
])
def test_an_unreadable_lock_is_an_expired_lock_that_says_why(text, why):
    lock = state.parse_lock(Param(PLAN.lock_parameter, text, 1))
    clock = FakeClock()
    assert isinstance(lock, state.UnreadableLock) and lock.expired(clock.now()) and not lock.holder_gone()
    assert lock.describe(clock.now()).startswith(f"an unreadable lock record ({why}")
    store = FakeParameterStore()
    store.put(PLAN.lock_parameter, text)
    assert acquire(store, clock).taken_over.problem == lock.problem  # taken over, not blocking anyone


def test_record_round_trip_and_size_limit():
    rec = state.StateRecord(phase="canary", reason="x" * 5000, actor="arn:aws:iam::1:user/a")
    text = rec.to_json()
    assert len(text) <= state.MAX_RECORD_BYTES
    assert state.StateRecord.from_json(text).phase == "canary"


def test_write_reads_back_and_history_lists_versions():
    store, clock = FakeParameterStore(), FakeClock()
    s = state.StateStore(PLAN, store)
    s.write(state.StateRecord(phase="shadow"), clock)
    s.write(state.StateRecord(phase="canary"), clock)
    assert [r[2].phase for r in s.history()] == ["shadow", "canary"]
    assert s.read().phase == "canary"


def acquire(store, clock, run_id="r1", holder="alice"):
    return state.acquire(PLAN, store, clock, holder=holder, command="advance", run_id=run_id)


def test_second_acquire_is_blocked_naming_the_holder():
    store, clock = FakeParameterStore(), FakeClock()
    acquire(store, clock)
    with pytest.raises(Blocked) as err:
        acquire(store, clock, "r2", "bob")
    assert "alice" in err.value.message and socket.gethostname() in err.value.message
    assert "unlock --force" in err.value.hint


def test_expired_lease_is_taken_over():
    store, clock = FakeParameterStore(), FakeClock()
    acquire(store, clock)
    clock.advance(901)
    lease = acquire(store, clock, "r2", "bob")
    assert lease.taken_over.holder == "alice"
    assert state.read_lock(PLAN, store).run_id == "r2"


def test_lock_of_a_dead_process_on_this_host_is_taken_over():
    store, clock = FakeParameterStore(), FakeClock()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease = acquire(store, clock)
    lease.record.pid = dead.pid
    store.put(PLAN.lock_parameter, lease.record.to_json())
    assert acquire(store, clock, "r2", "bob").taken_over.pid == dead.pid


def test_release_only_deletes_our_own_lock():
    store, clock = FakeParameterStore(), FakeClock()
    mine = acquire(store, clock)
    clock.advance(901)
    acquire(store, clock, "r2", "bob")
    mine.release()
    assert state.read_lock(PLAN, store).run_id == "r2"


def test_lease_renews_and_notices_it_was_taken():
    store, clock = FakeParameterStore(), FakeClock()
    lease = acquire(store, clock)
    clock.advance(600)
    lease.renew_if_due()
    assert state.parse_iso(state.read_lock(PLAN, store).expires_at) > clock.now()
    store.delete(PLAN.lock_parameter)
    clock.advance(600)
    with pytest.raises(Blocked):
        lease.renew_if_due()
