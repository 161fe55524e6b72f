"""The converging flag engine on an in-memory store: order, idempotence, pacing, stale reads,
lost responses, throttling."""

import pytest

from cutover.clock import FakeClock
from cutover.errors import AwsError, Incomplete
from cutover.flags import Converger, diff, read_live
from cutover.model import Flag, Phase, Plan, SsmTarget
from tests.fakes import FakeParameterStore


def make_plan(n=3, rate=3.0):
    flags = tuple(Flag(f"f{i}", SsmTarget(f"/app/f{i}"), "off", secure=(i == n - 1), sensitive=(i == n - 1)) for i in range(n))
    phases = (Phase("one", {f"f{i}": "on" for i in range(n)}, ()),)
    return Plan(name="t", region="us-east-2", state_prefix="/cutover/t", flags=flags, checks={}, phases=phases, write_rate=rate)


def converge(plan, store, clock, target):
    changes = diff(plan, target, read_live(plan, store))
    return Converger(plan, store, clock).run(changes)


def test_writes_only_what_differs_in_plan_order_and_confirms():
    plan, store, clock = make_plan(), FakeParameterStore(), FakeClock()
    store.put("/app/f1", "on")
    store.calls.clear()
    result = converge(plan, store, clock, plan.values_for("one"))
    assert store.writes() == ["/app/f0", "/app/f2"]
    assert result.confirmed == ["f0", "f2"] and result.pending == []
    assert store.versions["/app/f2"][-1] == ("on", "SecureString")


def test_second_run_writes_nothing():
    plan, store, clock = make_plan(), FakeParameterStore(), FakeClock()
    converge(plan, store, clock, plan.values_for("one"))
    before = len(store.writes())
    result = converge(plan, store, clock, plan.values_for("one"))
    assert result.changes == [] and len(store.writes()) == before


def test_secure_flag_stored_as_plain_string_is_rewritten():
    plan, store, clock = make_plan(), FakeParameterStore(), FakeClock()
    for i in range(3):
        store.put(f"/app/f{i}", "off")  # f2 is secure but stored as String
    changes = diff(plan, plan.rollback_values(), read_live(plan, store))
    assert [c.name for c in changes] == ["f2"]


def test_writes_are_paced_to_the_write_rate():
    plan, store, clock = make_plan(n=7, rate=2.0), FakeParameterStore(), FakeClock()
    start = clock.monotonic()
    converge(plan, store, clock, plan.values_for("one"))
    # 7 writes at 2/s: the last starts 3 s after the first.
    assert clock.monotonic() - start >= 3.0


def test_stale_reads_are_waited_out_not_trusted():
    plan, store, clock = make_plan(), FakeParameterStore(), FakeClock()
    converge(plan, store, clock, plan.rollback_values())
    store.stale_reads = 3
    result = converge(plan, store, clock, plan.values_for("one"))
    assert result.pending == [] and all(store.value(f"/app/f{i}") == "on" for i in range(3))


def test_stale_reads_forever_end_in_incomplete_naming_flags():
    plan, store, clock = make_plan(n=2), FakeParameterStore(), FakeClock()
    converge(plan, store, clock, plan.rollback_values())
    store.stale_reads = 10_000
    with pytest.raises(Incomplete) as err:
        converge(plan, store, clock, plan.values_for("one"))
    assert "not confirmed: f0, f1" in err.value.message


def test_lost_response_is_recognised_on_read_back_and_not_rewritten():
    plan, store, clock = make_plan(n=1), FakeParameterStore(), FakeClock()
    store.lost_responses = 1
    result = converge(plan, store, clock, plan.values_for("one"))
    assert store.writes() == ["/app/f0"] and result.confirmed == ["f0"]


def test_throttling_backs_off_and_retries():
    plan, store, clock = make_plan(n=1), FakeParameterStore(), FakeClock()
    store.fail_puts = [AwsError("slow down", code="ThrottlingException", transient=True)] * 3
    result = converge(plan, store, clock, plan.values_for("one"))
    assert result.confirmed == ["f0"] and store.value("/app/f0") == "on"


def test_access_denied_stops_and_names_done_and_not_done():
    plan, store, clock = make_plan(n=3), FakeParameterStore(), FakeClock()
    changes = diff(plan, plan.values_for("one"), read_live(plan, store))
    conv = Converger(plan, store, clock)
    store.fail_puts = []
    orig_put = store.put

    def put(name, value, **kw):
        if name == "/app/f1":
            raise AwsError("AWS denied ssm:PutParameter", code="AccessDeniedException")
        return orig_put(name, value, **kw)

    store.put = put
    with pytest.raises(Incomplete) as err:
        conv.run(changes)
    assert "not confirmed: f1, f2" in err.value.message and store.value("/app/f2") is None
