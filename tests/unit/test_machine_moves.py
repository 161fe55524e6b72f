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
