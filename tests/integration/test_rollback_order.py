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
    assert "sts:GetCallerIdentity" not in log.order[:first_put], log.order
    assert set(log.order[:first_put]) == {"ssm:GetParameters", "lambda:GetFunctionConfiguration"}, log.order
    view = e2e.state()
    assert (view.phase, view.status) == ("rolled_back", state.STABLE)
