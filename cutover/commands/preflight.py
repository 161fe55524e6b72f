"""`cutover preflight`: run one phase's gates and report, without writing anything to AWS."""

from __future__ import annotations

from pathlib import Path

from cutover import private
from cutover.core import evidence
from cutover.core import state
from cutover.errors import ExitCode, UsageError
from cutover.outcome import Outcome
from cutover.redact import REDACTOR
from cutover.commands.runtime import Runtime


def check_choices(plan, phase_name: str | None, skip: tuple[str, ...]) -> None:
    """UsageError for a --phase or --skip the plan does not have."""
    if phase_name is not None and phase_name not in plan.phase_names:
        raise UsageError(f"--phase {phase_name}: no such phase in {plan.path}", f"phases are: {', '.join(plan.phase_names)}")
    unknown = [s for s in skip if s not in plan.checks]
    if unknown:
        raise UsageError(f"--skip {unknown[0]}: no such check in {plan.path}", f"checks are: {', '.join(plan.checks)}")


def preflight(rt: Runtime, phase_name: str | None, skip: tuple[str, ...] = (), out_md: Path | None = None):
    from cutover.gates import run_gates

    plan = rt.plan
    if phase_name is None:
        view = state.StateStore(plan, rt.params).read()
        nxt = plan.next_phase(view.phase if not view.problem else "pending")
        if nxt is None:
            raise UsageError(f"no next phase: {view.phase} is the last one", "name one with --phase")
        phase_name = nxt.name
    check_choices(plan, phase_name, skip)

    report = rt.new_report("preflight")
    report.to_state = phase_name
    from cutover.commands import readiness

    results = run_gates(plan, phase_name, rt.gate_context(), skip=skip) + readiness.check(rt)
    report.gates = [r.to_dict() for r in results]
    # Skipped gates do not fail a diagnosis run, but the report says it is not valid for sign-off.
    ok = all(r.status != "FAIL" for r in results)
    report.overall_status = "PASS" if ok else "FAIL"
    lines = [f"{r.check} {r.status} {r.detail}" + (f"\n      next: {r.next_action}" if r.next_action and r.status != "PASS" else "")
             for r in results]
    skipped = [r.check for r in results if r.status == "SKIPPED"]  # --skip, and programs a dry run does not run
    if skipped:
        lines.append(f"NOT VALID FOR SIGN-OFF: skipped {', '.join(skipped)}")
        report.notes.append(f"skipped {', '.join(skipped)}: not valid for sign-off")
    lines.append(f"overall_status {report.overall_status}")
    outcome = Outcome(
        ExitCode.OK if ok else ExitCode.GATE_FAILED,
        f"preflight for {phase_name}: {'PASS' if ok else 'FAIL'}",
        lines,
        {"phase": phase_name, "gates": report.gates, "skipped": skipped, "overall_status": "PASS" if ok else "FAIL"},
        hint="" if ok else "fix each FAIL as its next action says, then run preflight again",
    )
    outcome = rt.finish(report, outcome)
    if out_md is not None:  # checked before the gates ran; a failure now (disk full) is only a warning
        try:
            private.write_file(out_md, evidence.markdown(report, REDACTOR))
        except OSError as err:
            outcome.lines.append(f"warning: --out-md {out_md} could not be written: {err.strerror or err}")
    return outcome
