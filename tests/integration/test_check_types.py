"""A new check type is one module and one line in `cutover.checks.TYPES`: a toy type, written here in
full, is picked up by the plan schema, the loader (its own rules included), the gate runner, the runbook
(its words and its prerequisites), the IAM policy and the sandbox's seeding, with nothing else changed. The last test seeds the emulator
(moto over HTTP); the others are pure."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

import pytest

from cutover import checks
from cutover.checks.interface import CheckType, Fail, Need, Nodes, Problem, fragment, ref, text
from cutover.checks.words import code
from cutover.compile import iam, runbook
from cutover.errors import PlanError
from cutover.gates import GateContext, run_check, run_gates
from cutover.plan.load import parse_plan, plan_schema
from cutover.ports import AwsPorts

# --- the toy type: one "file" ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TicketCheck:
    name: str
    ticket: str
    valid: tuple[float, float] | None = None  # (opens after approval, stays open for), in seconds
    timeout: float = 10.0
    type: str = "ticket"


class Ticket(CheckType):
    """The change ticket named in the plan is the one the operator's shell says is approved."""

    kind = "ticket"
    model = TicketCheck
    schema = fragment("ticket", "ticket check",
                      {"ticket": text(pattern=r"^[A-Z]+-[0-9]+$", description="a ticket id such as CHG-42"),
                       "valid": {"type": "object", "additionalProperties": False, "required": ["from", "for"],
                                 "properties": {"from": ref("duration"), "for": ref("positive_duration")}}},
                      ["ticket"], "10s")

    def value(self, key: str, node: Any, read: Nodes) -> Any:
        """`valid:` is a nested object: the loader's readers turn it into seconds."""
        if key == "valid":
            f = read.fields(node)
            return read.seconds(f["from"][1]), read.seconds(f["for"][1])
        return None

    def problems(self, check: TicketCheck, fields: dict) -> Iterator[Problem]:
        if check.ticket.startswith("TEST-"):
            yield fields["ticket"][1], ("ticket",), "a TEST- ticket approves nothing", "name the real change ticket"
        if check.valid is not None and check.valid[1] > 86400:
            [node] = [v for k, v in fields["valid"][1].value if k.value == "for"]
            yield node, ("valid", "for"), "a ticket stays valid for a day at most", "ask for a new ticket each day"

    def run(self, check: TicketCheck, ctx) -> str:
        if ctx.env.get("APPROVED_TICKET") != check.ticket:
            raise Fail(f"{check.ticket} is not approved here", f"export APPROVED_TICKET={check.ticket}")
        return f"{check.ticket} approved"

    def describe(self, check: TicketCheck) -> str:
        return f"change ticket {code(check.ticket)} is approved"

    def iam(self, check: TicketCheck, arn, read_only: bool) -> list[dict]:
        return [iam.statement("ReadChangeTickets", ["ssm:GetParameter"], [arn.parameter("/tickets/*")])]

    def needs(self, check: TicketCheck) -> Iterator[Need]:
        yield Need("env", ("APPROVED_TICKET", check.ticket))
        yield Need("log_group", "/tickets/audit")

    def seed(self, plan, seeder, now) -> list[str]:
        for check in self.checks_in(plan):
            seeder.put_parameter(f"/tickets/{check.ticket}", "approved")
        return []


@pytest.fixture
def with_ticket(monkeypatch):
    """The one line: the type added to the list."""
    monkeypatch.setattr(checks, "TYPES", [*checks.TYPES, Ticket()])


PLAN = """\
version: 1
name: toy
region: eu-west-1
flags:
  kill_switch:
    parameter: /app/kill_switch
    rollback: "off"
checks:
  approved:
CHECK
phases:
  - name: live
    set:
      kill_switch: "on"
    gates: [approved]
"""


def toy_plan(ticket: str = "CHG-42", check: str = "    type: ticket\n    ticket: TICKET"):
    return parse_plan(PLAN.replace("CHECK", check.replace("TICKET", ticket)), "toy.yaml")


def context(env: dict[str, str]) -> GateContext:
    no_aws = AwsPorts(params=None, alarms=None, secrets=None, logs=None, identity=None)  # the toy calls none
    return GateContext(aws=no_aws, env=env)


# --- the tests ---------------------------------------------------------------------------------------------


def test_without_the_line_the_plan_refuses_the_type():
    with pytest.raises(PlanError) as err:
        toy_plan()
    assert err.value.line == 10 and "'ticket' is not allowed" in str(err.value)


