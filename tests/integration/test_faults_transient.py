"""Throttling, transient faults, lost responses and stale reads, injected by the fault proxy between
the real boto3 client and the emulator. The rule: a command either completes with every flag
verified, or fails (exit 4, or a fail-closed gate: exit 1) naming exactly which flags are confirmed
and which are not. No silent loss, ever."""

import re

import pytest

from cutover.commands import orchestrator
from cutover.errors import CutoverError, ExitCode
from cutover.testing.faultproxy import Faults

SEEDS = range(10)
SSM_CALLS = {"PutParameter", "GetParameters", "DeleteParameter"}
RANDOM = "throttling, 5xx, dropped connections, lost responses (random share of SSM calls)"
RANDOM_HOW = ("fault proxy, seeded: write quota 3/s; of SSM calls 5% HTTP 500, 10% ThrottlingException, 5% dropped "
              "connections, 15% of writes applied with their response lost; 3 commands per seed")


def attempt(fn):
    try:
        out = fn()
        return out.exit_code, out.headline
    except CutoverError as err:
        return err.exit_code, err.message


def claims(message):
    """The flags an exit-4 message says are confirmed / not confirmed."""
    done = re.search(r"confirmed: ([^;]*)(;|$)", message)
    todo = re.search(r"not confirmed: (.*)$", message)
    split = lambda m: [] if not m or m.group(1).strip() == "none" else [x.strip() for x in m.group(1).split(",")]  # noqa: E731
    return split(done), split(todo)


def check_honest(e2e, code, message, target):
    live = e2e.live()
    want = e2e.plan.values_for(target)
    if code == ExitCode.OK:
        assert live == want, message
    elif code == ExitCode.INCOMPLETE and "not confirmed" in message:
        done, todo = claims(message)
        assert all(live[f] == want[f] for f in done), (message, live)
        assert set(done) | set(todo) <= set(want)
    else:
        # Any other failure happened before a flag write: gates fail closed, AWS errors stop early.
        assert code in (ExitCode.GATE_FAILED, ExitCode.BLOCKED, ExitCode.INCOMPLETE), message


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_on_ssm_calls(seed, e2e, fault_proxy, monkeypatch, reliability):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's back-off sleeps for real; ours is on the test clock
    fault_proxy.reconfigure(Faults(seed=seed, write_quota=3, error_rate=0.05, throttle_rate=0.1, drop_rate=0.05,
                                   lost_response_rate=0.15, only_operations=SSM_CALLS))
    with reliability.case(RANDOM, RANDOM_HOW):
        for command in ("advance", "advance", "rollback"):
            view = e2e.state()
            if command == "advance":
                target = e2e.plan.next_phase(view.phase).name if not view.problem else None
                code, msg = attempt(lambda: orchestrator.advance(e2e(), approve=True, reason="test"))
            else:
                target = "rolled_back"
                code, msg = attempt(lambda: orchestrator.rollback(e2e()))
            if target:
                check_honest(e2e, code, msg, target)
        # Whatever happened, a fault-free rollback restores every flag.
        fault_proxy.reconfigure(Faults())
        assert attempt(lambda: orchestrator.rollback(e2e()))[0] == 0
        assert e2e.live() == e2e.plan.rollback_values()
        assert sum(fault_proxy.injected.values()) > 0


def test_write_quota_is_respected_without_failures(e2e, fault_proxy, reliability):
    """Writes paced to write_rate never exceed the quota; a tighter quota is ridden out by backing off."""
    fault_proxy.reconfigure(Faults(write_quota=2))  # tighter than the plan's write_rate of 10/s
    with reliability.case("write quota tighter than write_rate", "fault proxy: at most 2 PutParameter in any second"):
        for _ in range(2):
            assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0
        assert orchestrator.rollback(e2e()).exit_code == 0
        assert e2e.live() == e2e.plan.rollback_values()
        assert fault_proxy.injected["quota"] > 0  # the quota did bite, and nothing was lost


def test_applied_writes_whose_response_is_lost_are_not_failures(e2e, fault_proxy, monkeypatch, reliability):
    """Every write reaches SSM but the client never sees a response (all retries too): read-back
    recognises each one, and no flag ever holds any value but its old or its target."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    fault_proxy.reconfigure(Faults(lost_response_rate=1.0, only_operations={"PutParameter"}))
    out = orchestrator.advance(e2e(), approve=True, reason="test")
    assert out.exit_code == 0 and e2e.live() == e2e.plan.values_for("shadow")
    from cutover.adapters.aws import SsmParameterStore, Clients, make_session

    direct = SsmParameterStore(Clients(make_session("us-east-2", None, True), endpoint_url=fault_proxy.upstream.geturl()))
    for flag in e2e.plan.ssm_flags:
        values = {v.value for v in direct.history(flag.parameter)}
        assert values <= {flag.rollback, e2e.plan.values_for("shadow")[flag.name]}
    reliability.record("write applied but response lost", "fault proxy applies every PutParameter, then drops the connection", True)


def test_stale_reads_are_waited_out(e2e, fault_proxy, reliability):
    fault_proxy.reconfigure(Faults(stale_reads=3))
    for _ in e2e.plan.phases:
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0
    assert e2e.live() == e2e.plan.values_for("full")
    assert fault_proxy.injected["stale_read"] > 0
    reliability.record("stale reads (bounded)", "fault proxy serves the previous value for the next 3 reads of a written parameter", True)


def test_endless_stale_reads_end_in_exit_4_naming_unconfirmed_flags(e2e, fault_proxy, reliability):
    fault_proxy.reconfigure(Faults(stale_reads=10_000))
    code, msg = attempt(lambda: orchestrator.advance(e2e(), approve=True, reason="test"))
    assert code == ExitCode.INCOMPLETE
    assert "could not be confirmed" in msg or "not confirmed" in msg
    fault_proxy.reconfigure(Faults())
    assert orchestrator.rollback(e2e()).exit_code == 0 and e2e.live() == e2e.plan.rollback_values()
    reliability.record("stale reads (forever)", "fault proxy never serves the new value", True)


def test_denied_write_stops_before_any_flag_and_names_the_permission(e2e, fault_proxy, reliability):
    fault_proxy.reconfigure(Faults(deny={"PutParameter"}))
    code, msg = attempt(lambda: orchestrator.advance(e2e(), approve=True, reason="test"))
    assert code == ExitCode.INCOMPLETE and "ssm:PutParameter" in msg
    assert e2e.live() == e2e.plan.rollback_values()
    reliability.record("permission denied", "fault proxy answers AccessDeniedException", True)


def test_denied_secret_read_fails_the_gate_closed(e2e, fault_proxy, reliability):
    fault_proxy.reconfigure(Faults(deny={"GetSecretValue"}))
    out = orchestrator.advance(e2e(), approve=True, reason="test")
    assert out.exit_code == ExitCode.GATE_FAILED and "secrets_ok" in out.headline
    assert e2e.live() == e2e.plan.rollback_values()
    assert e2e.state().record is None
    reliability.record("permission denied", "fault proxy answers AccessDeniedException", True)


def test_missing_credentials_stop_with_a_clear_message(e2e, monkeypatch, tmp_path, reliability):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    code, msg = attempt(lambda: orchestrator.advance(e2e(), approve=True, reason="test"))
    assert code in (ExitCode.INCOMPLETE, ExitCode.GATE_FAILED) and "credential" in msg.lower()
    reliability.record("credentials missing", "no AWS credentials in the environment", True)
