"""Approvals (reason required, approver patterns, four eyes) and SNS notifications, on the emulator."""

import dataclasses

import boto3
import pytest

from cutover.commands import orchestrator
from cutover.core import state
from cutover.commands import watch
from cutover.errors import Blocked

MOTO = "arn:aws:sts::123456789012:user/moto"  # who the emulator says we are


def with_canary(e2e, **changes):
    phases = tuple(dataclasses.replace(p, **changes) if p.name == "canary" else p for p in e2e.plan.phases)
    return dataclasses.replace(e2e.plan, phases=phases)


def test_approval_needs_approve_and_a_reason(e2e):
    assert orchestrator.advance(e2e()).exit_code == 0
    for kw in ({}, {"approve": True}, {"approve": True, "reason": "  "}):
        with pytest.raises(Blocked) as err:
            orchestrator.advance(e2e(), **kw)
        assert "--approve and --reason" in err.value.message
    assert e2e.live() == e2e.plan.values_for("shadow")


def test_approvers_restrict_who_may_approve(e2e):
    assert orchestrator.advance(e2e()).exit_code == 0
    strict = with_canary(e2e, approvers=("arn:aws:sts::123456789012:assumed-role/release-managers/*",))
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(plan=strict), approve=True, reason="go")
    assert f"{MOTO} may not approve" in err.value.message and "release-managers" in err.value.hint
    allowed = with_canary(e2e, approvers=("arn:aws:sts::123456789012:assumed-role/release-managers/*", "arn:aws:sts::*:user/*"))
    out = orchestrator.advance(e2e(plan=allowed), approve=True, reason="CHG-42")
    assert out.exit_code == 0 and f"approved by {MOTO}: CHG-42" in out.data["notes"]
    assert e2e.state().record.approved_by == MOTO  # recorded in the state history too


def test_four_eyes_the_approver_is_not_who_entered_the_previous_phase(e2e):
    four_eyes = with_canary(e2e, separate_approver=True)
    assert orchestrator.advance(e2e(plan=four_eyes)).exit_code == 0  # moto entered shadow
    with pytest.raises(Blocked) as err:
        orchestrator.advance(e2e(plan=four_eyes), approve=True, reason="go")
    assert "four eyes" in err.value.message
    # Shadow entered by someone else: moto may approve.
    params = e2e().aws.params
    rec = e2e.state().record
    rec.actor = "arn:aws:sts::123456789012:assumed-role/release/bob"
    state.StateStore(e2e.plan, params).write(rec, e2e.clock)
    assert orchestrator.advance(e2e(plan=four_eyes), approve=True, reason="go").exit_code == 0


def sent(topic_arn):
    from moto.sns.models import sns_backends

    return [n[1] for n in sns_backends["123456789012"]["us-east-2"].topics[topic_arn].sent_notifications]


@pytest.fixture
def topic(aws_env):
    sns = boto3.client("sns", region_name="us-east-2", endpoint_url=aws_env["AWS_ENDPOINT_URL"])
    return sns.create_topic(Name="cutover-e2e")["TopicArn"]


def test_every_state_change_and_rollback_is_notified_pii_safe(e2e, topic):
    plan = dataclasses.replace(e2e.plan, notify_topic=topic)
    assert orchestrator.advance(e2e(plan=plan), reason="ticket from jane@example.com").exit_code == 0
    assert orchestrator.advance(e2e(plan=plan), approve=True, reason="go").exit_code == 0
    assert orchestrator.rollback(e2e(plan=plan), reason="incident").exit_code == 0
    messages = sent(topic)
    assert len(messages) == 3
    assert "pending -> shadow" in messages[0] and "jane@example.com" not in messages[0]
    assert f"approved by {MOTO}" in messages[1]
    assert "ROLLBACK canary -> rolled_back" not in messages[2]  # the subject carries it; the body says how
    assert "5 flag(s) restored and confirmed" in messages[2]
    assert all("canary@example.com" not in m for m in messages)
    assert orchestrator.advance(e2e(plan=plan, dry_run=True)).exit_code == 0 and len(sent(topic)) == 3  # dry runs say nothing


def test_a_failed_notification_never_blocks_a_rollback(e2e):
    missing = dataclasses.replace(e2e.plan, notify_topic="arn:aws:sns:us-east-2:123456789012:no-such-topic")
    assert orchestrator.advance(e2e()).exit_code == 0
    out = orchestrator.rollback(e2e(plan=missing), reason="incident")
    assert out.exit_code == 0 and e2e.live() == e2e.plan.rollback_values()
    assert any("notification to arn:aws:sns:us-east-2:123456789012:no-such-topic failed" in n for n in out.data["notes"])


def test_plan_auto_rollback_makes_watch_roll_back_on_its_own(e2e, emulator, topic):
    from datetime import datetime, timezone

    from cutover.testing.clock import FakeClock

    shadow = dataclasses.replace(e2e.plan.phases[0], bake=600, auto_rollback=True)
    plan = dataclasses.replace(e2e.plan, phases=(shadow, *e2e.plan.phases[1:]), notify_topic=topic)
    from cutover.adapters.aws import GuardResources

    clock = FakeClock(datetime.now(timezone.utc))
    # An auto_rollback phase arms the guard on entry, so this advance needs the guard's resources.
    guard = lambda: GuardResources.connect("us-east-2", None, read_only=False)  # noqa: E731
    from tests.guardkit import bootstrap_roles

    bootstrap_roles(plan)  # an admin's one-time step: the guard's roles
    assert orchestrator.advance(e2e(plan=plan, clock=clock, guard_store=guard)).exit_code == 0
    emulator.seeder("us-east-2").set_alarm_state("e2e-errors", "ALARM")
    out = watch.watch(e2e(plan=plan, clock=clock), False, 60, lambda p: None)
    assert out.exit_code == 6 and e2e.live() == plan.rollback_values()
    assert "auto-rollback by watch" in sent(topic)[-1]


@pytest.mark.parametrize("snippet,line,words", [
    ("    approvers: [release-manager]\n", 14, "approvers[0]: 'release-manager' is not valid"),
    ("    separate_approver: sometimes\n", 14, "separate_approver"),
])
def test_approval_keys_are_validated_with_line_numbers(snippet, line, words):
    from cutover.errors import PlanError
    from cutover.plan.load import parse_plan

    text = ("version: 1\nname: t\nregion: us-east-2\nflags:\n  a: {parameter: /a, rollback: \"off\"}\n"
            "checks:\n  q: {type: alarms, names: [x]}\nphases:\n  - name: one\n    gates: [q]\n"
            "  - name: two\n    set: {a: \"on\"}\n    approval: true\n" + snippet)
    with pytest.raises(PlanError) as err:
        parse_plan(text, "p.yaml")
    assert err.value.line == line and words in err.value.message


def test_notify_topic_must_be_an_sns_arn():
    from cutover.errors import PlanError
    from cutover.plan.load import parse_plan

    text = ("version: 1\nname: t\nregion: us-east-2\nnotify: {sns_topic_arn: my-topic}\n"
            "flags:\n  a: {parameter: /a, rollback: \"off\"}\nphases:\n  - name: one\n")
    with pytest.raises(PlanError) as err:
        parse_plan(text, "p.yaml")
    assert err.value.line == 4 and "sns_topic_arn" in err.value.message and "SNS topic ARN" in err.value.hint
