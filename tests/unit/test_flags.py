"""The converging flag engine on an in-memory store: order, idempotence, pacing, stale reads,
lost responses, throttling."""

import pytest

from cutover.testing.clock import FakeClock
from cutover.errors import AwsError, Incomplete
from cutover.core.flags import Converger, diff, read_live
from cutover.model.plan import Flag, Phase, Plan, SsmTarget
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


# --- a rollback's settle: flags someone else changed after our write are written again ---------------
class LateWrites(FakeParameterStore):
    """After each of our writes of `name`, someone else's write of `value` lands (a preempted run's
    in-flight write), `times` times in all."""

    def __init__(self, name, value, times=1):
        super().__init__()
        self.late = (name, value)
        self.times = times

    def put(self, name, value, **kw):
        version = super().put(name, value, **kw)
        if name == self.late[0] and self.times > 0:
            self.times -= 1
            super().put(name, self.late[1])
        return version


def test_a_rollback_writes_again_a_flag_overwritten_right_after_its_write():
    plan, clock = make_plan(), FakeClock()
    store = LateWrites("/app/f0", "on", times=0)
    for i in range(3):
        store.put(f"/app/f{i}", "on", secure=i == 2)
    store.times, store.calls = 1, []
    conv = Converger(plan, store, clock, keep_going=True)
    result = conv.restore(plan.rollback_values(), read_live(plan, store))
    assert store.value("/app/f0") == "off" and conv.rewrites == ["f0"]
    assert result.confirmed == ["f0", "f1", "f2"] and result.pending == []
    assert store.writes().count("/app/f0") == 3  # ours, the late one, ours again


def test_an_advance_stops_at_once_on_a_flag_overwritten_after_its_write():
    plan, clock = make_plan(n=1), FakeClock()
    store = LateWrites("/app/f0", "off")
    start = clock.monotonic()
    with pytest.raises(Incomplete) as err:
        converge(plan, store, clock, plan.values_for("one"))
    assert "changed by someone else right after this run wrote them: f0" in err.value.message
    assert clock.monotonic() - start < 1.0  # no waiting for a confirmation that cannot come


def test_a_flag_that_keeps_changing_ends_in_incomplete_after_bounded_rewrites():
    from cutover.core.flags import REWRITE_ROUNDS

    plan, clock = make_plan(n=1), FakeClock()
    store = LateWrites("/app/f0", "on", times=10_000)
    store.versions["/app/f0"] = [("on", "SecureString")]
    with pytest.raises(Incomplete) as err:
        Converger(plan, store, clock, keep_going=True).restore(plan.rollback_values(), read_live(plan, store))
    assert "flags kept changing while rolling back: f0" in err.value.message
    assert store.writes().count("/app/f0") == 2 * (1 + REWRITE_ROUNDS)  # ours and the late one, per round


def test_stale_reads_while_settling_are_waited_out_not_written_again():
    plan, clock = make_plan(), FakeClock()
    store = FakeParameterStore()
    for i in range(3):
        store.put(f"/app/f{i}", "on", secure=i == 2)
    store.stale_reads = 3
    conv = Converger(plan, store, clock, keep_going=True)
    conv.restore(plan.rollback_values(), read_live(plan, store))
    assert conv.rewrites == [] and len(store.writes()) == 6  # 3 set-ups, 3 rollback writes


def test_a_lambda_flag_overwritten_after_the_rollback_is_applied_again():
    from cutover.model.plan import LambdaTarget
    from tests.fakes import FakeFunctionStore

    flags = (Flag("kill", SsmTarget("/app/kill"), "off"), Flag("worker", LambdaTarget("fn", "WORKER_ON"), "false"))
    plan = Plan(name="t", region="us-east-2", state_prefix="/cutover/t", flags=flags, checks={},
                phases=(Phase("one", {"kill": "on", "worker": "true"}, ()),))
    store, clock = FakeParameterStore(), FakeClock()
    store.put("/app/kill", "on")
    functions = FakeFunctionStore({"fn": {"WORKER_ON": "true", "OTHER": "kept"}})
    real_get = functions.get

    def get(function):  # a preempted run's update lands right after the read that confirmed ours, once
        config = real_get(function)
        if config.variables["WORKER_ON"] == "false" and not functions.updates()[1:]:
            functions.set(function, {**functions.env[function], "WORKER_ON": "true"})
        return config

    functions.get = get
    conv = Converger(plan, store, clock, functions=functions, keep_going=True)
    conv.restore(plan.rollback_values(), read_live(plan, store, functions=functions, clock=clock))
    assert functions.env["fn"] == {"WORKER_ON": "false", "OTHER": "kept"} and conv.rewrites == ["worker"]
    assert len(functions.updates()) == 2


def test_a_write_sent_long_after_its_preemption_check_is_checked_again():
    """A throttled write retried after long back-offs is cleared again first: no write of a run is
    sent more than CHECK_VALID_FOR after the check that could have seen a rollback."""
    from cutover.core.flags import CHECK_VALID_FOR

    plan, store, clock = make_plan(n=1), FakeParameterStore(), FakeClock()
    checks, sends = [], []
    store.fail_puts = [AwsError("slow down", code="ThrottlingException", transient=True)] * 4  # back-offs 0.5+1+2+4 s
    real_put = store.put
    store.put = lambda *a, **kw: sends.append(clock.monotonic()) or real_put(*a, **kw)
    conv = Converger(plan, store, clock, before_write=lambda state_param: checks.append(clock.monotonic()))
    conv.run(diff(plan, plan.values_for("one"), read_live(plan, store)))
    assert len(sends) == 5 and store.value("/app/f0") == "on"
    assert len(checks) == 3  # the first check, then before each retry sent later than CHECK_VALID_FOR after it
    assert all(t - max(c for c in checks if c <= t) <= CHECK_VALID_FOR for t in sends)
