"""The transitions machine is the one authority on moves: `rollback --to` asks it, it does not compare
phase indexes by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from cutover.core import machine
from cutover.model.plan import PENDING, ROLLED_BACK
from cutover.plan.load import load_plan

PLAN = load_plan(str(Path(__file__).resolve().parents[2] / "phases.yaml"))
NAMES = PLAN.phase_names


@pytest.mark.parametrize("state", [PENDING, *NAMES, ROLLED_BACK, "not-a-state"])
@pytest.mark.parametrize("to", NAMES)
def test_rollback_to_is_legal_only_to_an_earlier_phase(state, to):
    earlier = state in NAMES and NAMES.index(to) < NAMES.index(state)
    assert machine.allows(PLAN, state, f"rollback_to_{to}") is earlier


@pytest.mark.parametrize("state", [PENDING, *NAMES, ROLLED_BACK])
def test_a_full_rollback_is_legal_from_everywhere_and_advance_one_step(state):
    assert machine.allows(PLAN, state, "rollback")
    assert machine.allows(PLAN, state, "advance") is (state != NAMES[-1])


def test_the_diagram_aliases_names_mermaid_cannot_take_as_ids():
    import re

    from cutover.plan.load import parse_plan

    text = (Path(__file__).resolve().parents[1] / "plans" / "minimal.yaml").read_text()
    text = text.replace("  - name: live\n", "  - name: canary-1\n    set: {kill_switch: \"on\"}\n  - name: note\n"
                        "    set: {kill_switch: \"on\"}\n  - name: live\n")
    plan = parse_plan(text, "odd.yaml")
    assert plan.phase_names == ("canary-1", "note", "live")
    diagram = machine.mermaid(plan)
    assert 'state "canary-1" as s1' in diagram and 'state "note" as s2' in diagram
    edges = [line.split(":")[0].split("-->") for line in diagram.splitlines() if "-->" in line]
    ids = {part.strip() for edge in edges for part in edge}
    assert all(i == "[*]" or re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", i) for i in ids), ids
    assert ids >= {"s1", "s2", "live", "pending", "rolled_back"}