def test_the_schema_lists_the_type_and_its_fragment(with_ticket):
    schema = plan_schema()
    assert "ticket" in schema["$defs"]["check"]["properties"]["type"]["enum"]
    assert schema["$defs"]["ticket_check"] == Ticket.schema
    assert list(schema["$defs"]).index("ticket_check") > list(schema["$defs"]).index("logs_query_check")


def test_the_loader_builds_the_model_and_reports_its_rules_with_a_line(with_ticket):
    assert toy_plan().checks["approved"] == TicketCheck("approved", "CHG-42")
    with pytest.raises(PlanError) as bad:  # the fragment's pattern, through the schema walker
        toy_plan("chg 42")
    assert (bad.value.line, bad.value.col) == (11, 13)
    with pytest.raises(PlanError) as rule:  # the type's own rule
        toy_plan("TEST-1")
    assert (rule.value.line, rule.value.col) == (11, 13)
    assert "checks.approved.ticket: a TEST- ticket approves nothing" in str(rule.value)


def test_the_type_reads_its_nested_keys_and_rules_point_into_them(with_ticket):
    """The `value` hook: a nested object read with the loader's node readers (durations, integers as
    seconds); a rule on it reports the nested node's own line and column."""
    check = "    type: ticket\n    ticket: CHG-42\n    valid: {from: 1h, for: VALID}"
    assert toy_plan(check=check.replace("VALID", "7200")).checks["approved"].valid == (3600.0, 7200.0)
    with pytest.raises(PlanError) as rule:
        toy_plan(check=check.replace("VALID", "2d"))
    assert (rule.value.line, rule.value.col) == (12, 28)
    assert "checks.approved.valid.for: a ticket stays valid for a day at most" in str(rule.value)
    with pytest.raises(PlanError) as bad:  # the fragment's shape, through the schema walker, before the hook
        toy_plan(check=check.replace("VALID", "soon"))
    assert (bad.value.line, bad.value.col) == (12, 28)


def test_the_runner_runs_it(with_ticket):
    check = toy_plan().checks["approved"]
    assert run_check(check, context({"APPROVED_TICKET": "CHG-42"})).status == "PASS"
    failed = run_check(check, context({}))
    assert (failed.status, failed.detail) == ("FAIL", "CHG-42 is not approved here")
    [result] = run_gates(toy_plan(), "live", context({"APPROVED_TICKET": "CHG-42"}))
    assert (result.status, result.detail) == ("PASS", "CHG-42 approved")


def test_the_runbook_describes_it(with_ticket):
    assert "- `approved` (ticket): change ticket `CHG-42` is approved" in runbook.render(toy_plan()).splitlines()


def test_the_runbook_lists_what_it_needs_before_you_start(with_ticket):
    """`needs`: the operator's shell variable and the log group, in "Before you start" and the inventory."""
    text = runbook.render(toy_plan())
    before = text[text.index("## Before you start"):].split("\n## ", 1)[0].splitlines()
    assert "  - `APPROVED_TICKET=CHG-42`" in before
    assert "- **Log groups** (CloudWatch Logs): `/tickets/audit`" in before
    assert iam.inventory(toy_plan()).log_groups == ("/tickets/audit",)


def test_the_iam_policy_grants_its_calls(with_ticket):
    for read_only in (False, True):
        doc = iam.policy(toy_plan(), "123456789012", read_only=read_only)
        [stmt] = [s for s in doc["Statement"] if s["Sid"] == "ReadChangeTickets"]
        assert stmt["Resource"] == ["arn:aws:ssm:eu-west-1:123456789012:parameter/tickets/*"]
    without = toy_plan(check="    type: env\n    present: [X]")
    assert "ReadChangeTickets" not in json.dumps(iam.policy(without))


def test_the_sandbox_seeds_it(with_ticket, aws_env, emulator):
    from cutover.adapters.aws import make_ports
    from cutover.sandbox.emulator import seed

    seed(toy_plan(), emulator)
    params = make_ports("eu-west-1", None, read_only=True).params.get_many(["/tickets/CHG-42"])
    assert params["/tickets/CHG-42"].value == "approved"


def test_loading_a_plan_loads_no_gate_machinery():
    """Every type's module is imported with the plan loader (the schema needs its fragment), so a gate's
    machinery is imported only when it runs: `validate` and a rollback do not pay for it."""
    import subprocess
    import sys

    code = ("import sys, cutover.plan.load; "
            "print(sorted({'subprocess', 'zoneinfo', 'urllib.request', 'http.client', 'cutover.gates'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_need_of_a_kind_nobody_reads_is_refused():
    """A misspelt need would otherwise drop out of the IAM inventory and the runbook without a word."""
    with pytest.raises(ValueError, match="unknown need 'alarms'"):
        Need("alarms", "rp-worker-errors")
