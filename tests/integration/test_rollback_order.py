"""A full rollback writes the kill switch first: its first AWS write is the first flag to restore in
plan order, sent before anything that is not needed to know it must be written (STS, the state
marker). Traced through botocore's own call events and the fault proxy's log of applied writes."""


from cutover.commands import orchestrator
from cutover.core import state
from cutover.testing.counter import CallCounter
from cutover.adapters.aws import iam_action


class CallLog(CallCounter):
    """A CallCounter that also keeps the order of the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []

    def _on_call(self, model, **kw) -> None:
        super()._on_call(model, **kw)
        self.order.append(iam_action(model))


def advance_to(e2e, phase):
    while e2e.state().phase != phase:
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0


def test_the_first_write_of_a_rollback_is_the_kill_switch_before_any_sts_call(e2e, fault_proxy):
    advance_to(e2e, "canary")
    start = len(fault_proxy.write_log)
    log = CallLog()
    out = orchestrator.rollback(e2e(counter=log, assume_yes=True), reason="incident")  # as `--yes`
    assert out.exit_code == 0, out.headline
    writes = [name for _, op, name in fault_proxy.write_log[start:] if op == "PutParameter"]
    assert writes[0] == "/e2e/kill", writes  # the plan's first flag
    assert writes[1] == e2e.plan.state_parameter  # the marker, in the next write slot
    first_put = log.order.index("ssm:PutParameter")
    # One read (the state record, the lock and the first SSM flags) before the kill switch; the Lambda
    # function is read after it, before the marker's write.
    assert log.order[:first_put] == ["ssm:GetParameters"], log.order
    second_put = log.order.index("ssm:PutParameter", first_put + 1)
    assert "lambda:GetFunctionConfiguration" in log.order[first_put:second_put], log.order
    view = e2e.state()
    assert (view.phase, view.status) == ("rolled_back", state.STABLE)
    assert e2e.live() == e2e.plan.rollback_values()
    flags = [c["flag"] for c in out.data["changes"]]
    assert flags == ["kill", "outbound", "mode", "allow", "cohort"], out.data["changes"]  # every change, reported


def test_a_kill_switch_already_safe_means_every_flag_is_read_first(e2e, fault_proxy):
    advance_to(e2e, "canary")
    e2e.set_flags({"kill": "off"})
    log = CallLog()
    out = orchestrator.rollback(e2e(counter=log, assume_yes=True), reason="incident")
    assert out.exit_code == 0, out.headline
    first_put = log.order.index("ssm:PutParameter")
    assert "lambda:GetFunctionConfiguration" in log.order[:first_put], log.order  # the full read, as before
    assert "kill" not in [c["flag"] for c in out.data["changes"]]
    assert e2e.live() == e2e.plan.rollback_values()


def test_without_yes_every_flag_is_read_before_the_confirmation(e2e, fault_proxy):
    advance_to(e2e, "canary")
    log = CallLog()
    asked: list[str] = []
    out = orchestrator.rollback(e2e(counter=log, confirm=lambda text: asked.append(text) or True), reason="incident")
    assert out.exit_code == 0, out.headline
    assert "outbound" in asked[0] and "mode" in asked[0]  # the confirmation shows every change
    first_put = log.order.index("ssm:PutParameter")
    assert "lambda:GetFunctionConfiguration" in log.order[:first_put], log.order


def test_a_read_failing_after_the_kill_switch_ends_incomplete_naming_it(e2e, fault_proxy):
    from cutover.errors import Incomplete
    from cutover.testing.faultproxy import Faults

    advance_to(e2e, "canary")

    def deny_reads_once_the_kill_switch_lands(operation, name, value):
        if name == "/e2e/kill":
            fault_proxy.faults.deny = {"GetParameters"}

    fault_proxy.reconfigure(Faults(after_write=deny_reads_once_the_kill_switch_lands))
    try:
        orchestrator.rollback(e2e(assume_yes=True), reason="incident")
    except Incomplete as err:
        assert err.exit_code == 4
        assert "reading the flags after the kill switch failed" in err.message and "written: kill" in err.message, err.message
    else:
        raise AssertionError("a rollback that could not read its flags must not report success")
    live = e2e.live()
    assert live["kill"] == "off"  # the kill switch is restored all the same
    assert live["mode"] != "safe"  # the flags after it were not known, so not written
