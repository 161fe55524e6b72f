"""Exit codes are defined once (`errors.ExitCode`); README, the runbook, evidence and `--help` render them."""

from __future__ import annotations

import textwrap
from pathlib import Path

from cutover.core import evidence
from cutover.compile import runbook
from cutover.cli.app import EPILOG
from cutover.errors import ExitCode
from cutover.plan.load import load_plan

REPO = Path(__file__).resolve().parents[2]


def test_the_codes_are_the_contracts():
    assert [(c.value, c.name) for c in ExitCode] == [(0, "OK"), (1, "GATE_FAILED"), (2, "USAGE"), (3, "BLOCKED"),
                                                     (4, "INCOMPLETE"), (5, "DRIFT"), (6, "ROLLED_BACK"),
                                                     (7, "CHANGES_PENDING")]
    assert f"{ExitCode.DRIFT}" == "5" and ExitCode(3) is ExitCode.BLOCKED  # prints and parses as a number


def test_readme_shows_the_table_the_enum_renders():
    readme = (REPO / "README.md").read_text()
    assert "\n".join(ExitCode.table()) in readme, "re-render README's exit-code table from cutover.errors.ExitCode"


def test_the_runbook_renders_the_same_table():
    plan = load_plan(str(REPO / "phases.yaml"))
    assert "\n".join(ExitCode.table()) in runbook.render(plan)


def test_evidence_and_help_use_the_enum():
    assert evidence.OUTCOMES == {c.value: c.word for c in ExitCode}
    assert textwrap.fill(ExitCode.summary_line(), 88) in EPILOG
    assert all(f"{c.value} {c.summary}" in " ".join(EPILOG.split()) for c in ExitCode)
