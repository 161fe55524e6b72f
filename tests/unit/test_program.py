"""The rollback program is the one source of a rollback's order and grouping: over generated plans (SSM
and Lambda flags mixed over a few functions, in any order, sensitive and secure ones), the converger's
writes, the guard document's steps and the runbook's manual steps are the same sequence."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.core import flags
from cutover.compile import guard
from cutover.model import program
from cutover.compile import runbook
from cutover.testing.clock import FakeClock
from cutover.plan.load import load_plan
from tests.fakes import FakeFunctionStore, FakeParameterStore

FUNCTIONS = ("fn-a", "fn-b", "fn-c")

flag_spec = st.fixed_dictionaries({
    "where": st.sampled_from(("ssm", *FUNCTIONS)),
    "sensitive": st.booleans(),
    "secure": st.booleans(),
})


def write_plan(folder: Path, specs: list[dict]):
    """A plan with one flag per spec, in that order, over one phase that sets every flag."""
    lines = ["version: 1", "name: prog", "region: us-east-2", "flags:"]
    for i, s in enumerate(specs):
        lines.append(f"  f{i:02d}:")
        if s["where"] == "ssm":
            lines.append(f"    parameter: /prog/f{i:02d}")
            lines += ["    secure: true"] if s["secure"] else []
        else:
            lines.append(f"    lambda: {{function: {s['where']}, variable: F{i:02d}}}")
        lines.append(f'    rollback: "off-{i}"')
        lines += ["    sensitive: true"] if s["sensitive"] else []
    lines += ["checks:", "  quiet: {type: alarms, prefix: prog-}", "phases:", "  - name: live",
              "    set: {" + ", ".join(f'f{i:02d}: "on-{i}"' for i in range(len(specs))) + "}", "    gates: [quiet]"]
    path = folder / "prog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return load_plan(str(path))


def converger_writes(plan) -> list[tuple[str, str]]:
    """What `Converger.restore` writes, in order, every flag off target (at its phase value)."""
    live_values = plan.values_for("live")
    store = FakeParameterStore()
    for f in plan.ssm_flags:
        store.put(f.parameter, live_values[f.name], secure=f.secure)
    functions = FakeFunctionStore({fn: {f.target.variable: live_values[f.name] for f in plan.flags
                                        if f.kind == "lambda" and f.target.function == fn} for fn in plan.functions})
    store.calls.clear()
    sent: list[tuple[str, str]] = []
    converger = flags.Converger(plan, store, FakeClock(), functions=functions, keep_going=True,
                                on_event=lambda event, c: sent.append((c.flag.key, c.new)) if event == "written" else None)
    converger.restore(plan.rollback_values(), flags.read_live(plan, store, functions=functions))
    # The fakes saw the same writes, in the same order: one PutParameter per SSM flag, one update per function.
    by_call = [name for op, name in store.calls if op == "PutParameter"]
    assert by_call == [k for k, _ in sent if k.startswith("/")]
    assert functions.updates() == list(dict.fromkeys(k.split(":")[1].split("/")[0] for k, _ in sent if k.startswith("lambda:")))
    return sent


def document_writes(plan) -> list[tuple[str, str]]:
    writes = guard.document_writes(guard.build_document(plan, "123456789012"))
    assert writes[-1]["parameter"] == plan.state_parameter  # the last step records the state
    return [(w["key"], w["value"]) for w in writes[:-1]]


def runbook_writes(plan) -> list[tuple[str, str]]:
    """The runbook's manual steps (the structure it renders from), and the rendered text names each
    target in that order."""
    out = []
    for kind, step_flags in runbook.manual_steps(plan):
        assert kind == ("lambda" if step_flags[0].kind == "lambda" else "ssm")
        out += [(f.key, plan.rollback_values()[f.name]) for f in step_flags]
    manual = runbook.render(plan).split("### If `cutover` itself cannot run", 1)[1]
    places, start = [], 0
    for kind, step_flags in runbook.manual_steps(plan):
        needle = (f"--name {step_flags[0].parameter} " if kind == "ssm"
                  else f"**Step {len(places) + 1}: Lambda function `{step_flags[0].target.function_name}`**")
        places.append(manual.index(needle, start))
        start = places[-1] + 1
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=st.lists(flag_spec, min_size=1, max_size=9))
def test_converger_guard_and_runbook_run_the_same_program(specs):
    with tempfile.TemporaryDirectory() as folder:
        plan = write_plan(Path(folder), specs)
    want = program.writes(program.steps(plan))
    assert sorted(want) == sorted((f.key, plan.rollback_values()[f.name]) for f in plan.flags)  # every flag, once
    assert [k for k, _ in want if k.startswith("/")] == [f.parameter for f in plan.ssm_flags]  # SSM in plan order
    assert converger_writes(plan) == want
    assert document_writes(plan) == want
    assert runbook_writes(plan) == want


def test_a_lambda_function_is_one_step_at_its_first_flag(tmp_path):
    plan = write_plan(tmp_path, [{"where": "ssm", "sensitive": False, "secure": False},
                                 {"where": "fn-a", "sensitive": False, "secure": False},
                                 {"where": "ssm", "sensitive": True, "secure": True},
                                 {"where": "fn-a", "sensitive": True, "secure": False}])
    steps = program.steps(plan)
    assert [type(s).__name__ for s in steps] == ["SetParameter", "MergeEnvironment", "SetParameter"]
    assert steps[1].variables == {"F01": "off-1", "F03": "off-3"}
    assert json.dumps(program.writes(steps)) == json.dumps([["/prog/f00", "off-0"], ["lambda:fn-a/F01", "off-1"],
                                                            ["lambda:fn-a/F03", "off-3"], ["/prog/f02", "off-2"]])
