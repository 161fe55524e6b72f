"""`cutover rehearse` of a plan with targets (issue 17): every target seeded on the one embedded emulator
(its region; a target of another account reached through its role, which the emulator routes to that
account), then every step (phase, wave) to the end, the bakes fast-forwarded, then a rollback of every
target, later waves first, and a report per target. The same use cases `cutover advance`, `rollback`,
`status` and `history` run for targets (commands/waves.py), each target on its own Runtime."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from cutover.clock import OffsetClock
from cutover.commands import orchestrator, waves
from cutover.core import flags as flagmod
from cutover.core import state
from cutover.errors import ExitCode
from cutover.model.durations import format_duration
from cutover.model.plan import Plan
from cutover.checks.alarms import longest_quiet
from cutover.model.targets import RolloutTarget, steps
from cutover.model.templates import ENV_REF, expand_vars
from cutover.sandbox.emulator import CannedInsights, open_calendars_note, open_windows, refresh, serve_open_calendars
from cutover.sandbox.rehearse import STUB_COMMAND, Attempts, Sandbox, finish

# The emulator does not check an external id: one the environment does not give is this placeholder.
REHEARSAL_EXTERNAL_ID = "cutover-rehearsal"


def rehearse_targets(plan: Plan, evidence_dir: Path, verbose: bool = False,
                     progress: Callable[[str], None] | None = None) -> orchestrator.Outcome:
    from cutover import logs

    logs.configure(verbose, Path(evidence_dir) / "cutover.log.jsonl")
    plan, window_notes = open_windows(plan)
    clock = OffsetClock()
    started_at = state.iso(clock.now())
    attempt = Attempts(progress)
    with Sandbox(plan) as sb:
        sb.emulator.apply_env(os.environ, plan.region)  # boto3 reads AWS_ENDPOINT_URL and the dummy keys
        notes = ["clock fast-forwarded through each bake, wave bake and alarm quiet window (the emulator's clock cannot move)",
                 "command checks run a stub that exits 0 (their programs belong to the system being cut over)",
                 "every target on one emulator; a target's role is assumed there (the emulator checks no trust "
                 "policy or external id)", *window_notes, *open_calendars_note(plan), *sb.notes]

        def ports_of(t: RolloutTarget, dry_run: bool):
            from cutover.adapters.aws import assume_role, make_ports

            credentials = None
            if t.role_arn:
                external_id = expand_vars(t.external_id, os.environ) if t.external_id else None
                if external_id and ENV_REF.search(external_id):
                    external_id = REHEARSAL_EXTERNAL_ID
                credentials = assume_role(t.role_arn, external_id, t.region, None, "cutover-rehearse", clock=clock)
            return make_ports(t.region, None, read_only=dry_run, credentials=credentials)

        def runtime_for(dry_run: bool):
            def one(t: RolloutTarget) -> orchestrator.Runtime:
                single, ports = plan.at_target(t), ports_of(t, dry_run)
                serve_open_calendars(single, ports)
                ports.insights = CannedInsights(single)
                return orchestrator.Runtime(
                    plan=single, aws=ports, env={**os.environ, **sb.env}, clock=clock,
                    evidence_dir=Path(evidence_dir) / t.name, dry_run=dry_run, reroute_url=sb.reroute,
                    command_override=STUB_COMMAND, notes=list(notes), log=logs.get().bind(command="rehearse", target=t.name))
            return one

        def flags_at(dest: str, names) -> Callable[[], str | None]:
            def check() -> str | None:
                wrong = []
                for t in (t for t in plan.targets if t.name in names):
                    ports = ports_of(t, dry_run=True)
                    live = flagmod.read_live(plan, ports.params, functions=ports.functions)
                    want = plan.values_for(dest)
                    wrong += [f"{t.name}: {f.name}" for f in plan.flags if live.get(f.key) is None or live[f.key].value != want[f.name]]
                return f"flags not at {dest}: {', '.join(wrong)}" if wrong else None
            return check

        def fast_forward(seconds: float, why: str) -> None:
            if seconds > 0:
                clock.advance(seconds)
                for t in plan.targets:  # the markers and metric data fresh in the fast-forwarded time, in every target
                    refresh(plan.at_target(t), sb.emulator, clock.now(), role_arn=t.role_arn)
                notes.append(f"fast-forwarded {format_duration(seconds)}: {why}")

        fast_forward(longest_quiet(plan),
                     "the freshly seeded alarms count as quiet")
        attempt("status", ExitCode.OK, "every target pending, no drift",
                lambda: waves.status(plan, runtime_for(True), check=True))
        previous_phase = None
        for phase_name, wave_name in steps(plan.phase_names, plan.waves):
            phase, wave = plan.phases[plan.phase_names.index(phase_name)], next(w for w in plan.waves if w.name == wave_name)
            if previous_phase is not None and previous_phase != phase_name and plan.phases[plan.phase_names.index(previous_phase)].bake:
                fast_forward(plan.phases[plan.phase_names.index(previous_phase)].bake, f"bake of {previous_phase}")
            elif previous_phase == phase_name and wave.bake:
                fast_forward(wave.bake, f"wave {wave.name}'s bake after the wave before, in {phase_name}")
            attempt(f"advance into {phase_name}, wave {wave_name} ({', '.join(wave.targets)})", ExitCode.OK,
                    f"gates pass; flags at {phase_name} in {', '.join(wave.targets)}",
                    lambda: waves.advance(plan, runtime_for(False), clock, approve=phase.approval, reason="rehearsal"),
                    flags_at(phase_name, wave.targets))
            previous_phase = phase_name
        fast_forward(plan.phases[-1].bake, f"bake of {plan.phases[-1].name}")
        attempt("advance past the last step", ExitCode.OK, "nothing to do",
                lambda: waves.advance(plan, runtime_for(False), clock, reason="rehearsal"))
        every = [t.name for t in plan.targets]
        attempt("rollback of every target, later waves first", ExitCode.OK, "every flag at its rollback value in every target",
                lambda: waves.rollback(plan, runtime_for(False), reason="rehearsal: incident"), flags_at("rolled_back", every))
        attempt("status --check", ExitCode.OK, "every target rolled_back, no drift",
                lambda: waves.status(plan, runtime_for(True), check=True))
        final = waves.status(plan, runtime_for(True))  # the report per target
        attempt("history", ExitCode.OK, "every target's transitions recorded", lambda: waves.history(plan, runtime_for(True)))

    lines = ["per target:", *final.lines]
    return finish(plan, attempt.steps, notes, started_at, evidence_dir, lines, {"targets": final.data["targets"]})
