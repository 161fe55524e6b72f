"""`cutover rehearse` and `cutover sandbox`: the plan on the embedded AWS emulator.

The emulator's clock cannot be moved, so the rehearsal moves its own: an OffsetClock fast-forwards
through each bake and alarm quiet window (and says so), instead of waiting hours. URLs of http and
graphql checks go to a local stub; command checks run a stub that exits 0. Every substitution is
printed and written to the evidence. Every gate really runs; none is skipped.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cutover.core import evidence
from cutover.commands import orchestrator
from cutover.core import state
from cutover.core import flags as flagmod
from cutover.clock import OffsetClock, SystemClock
from cutover.errors import CutoverError, ExitCode
from cutover.model.plan import Plan
from cutover.checks.alarms import longest_quiet
from cutover.checks.metric import MetricCheck
from cutover.commands.runtime import new_run_id
from cutover.sandbox.emulator import DUMMY_KEY, open_calendars_note, open_windows, serve_open_calendars

STUB_COMMAND = (sys.executable, "-c", "raise SystemExit(0)")


@dataclass
class Step:
    step: str
    expected: str
    outcome: str = ""
    ok: bool = False


@dataclass
class Sandbox:
    """A running emulator + HTTP stub, seeded from a plan, with the env a user (or the rehearsal) needs."""

    plan: Plan
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __enter__(self) -> "Sandbox":
        from cutover.sandbox.emulator import Emulator, HttpStub, plan_reroutes, sandbox_env, seed

        self.emulator = Emulator(self.port, self.plan.region).start()
        self.stub = HttpStub().start()
        if self.plan.targets:  # every target in its region, one of another account as its role
            self.seeded = {t.name: seed(self.plan.at_target(t), self.emulator, role_arn=t.role_arn) for t in self.plan.targets}
        else:
            self.seeded = seed(self.plan, self.emulator)
        self.env = sandbox_env(self.plan, self.emulator, self.stub)
        self.notes = [f"{r.check}: {r.original} -> {r.rerouted} (local stub)" for r in plan_reroutes(self.plan, self.stub.base, self.env)]
        return self

    def __exit__(self, *exc) -> None:
        self.stub.stop()
        self.emulator.stop()

    def reroute(self, url: str) -> str:
        from cutover.sandbox.emulator import reroute_url

        return reroute_url(url, self.stub.base)


def serve_sandbox(plan: Plan, port: int, say: Callable[[str], None], time_scale: int = 1,
                  say_exactly: Callable[[str], None] | None = None) -> None:
    """`time_scale` > 1: the session uses a copy of the plan with bakes and alarm quiet windows that much shorter.
    `say_exactly` prints a line unredacted: the emulator's dummy credentials, which must paste as they are."""
    import tempfile

    from cutover.sandbox.emulator import compress_time

    with tempfile.TemporaryDirectory(prefix="cutover-sandbox-") as folder:  # private (0700); removed at the end
        if time_scale > 1:
            compressed = compress_time(plan, time_scale, folder)
            _serve(compressed.plan, port, say, compressed.lines(time_scale), {"CUTOVER_PLAN": compressed.path},
                   say_exactly or say)
        else:
            _serve(plan, port, say, [], {}, say_exactly or say)


