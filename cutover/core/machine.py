"""The cutover state machine, built from a plan with `transitions`.

States: `pending`, one per phase, `rolled_back`. Triggers:
- `advance`: exactly one phase forward (from `pending` or `rolled_back` into Phase 0); its condition
  is the target phase's gates, evaluated by the callable the caller passes in.
- `rollback`: from every state to `rolled_back`.
- `rollback_to_<phase>`: from any later phase back to that phase.
`auto_transitions=False`: no other move is legal.
"""

from __future__ import annotations

import re
from typing import Callable

from cutover.model.plan import PENDING, ROLLED_BACK, Phase, Plan


class CutoverModel:
    """The object the machine drives. `gates_pass(phase)` decides whether an advance may happen."""

    def __init__(self, plan: Plan, state: str, gates_pass: Callable[[Phase], bool] | None = None) -> None:
        self.plan = plan
        self.state = state
        self._gates_pass = gates_pass or (lambda phase: True)
        self.entering: Phase | None = None
        self.machine = None  # the transitions Machine driving this model (set by build)

    def check_gates(self, event) -> bool:
        dest = event.transition.dest
        self.entering = self.plan.phase(dest)
        return self._gates_pass(self.entering)


def states(plan: Plan) -> list[str]:
    return [PENDING, *plan.phase_names, ROLLED_BACK]


def transition_table(plan: Plan) -> list[dict]:
    names = plan.phase_names
    table = [{"trigger": "advance", "source": PENDING, "dest": names[0], "conditions": "check_gates"},
             {"trigger": "advance", "source": ROLLED_BACK, "dest": names[0], "conditions": "check_gates"}]
    for here, there in zip(names, names[1:]):
        table.append({"trigger": "advance", "source": here, "dest": there, "conditions": "check_gates"})
    table.append({"trigger": "rollback", "source": "*", "dest": ROLLED_BACK})
    for i, name in enumerate(names):
        if names[i + 1 :]:
            table.append({"trigger": f"rollback_to_{name}", "source": list(names[i + 1 :]), "dest": name})
    return table


def build(plan: Plan, state: str, gates_pass: Callable[[Phase], bool] | None = None) -> CutoverModel:
    """A model at `state`, driven by a machine built from the plan."""
    from transitions import Machine  # imported here: `validate` and `--help` stay fast

    model = CutoverModel(plan, state, gates_pass)
    model.machine = Machine(
        model=model,
        states=states(plan),
        transitions=transition_table(plan),
        initial=state,
        auto_transitions=False,
        send_event=True,
        ignore_invalid_triggers=False,
    )
    return model


def allows(plan: Plan, state: str, trigger: str) -> bool:
    """Whether the plan's machine has the move `trigger` from `state` (e.g. `rollback_to_canary` from
    `full`): the one authority on legal moves. An unknown state has none."""
    if state not in states(plan):
        return False
    return trigger in build(plan, state).machine.get_triggers(state)


# Mermaid takes a state id as a plain word; other names (`canary-1`) and its own keywords (`note`) break
# the diagram, so they are declared under an alias: `state "canary-1" as s2`.
_PLAIN_ID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_MERMAID_WORDS = {"note", "state", "end", "direction", "class", "classdef", "click", "as", "style", "linkstyle"}


def _mermaid_ids(plan: Plan) -> dict[str, str]:
    return {s: s if _PLAIN_ID.fullmatch(s) and s.lower() not in _MERMAID_WORDS else f"s{i}"
            for i, s in enumerate(states(plan))}


def mermaid(plan: Plan) -> str:
    """A Mermaid state diagram drawn from the same transition table the machine uses."""
    ids = _mermaid_ids(plan)
    lines = ["stateDiagram-v2", *(f'    state "{s}" as {i}' for s, i in ids.items() if s != i), f"    [*] --> {ids[PENDING]}"]
    for t in transition_table(plan):
        sources = states(plan) if t["source"] == "*" else t["source"]
        for source in [sources] if isinstance(sources, str) else sources:
            if source == t["dest"]:
                continue
            label = "advance (gates)" if t["trigger"] == "advance" else t["trigger"].replace("_", " ")
            lines.append(f"    {ids[source]} --> {ids[t['dest']]}: {label}")
    return "\n".join(lines) + "\n"
