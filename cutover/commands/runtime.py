"""What a use case runs with (the plan, AWS ports, a clock, the operator's env: injected), and how a
run's evidence is recorded: `rt.new_report(command)` at the start, `rt.finish(report, outcome)` at the end."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from cutover.core import evidence
from cutover.core import state
from cutover.core import flags as flagmod
from cutover.clock import Clock, SystemClock
from cutover.errors import CutoverError
from cutover.gates.context import GateContext
from cutover.outcome import Outcome
from cutover.model.plan import Plan
from cutover.ports import AwsPorts
from cutover.progress import Progress
from cutover.redact import REDACTOR


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]


@dataclass
class Runtime:
    """Everything a use case needs, injected: the plan, AWS ports, a clock, the operator's env."""

    plan: Plan
    aws: AwsPorts
    env: Mapping[str, str]
    clock: Clock = field(default_factory=SystemClock)
    evidence_dir: Path | None = Path("evidence")
    run_id: str = field(default_factory=new_run_id)
    dry_run: bool = False
    confirm: Callable[[str], bool] = lambda summary: True
    assume_yes: bool = False  # --yes: nobody reads the confirmation, so a rollback does not build it first
    reroute_url: Callable[[str], str] | None = None
    command_override: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)  # substitutions to report (sandbox, rehearsal)
    log: object = None
    _identity: object = None
    # The guard's AWS resources (IAM, SSM documents, EventBridge), made on demand: only plans with an
    # `auto_rollback: true` phase need them in advance and status.
    guard_store: Callable[[], object] | None = None
    # advance --outside-window --reason TEXT: window checks with allow_override: true pass while closed.
    outside_window: str | None = None
    progress: Progress = field(default_factory=Progress)  # told of each flag write as it happens

    _pacer: flagmod.Pacer | None = None

    @property
    def params(self) -> flagmod.PatientStore:
        """The parameter store, patient with transient faults and paced to the plan's write rate:
        every use case writes through it (flags, state record and lock share one quota)."""
        if self._pacer is None:
            self._pacer = flagmod.Pacer(self.plan.write_rate, self.clock)
        return flagmod.patient(self.aws.params, self.clock, self._pacer)

    @property
    def functions(self):
        """Lambda (for flags in a function's environment); None when the ports have none."""
        return self.aws.functions

    def read_live(self, extra: list[str] = ()) -> flagmod.Live:
        return flagmod.read_live(self.plan, self.params, extra, functions=self.functions, clock=self.clock)

    def converger(self, **kw) -> flagmod.Converger:
        def on_event(event: str, change: flagmod.FlagChange) -> None:
            self.progress.flag(event, change)  # (first: what the log says happened is already counted)
            self.emit(f"flag_{event}", flag=change.flag.name, target=change.flag.where)

        return flagmod.Converger(self.plan, self.params, self.clock, functions=self.functions, on_event=on_event, **kw)

    def identity(self):
        if self._identity is None:
            self._identity = self.aws.identity.caller()
        return self._identity

    def gate_context(self) -> GateContext:
        return GateContext(
            aws=self.aws, env=self.env, clock=self.clock, redactor=REDACTOR, reroute_url=self.reroute_url,
            command_override=self.command_override, cwd=str(Path(self.plan.path).resolve().parent), dry_run=self.dry_run,
            outside_window=self.outside_window,
        )

    def emit(self, event: str, **kw) -> None:
        if self.log is not None:
            self.log.info(event, run_id=self.run_id, **kw)

    def new_report(self, command: str, **kw) -> evidence.Report:
        """The evidence report of one run of `command`, filled in as it goes and written by finish()."""
        return evidence.Report(
            command=command, run_id=self.run_id, plan=self.plan.name, plan_digest=self.plan.digest, region=self.plan.region,
            started_at=state.iso(self.clock.now()), dry_run=self.dry_run, **kw,
        )

    def finish(self, report: evidence.Report, outcome: Outcome) -> Outcome:
        """Complete and write the report (a report that cannot be written is a warning), add the
        run's notes to the outcome, and return it: the last thing every use case does."""
        report.notes = [*self.notes, *report.notes]  # notes gathered while running (lock take-over, preemption)
        report.final_status = outcome.headline
        report.exit_code = outcome.exit_code
        report.ended_at = state.iso(self.clock.now())
        try:
            ident = self.identity()
            report.actor, report.account = ident.arn, ident.account
        except CutoverError:
            pass
        if report.account:  # what the run acted on: the renderer names it (issue 15 item 9)
            outcome.data.setdefault("account", report.account)
            outcome.data.setdefault("region", self.plan.region)
        if self.notes:  # (once: a use case inside another, e.g. watch's auto-rollback, has added them already)
            outcome.lines += [line for n in self.notes if (line := f"note: {n}") not in outcome.lines]
            outcome.data.setdefault("notes", list(self.notes))
        if self.evidence_dir is not None:  # the work is done: a report that cannot be written is only a warning
            outcome.evidence_path, problem = evidence.write_or_explain(report, self.evidence_dir)
            if problem:
                outcome.lines.append(f"warning: {problem}")
                outcome.data["evidence_error"] = problem
        outcome.data.setdefault("evidence", outcome.evidence_path)
        return outcome