def _serve(plan: Plan, port: int, say: Callable[[str], None], time_lines: list[str], exports: dict[str, str],
           say_exactly: Callable[[str], None]) -> None:
    with Sandbox(plan, port) as sb:
        sb.env.update(exports)
        say(f"AWS emulator (moto) on {sb.emulator.endpoint}, seeded from {plan.path}:")
        for line in sb.seeded.lines():
            say(f"  {line}")
        say(f"HTTP stub on {sb.stub.base}; with the exports below, http/graphql checks go to it:")
        for note in sb.notes:
            say(f"  {note}")
        for line in time_lines:
            say(line)
        quiet = longest_quiet(plan)
        if quiet:
            from cutover.model.durations import format_duration

            ready = time.strftime("%H:%M", time.localtime(time.time() + quiet))
            say(f"The alarms were just created OK: alarms gates (quiet for {format_duration(quiet)}) pass from {ready}.")
        player = _play_the_guard(plan, sb, say)
        say("\nIn another terminal, paste these lines, then use cutover as usual:")
        say("unset " + " ".join(sb.emulator.UNSET))
        for k, v in sb.env.items():  # the dummy key is no secret: masked, the pasted line would be wrong
            (say_exactly if v == DUMMY_KEY else say)(f"export {k}='{v}'")
        say("Press Ctrl-C to stop.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            say("sandbox stopped")
        finally:
            if player is not None:
                player.stop()


def _play_the_guard(plan: Plan, sb: Sandbox, say: Callable[[str], None]):
    """The guard's roles as an admin would apply them, and a watcher doing EventBridge's and Automation's
    part (the emulator runs neither); None for a plan the guard cannot express."""
    from cutover.compile import guard
    from cutover.sandbox.guard import GuardPlayer, bootstrap_roles

    try:
        guard.check_plan(plan)
    except CutoverError as err:
        say(f"Guard: not available for this plan ({err.message})")
        return None
    roles = bootstrap_roles(plan, sb.emulator.endpoint)
    say(f"Guard: roles {', '.join(roles)} applied from `cutover guard bootstrap` (as an admin would); "
        "`cutover guard arm --yes` arms it here.")
    say("  The emulator runs no EventBridge delivery or Automation, so this sandbox plays them: when a plan alarm "
        "changes state while the guard is armed, it runs the armed document's steps (e.g. `aws cloudwatch "
        "set-alarm-state --state-value ALARM ...`, then `cutover history`).")
    sb.emulator.apply_env(os.environ, plan.region)  # the document's scripts make their own boto3 clients
    return GuardPlayer(plan, sb.emulator.endpoint, say).start()


# --- the rehearsal -----------------------------------------------------------------------------------
def rehearse(plan: Plan, evidence_dir: Path, verbose: bool = False,
             progress: Callable[[str], None] | None = None) -> orchestrator.Outcome:
    """The whole plan on the emulator; `progress` is told each step as it ends (a person at a terminal)."""
    from cutover import logs
    from cutover.adapters.aws import make_ports

    logs.configure(verbose, Path(evidence_dir) / "cutover.log.jsonl")
    plan, window_notes = open_windows(plan)
    clock = OffsetClock()
    started_at = state.iso(clock.now())
    attempt = Attempts(progress)
    with Sandbox(plan) as sb:
        sb.emulator.apply_env(os.environ, plan.region)  # boto3 reads AWS_ENDPOINT_URL and the dummy keys
        notes = ["clock fast-forwarded through each bake and alarm quiet window (the emulator's clock cannot move)",
                 "command checks run a stub that exits 0 (their programs belong to the system being cut over)",
                 *window_notes, *open_calendars_note(plan), *sb.notes]

        if any(c.type == "logs_query" for c in plan.checks.values()):
            notes.append("logs_query checks get canned results keyed by their query (the emulator runs only "
                         "fields, sort and limit of Logs Insights)")

        def runtime(dry_run: bool = False) -> orchestrator.Runtime:
            from cutover.sandbox.emulator import CannedInsights

            ports = make_ports(plan.region, None, read_only=dry_run)
            serve_open_calendars(plan, ports)
            ports.insights = CannedInsights(plan)
            return orchestrator.Runtime(
                plan=plan, aws=ports, env={**os.environ, **sb.env}, clock=clock,
                evidence_dir=evidence_dir, dry_run=dry_run, reroute_url=sb.reroute, command_override=STUB_COMMAND,
                notes=list(notes), log=logs.get().bind(command="rehearse"))

        def flags_at(dest: str):
            def check() -> str | None:
                ports = make_ports(plan.region, None, read_only=True)
                live = flagmod.read_live(plan, ports.params, functions=ports.functions)
                want = plan.values_for(dest)
                wrong = [f.name for f in plan.flags if live.get(f.key) is None or live[f.key].value != want[f.name]]
                return f"flags not at {dest}: {', '.join(wrong)}" if wrong else None
            return check

        def no_writes() -> str | None:
            writes = sb.emulator.write_requests()
            return f"{len(writes)} write request(s) reached AWS: {writes[0]['operation']}" if writes else None

        def fast_forward(seconds: float, why: str) -> None:
            if seconds > 0:
                clock.advance(seconds)
                _refresh_markers(plan, sb, clock)
                from cutover.model.durations import format_duration
                notes.append(f"fast-forwarded {format_duration(seconds)}: {why}")

        fast_forward(longest_quiet(plan),
                     "the freshly seeded alarms count as quiet")
        attempt("status", ExitCode.OK, "pending, no drift", lambda: orchestrator.status(runtime(True), check=True))
        sb.emulator.start_recording()
        attempt(f"advance --dry-run into {plan.phases[0].name}", ExitCode.OK, "gates pass, zero write requests",
                lambda: orchestrator.advance(runtime(True)), no_writes)
        sb.emulator.stop_recording()
        for i, phase in enumerate(plan.phases):
            if i > 0 and plan.phases[i - 1].bake:
                attempt(f"advance into {phase.name} before the bake", ExitCode.GATE_FAILED, "refused: still baking",
                        lambda: orchestrator.advance(runtime(), approve=True, reason="rehearsal"))
                fast_forward(plan.phases[i - 1].bake, f"bake of {plan.phases[i - 1].name}")
            if phase.approval:
                attempt(f"advance into {phase.name} without --approve", ExitCode.BLOCKED, "refused: approval required",
                        lambda: orchestrator.advance(runtime(), reason="rehearsal"))
            attempt(f"advance into {phase.name}", ExitCode.OK, f"gates pass; flags at {phase.name}",
                    lambda: orchestrator.advance(runtime(), approve=phase.approval, reason="rehearsal"), flags_at(phase.name))
        fast_forward(plan.phases[-1].bake, f"bake of {plan.phases[-1].name}")
        attempt("advance past the last phase", ExitCode.OK, "nothing to do", lambda: orchestrator.advance(runtime()))

        from cutover.commands import preflight

        incident = _incident_alarm(plan)
        if incident:
            sb.emulator.seeder(plan.region).set_alarm_state(incident, "ALARM", "rehearsal: injected incident")
            notes.append(f"incident injected: alarm {incident} set to ALARM")
            attempt(f"incident: {incident} in ALARM; preflight --phase {plan.phases[-1].name}", ExitCode.GATE_FAILED,
                    "gate fails naming the alarm", lambda: preflight.preflight(runtime(True), plan.phases[-1].name))
        regressed = _incident_metric(plan)
        if regressed:
            phase_name, check = regressed
            from cutover.sandbox.emulator import seed_regression

            seed_regression(plan, sb.emulator, check, clock.now())
            notes.append(f"incident injected: {check.name}'s window given 20% bad events")
            attempt(f"incident: {check.name} regresses; preflight --phase {phase_name}", ExitCode.GATE_FAILED,
                    "the metric gate fails with its reason",
                    lambda: preflight.preflight(runtime(True), phase_name), lambda: _metric_fails(check, runtime(True)))
        attempt("rollback", ExitCode.OK, "every flag at its rollback value",
                lambda: orchestrator.rollback(runtime(), reason="rehearsal: incident"), flags_at("rolled_back"))
        sb.emulator.start_recording()
        attempt("rollback again", ExitCode.OK, "nothing to do, zero write requests",
                lambda: orchestrator.rollback(runtime(), reason="rehearsal: second rollback"), no_writes)
        sb.emulator.stop_recording()
        attempt("status --check", ExitCode.OK, "rolled_back, no drift", lambda: orchestrator.status(runtime(True), check=True))
        attempt("history", ExitCode.OK, "every transition recorded", lambda: orchestrator.history(runtime(True)),
                lambda: None if len(state.StateStore(plan, make_ports(plan.region, None, True).params).history()) >= 2 * len(plan.phases) + 2
                else "fewer state versions than transitions")

    return finish(plan, attempt.steps, notes, started_at, evidence_dir)


class Attempts:
    """Runs each step of a rehearsal and records whether it behaved as expected (its exit code, then
    `verify`); `progress` is told each step as it ends."""

    def __init__(self, progress: Callable[[str], None] | None) -> None:
        self.steps: list[Step] = []
        self.progress = progress
        self.began = time.monotonic()

    def __call__(self, name: str, expected_code: int, expected: str, fn, verify=None) -> None:
        step = Step(name, expected)
        try:
            out = fn()
            code, text = out.exit_code, out.headline
        except CutoverError as err:
            code, text = err.exit_code, err.message
        problem = verify() if (verify and code == expected_code) else None
        step.ok = code == expected_code and not problem
        step.outcome = f"exit {code}: {text}" + (f"; {problem}" if problem else "")
        self.steps.append(step)
        if self.progress is not None:
            self.progress(f"[{len(self.steps)}] {'ok  ' if step.ok else 'FAIL'} {name} ({time.monotonic() - self.began:.0f}s)")


def finish(plan: Plan, steps: list[Step], notes: list[str], started_at: str, evidence_dir: Path,
           lines: list[str] = (), data: dict | None = None) -> orchestrator.Outcome:
    """The rehearsal's outcome (`lines` and `data` added after the steps) and its evidence report."""
    ok = all(s.ok for s in steps)
    report = evidence.Report(command="rehearse", run_id=new_run_id(), plan=plan.name, plan_digest=plan.digest,
                             region=plan.region, started_at=started_at, steps=[s.__dict__ for s in steps],
                             notes=notes, actor="sandbox")
    outcome = orchestrator.Outcome(
        ExitCode.OK if ok else ExitCode.INCOMPLETE,
        f"rehearsal {'passed' if ok else 'FAILED'}: {sum(s.ok for s in steps)}/{len(steps)} steps behaved as expected",
        [f"{'ok  ' if s.ok else 'FAIL'} {s.step}: {s.outcome}" for s in steps] + list(lines) + [f"note: {n}" for n in notes],
        {"steps": [s.__dict__ for s in steps], "notes": notes, **(data or {})},
    )
    # Wall-clock times for the report: the rehearsal's own clock was fast-forwarded.
    report.final_status, report.exit_code, report.ended_at = outcome.headline, outcome.exit_code, state.iso(SystemClock().now())
    outcome.evidence_path = str(evidence.write(report, evidence_dir))
    return outcome


def _incident_alarm(plan: Plan) -> str | None:
    for phase in reversed(plan.phases):
        for check in plan.alarm_checks(phase.name):
            if check.names:
                return check.names[0]
    return None


def _incident_metric(plan: Plan) -> tuple[str, MetricCheck] | None:
    """The last phase gated by a rate metric check, and that check (a metric incident to inject)."""
    for phase in reversed(plan.phases):
        for name in phase.gates:
            if (check := plan.checks[name]).type == "metric" and check.is_rate:
                return phase.name, check
    return None


def _metric_fails(check: MetricCheck, rt: orchestrator.Runtime) -> str | None:
    """The regressed metric gate itself must FAIL (not merely the phase, which an alarm also fails)."""
    from cutover.gates import run_check

    result = run_check(check, rt.gate_context())
    outcome = (result.data or {}).get("outcome")
    return None if outcome == "FAIL" else f"{check.name} was {outcome}, not FAIL: {result.detail}"


def _refresh_markers(plan: Plan, sb: Sandbox, clock: OffsetClock) -> None:
    """Keep the "last success" markers and the metric data fresh in the fast-forwarded time, as the real
    jobs and traffic would."""
    from cutover.sandbox.emulator import refresh

    refresh(plan, sb.emulator, clock.now())
