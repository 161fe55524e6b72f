"""The typer app: parse, call one use case, render, map errors to the contract's exit codes.

Kept thin and quick to import: boto3 loads only when a command needs AWS, never for --help or validate.
"""

from __future__ import annotations

import copy
import json
import sys
import textwrap
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from cutover.cli.options import GLOBAL_FIELDS, options, start, take
from cutover.cli.render import emit, run, say, write
from cutover.cli.wiring import check_evidence_dir, check_out_file, load_plan, require_yes_or_tty, runtime, target_runtimes
from cutover.errors import Blocked, ExitCode, Incomplete, UsageError


class GlobalsAnywhere(TyperGroup):
    """The top-level group. Its options (--plan, --json, ...) are also accepted after any command name,
    guard subcommands included, with the same meaning: hands put them where they are used
    (`cutover status --json`, `cutover rollback --yes --reason x --plan other.yaml`)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        shared = [o for o in self.params if o.name in GLOBAL_FIELDS]
        for command in self.commands.values():
            _accept_globals(command, shared)

    def resolve_command(self, ctx, args):
        if args and args[0] in ROLLBACK_WORDS:
            ctx.fail(f"no command '{args[0]}': did you mean `cutover rollback`? (every flag back to its known-safe value)")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx, formatter) -> None:
        """Each command's whole first sentence, wrapped (click cuts it to the terminal's width with "...")."""
        rows = [(name, command.get_short_help_str(limit=1000)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


ROLLBACK_WORDS = ("abort", "undo", "revert")  # what users of other rollout tools type


EPILOG = """\b
During an incident, the only command you need:
  cutover rollback --yes --reason "what happened"

\b
""" + textwrap.fill(ExitCode.summary_line(), 88)


def _accept_globals(command, options) -> None:
    """Give `command` (and its subcommands) copies of the global options that default to "not given";
    what is given there overrides what was given before the command name."""
    for option in options:
        mine = copy.copy(option)
        mine.default, mine.envvar, mine.show_envvar = (False if option.is_flag else None), None, False
        command.params.append(mine)
    inner = command.callback

    def callback(**kw):
        take({name: kw.pop(name) for name in GLOBAL_FIELDS if name in kw})
        return inner(**kw) if inner is not None else None

    command.callback = callback
    for sub in getattr(command, "commands", {}).values():
        _accept_globals(sub, options)


app = typer.Typer(
    cls=GlobalsAnywhere,
    epilog=EPILOG,
    rich_markup_mode=None,  # plain help: rich's help formatter costs more start-up than the rest of the CLI
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Step a production feature through its cutover plan, one phase at a time, and roll it back with one command.",
)


@app.callback()
def main_options(
    ctx: typer.Context,
    plan: Path = typer.Option(Path("phases.yaml"), "--plan", envvar="CUTOVER_PLAN", help="The cutover plan."),
    region: Optional[str] = typer.Option(None, "--region", help="AWS Region (overrides the plan's)."),
    profile: Optional[str] = typer.Option(None, "--profile", help="AWS profile."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    evidence_dir: Path = typer.Option(Path("evidence"), "--evidence-dir", help="Where evidence reports go."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log every step to stderr."),
    no_color: bool = typer.Option(False, "--no-color", help="No colour on a terminal (as does the NO_COLOR variable)."),
    region_override: bool = typer.Option(False, "--region-override",
                                         help="Act on a region (--region) or account other than the plan's, on purpose."),
) -> None:
    """(Every invocation starts from the defaults: the app may run more than once in one process.)"""
    start(ctx)
    take(dict(plan=plan, region=region, profile=profile, json_out=json_out, evidence_dir=evidence_dir,
                       verbose=verbose, no_color=no_color, region_override=region_override))


def _interval(seconds: float) -> float:
    """--interval's callback: click's usage error (exit 2) for nan, inf or out of range (FloatRange lets nan through)."""
    from cutover.commands.watch import interval_problem

    problem = interval_problem(seconds)
    if problem:
        raise typer.BadParameter(problem)
    return seconds


def _port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise typer.BadParameter(f"{port} is not a port from 1 to 65535 (or 0 for a free one)")
    return port


def _time_scale(scale: int) -> int:
    if not 1 <= scale <= 3600:
        raise typer.BadParameter(f"{scale} is not a time scale from 1 (real time) to 3600 (an hour a second)")
    return scale


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# --- commands ----------------------------------------------------------------------------------------
@app.command()
def validate(schema: bool = typer.Option(False, "--schema", help="Print the plan format's JSON Schema.")) -> None:
    """Check the plan and print a summary of its phases. Exit 0 or 2."""

    def body():
        if schema:
            from cutover.plan.load import plan_schema

            say(json.dumps(plan_schema(), indent=2))
            return
        from cutover.outcome import Outcome
        from cutover.model.durations import format_duration
        from cutover.plan.load import summarize

        plan = load_plan(waves_ok=True)
        summary = summarize(plan)
        lines = [f"region {plan.region}, state {plan.state_prefix}, write rate {plan.write_rate}/s, sha256 {plan.digest[:12]}",
                 "rollback order: " + ", ".join(f"{f['name']}={f['rollback']}" for f in summary["flags"])]
        for wave in plan.waves:  # where each wave reaches, and how long it waits for the one before
            reach = "; ".join(f"{t.name} ({t.where}{', as ' + t.role_arn if t.role_arn else ''})"
                              for t in plan.targets if t.name in wave.targets)
            lines.append(f"wave {wave.name}: {reach}" + (f"; bake {format_duration(wave.bake)} after the wave before" if wave.bake else ""))
        if plan.targets:
            from cutover.cli.wiring import NOT_FOR_TARGETS, TARGET_COMMANDS, listed

            lines.append(f"note: with targets, this version runs {listed(TARGET_COMMANDS)} for every target; "
                         f"{NOT_FOR_TARGETS} refuses the plan until it acts on every target")
        for function in plan.functions:  # where the flags that are not SSM parameters live
            names = [f"{f.name} ({f.target.variable})" for f in plan.flags if f.kind == "lambda" and f.target.function == function]
            lines.append(f"Lambda function {function} environment: {', '.join(names)}")
        for i, p in enumerate(summary["phases"]):
            sets = ", ".join(f"{k}={v}" for k, v in p["changes"].items()) or "no changes (the rollback values)"
            extra = (", approval required" if p["approval"] else "") + (f", bake {p['bake']}" if plan.phases[i].bake else "")
            lines.append(f"phase {i} {p['name']}: sets {sets}; gates {', '.join(p['gates']) or 'none'}{extra}")
        emit("validate", Outcome(ExitCode.OK, f"{plan.path}: plan '{plan.name}' is valid: {len(plan.phases)} phases, "
                                              f"{len(plan.flags)} flags, {len(plan.checks)} checks", lines, summary))

    run("validate", body)


@app.command()
def status(check: bool = typer.Option(False, "--check", help="Exit 5 on drift, an unfinished transition or a bad state record.")) -> None:
    """Where the cutover stands: phase, lock, live flags against declared values, alarms."""

    def body():
        from cutover.commands import orchestrator

        plan = load_plan(waves_ok=True)
        if plan.targets:  # a row per target, wave by wave
            from cutover.commands import waves

            emit("status", waves.status(plan, target_runtimes(plan, dry_run=True, command="status"), check=check))
            return
        emit("status", orchestrator.status(runtime(plan, dry_run=True, command="status"), check=check))

    run("status", body)


@app.command()
def preflight(
    phase: Optional[str] = typer.Option(None, "--phase", help="The phase whose gates to run (default: the next one)."),
    out_md: Optional[Path] = typer.Option(None, "--out-md", help="Also write the report as markdown to this file."),
    skip: list[str] = typer.Option([], "--skip", help="Skip a check (diagnosis only: not valid for sign-off)."),
) -> None:
    """Run a phase's gates only. Prints overall_status PASS|FAIL; exit 0 or 1. Read-only."""

    def body():
        from cutover.commands import preflight as pf

        if out_md is not None:
            check_out_file("--out-md", out_md)
        plan = load_plan(waves_ok=True)
        if plan.targets:  # the next step's wave, a row per target
            from cutover.commands import waves

            if out_md is not None:
                raise UsageError("--out-md is not built yet for a plan with targets; nothing was done",
                                 "leave it out: each target's report is in EVIDENCE_DIR/TARGET")
            emit("preflight", waves.preflight(plan, target_runtimes(plan, dry_run=True, command="preflight"), phase, tuple(skip)))
            return
        rt = runtime(plan, dry_run=True, command="preflight")
        outcome = pf.preflight(rt, phase, tuple(skip), out_md)
        emit("preflight", outcome)

    run("preflight", body)


@app.command()
def advance(
    dry_run: bool = typer.Option(False, "--dry-run", help="Run the gates and show what would change; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    approve: bool = typer.Option(False, "--approve", help="Approve entering a phase that requires approval."),
    reason: str = typer.Option("", "--reason", help="Why, for the record."),
    accept_plan_change: bool = typer.Option(False, "--accept-plan-change",
                                            help="Proceed although the plan changed since the last transition."),
    outside_window: bool = typer.Option(False, "--outside-window",
                                        help="Pass closed window checks that say allow_override: true (needs --reason)."),
    out: Optional[Path] = typer.Option(None, "--out", help="With --dry-run: save the decision to FILE (for --from)."),
    from_file: Optional[Path] = typer.Option(None, "--from",
                                             help="Apply exactly the advance saved by `advance --dry-run --out FILE`."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="With --dry-run: exit 7 when the advance would do something, 0 when not."),
) -> None:
    """Pass the next phase's gates, then converge its flags. Exactly one phase per call."""

    def body():
        from cutover.commands import orchestrator

        if outside_window and not reason.strip():
            raise UsageError("--outside-window needs --reason TEXT: an override is recorded with who and why",
                             'add --reason "why this change cannot wait for the window"')
        if out is not None and not dry_run:
            raise UsageError("--out saves a preview: it goes with --dry-run", "cutover advance --dry-run --out FILE")
        if from_file is not None and (dry_run or out is not None):
            raise UsageError("--from applies a saved advance: it does not go with --dry-run or --out",
                             "cutover advance --from FILE")
        saved = None
        if from_file is not None:
            from cutover.commands.saved import load

            saved = load(from_file)  # exit 2 on a file that is not one, before any AWS call
        if out is not None:
            check_out_file("--out", out)
        require_yes_or_tty(yes, dry_run, "advance")
        plan = load_plan(waves_ok=True)
        if plan.targets:
            outcome = _advance_targets(plan, dry_run, yes, approve, reason,
                                       {"--accept-plan-change": accept_plan_change, "--outside-window": outside_window,
                                        "--out": out is not None, "--from": from_file is not None})
            emit("advance", pending_or_not(outcome) if detailed_exitcode else outcome)
            return
        rt = runtime(plan, dry_run=dry_run, yes=yes, command="advance")
        rt.outside_window = reason if outside_window else None
        outcome = orchestrator.advance(rt, approve, reason, accept_plan_change=accept_plan_change, save_to=out, saved=saved)
        emit("advance", pending_or_not(outcome) if detailed_exitcode else outcome)

    run("advance", body)


def _advance_targets(plan, dry_run: bool, yes: bool, approve: bool, reason: str, unsupported: dict[str, bool]):
    """advance of a plan with targets: the next (phase, wave) step, confirmed once for its targets."""
    from cutover.clock import SystemClock
    from cutover.cli.wiring import confirmer
    from cutover.commands import waves

    if given := [name for name, on in unsupported.items() if on]:
        raise UsageError(f"{', '.join(given)} is not built yet for a plan with targets; nothing was done",
                         "leave it out: `cutover advance` takes the next wave step")
    confirm = (lambda summary: True) if dry_run else confirmer(yes)
    return waves.advance(plan, target_runtimes(plan, dry_run=dry_run, command="advance"), SystemClock(), approve, reason,
                         dry_run, confirm=confirm)


def pending_or_not(outcome):
    """--detailed-exitcode: a dry run that found work to do exits 7 (0 stays "nothing to do")."""
    if outcome.exit_code == ExitCode.OK and outcome.data.get("dry_run") and outcome.headline.startswith("dry run:"):
        outcome.exit_code = ExitCode.CHANGES_PENDING
    return outcome


@app.command()
def rollback(
    to: Optional[str] = typer.Option(None, "--to", help="Roll back to an earlier phase instead of the known-safe values."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would change; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    reason: str = typer.Option("", "--reason", help="Why, for the record."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="With --dry-run: exit 7 when the rollback would do something, 0 when not."),
    target: Optional[str] = typer.Option(None, "--target", help="A plan with targets: restore this target only."),
    in_aws: bool = typer.Option(False, "--in-aws", help="A plan with targets: start the rollback as one SSM Automation "
                                "execution across every target account and region (the guard's document), and return."),
) -> None:
    """Converge every flag to its rollback value (or an earlier phase). Never gated; never waits for the lock."""

    def body():
        from cutover.commands import orchestrator
        from cutover.progress import second_ctrl_c_aborts

        require_yes_or_tty(yes, dry_run, "rollback")
        plan = load_plan(waves_ok=True)
        if in_aws:
            emit("rollback", _rollback_in_aws(plan, target, to, dry_run, yes, reason))
            return
        if plan.targets or target is not None:
            outcome = _rollback_targets(plan, target, to, dry_run, yes, reason)
            emit("rollback", pending_or_not(outcome) if detailed_exitcode else outcome)
            return
        rt = runtime(plan, dry_run=dry_run, yes=yes, command="rollback")
        try:
            with second_ctrl_c_aborts(rt.progress, lambda line: say(line, err=True)):
                outcome = orchestrator.rollback(rt, to, reason)
        except KeyboardInterrupt:
            if rt.progress.planned is None:
                raise  # before any write: the usual "interrupted"
            restored = rt.progress.confirmed
            left = [*rt.progress.not_confirmed, *(["the flags after the kill switch (not read yet)"] if rt.progress.rest_unread else [])]
            raise Incomplete(f"rollback aborted by a second Ctrl-C: restored: {', '.join(restored) or 'none'}; "
                             f"not restored: {', '.join(left) or 'none'}",
                             "flags already restored stay restored; finish it: cutover rollback --yes") from None
        emit("rollback", pending_or_not(outcome) if detailed_exitcode else outcome)

    run("rollback", body)


def _rollback_in_aws(plan, target: str | None, to: str | None, dry_run: bool, yes: bool, reason: str):
    """rollback --in-aws: one Automation execution across every target, started from the caller's account."""
    from cutover.adapters.aws import Clients, SsmAutomationStarter, make_ports, make_session
    from cutover.cli.wiring import confirmer
    from cutover.commands.rollback_in_aws import require_targets, rollback_in_aws
    from cutover.compile.guard import in_aws_start_region as start_region

    if target is not None or to is not None:
        raise UsageError("--in-aws restores every target to its known-safe values: it takes no --target or --to; "
                         "nothing was done", "leave them out, or roll back from here: cutover rollback --target NAME --yes")
    require_targets(plan)  # before any AWS call
    caller = make_ports(plan.region, options().profile, read_only=True).identity.caller()
    region = start_region(plan, caller.account)
    if not dry_run and not confirmer(yes)(f"start the rollback inside AWS from {region} (account {caller.account}) "
                                          f"across {len(plan.targets)} target(s)"):
        raise Blocked("not confirmed; nothing was started", "re-run and answer yes, or pass --yes")
    starter = SsmAutomationStarter(Clients(make_session(region, options().profile, dry_run)))
    return rollback_in_aws(plan, starter, caller, reason, dry_run)


def _rollback_targets(plan, target: str | None, to: str | None, dry_run: bool, yes: bool, reason: str):
    """rollback of a plan with targets: every target (or --target NAME), confirmed once for all."""
    from cutover.cli.wiring import confirmer
    from cutover.commands import waves

    if not plan.targets:
        raise UsageError(f"--target {target}: {plan.path} declares no targets", "leave out --target")
    if to is not None:
        raise UsageError("--to is not built yet for a plan with targets; nothing was done",
                         "roll every target back to its known-safe values: cutover rollback")
    order = waves.rollback_order(plan, target)
    summary = "rollback to the known-safe values, in this order (later waves first):\n" + "\n".join(
        f"  {', '.join(f'{t.name} ({t.where})' for t in wave)}" for wave in order)
    if not dry_run and not confirmer(yes)(summary):
        raise Blocked("not confirmed; nothing was written", "re-run and answer yes, or pass --yes")
    return waves.rollback(plan, target_runtimes(plan, dry_run=dry_run, command="rollback"), reason, target, dry_run)


@app.command()
def watch(
    auto_rollback: bool = typer.Option(False, "--auto-rollback", help="Roll back at once on an alarm or drift (exit 6)."),
    interval: float = typer.Option(30.0, "--interval", callback=_interval,
                                   help="Seconds between polls, from 1 to 3600."),
) -> None:
    """Watch the current phase's alarms and flags through its bake; roll back (or say how) on trouble."""

    def body():
        from cutover.commands import watch as w

        plan = load_plan(waves_ok=True)
        # Read-only unless a rollback may follow (the flag, or `auto_rollback: true` on some phase).
        may_roll_back = auto_rollback or any(p.auto_rollback for p in plan.phases)
        if plan.targets:  # every target that has entered a phase; one JSON line per target and poll
            from cutover.clock import SystemClock
            from cutover.commands import waves

            clock = SystemClock()
            runtime_for = target_runtimes(plan, dry_run=not may_roll_back, command="watch", clock=clock)
            emit("watch", waves.watch(plan, runtime_for, clock, auto_rollback, interval, w.json_lines(say)), compact=True)
            return
        rt = runtime(plan, dry_run=not may_roll_back, yes=True, command="watch")
        as_lines = options().json or not sys.stderr.isatty()
        if as_lines and not options().json:  # no terminal for the live view: say what comes instead
            say("watch: stderr is not a terminal, so each poll is one JSON line on stdout (as with --json)", err=True)
        try:
            if as_lines:  # JSON Lines on stdout: one per poll, then the final document on one line
                outcome = w.watch(rt, auto_rollback, interval, w.json_lines(say))
            else:
                with w.LiveView() as view:
                    outcome = w.watch(rt, auto_rollback, interval, view)
        except KeyboardInterrupt:  # the normal way out of a watch, not an error (unless it was rolling back)
            if rt.progress.planned is not None:
                raise
            from cutover.outcome import Outcome

            outcome = Outcome(ExitCode.OK, "stopped watching (Ctrl-C); nothing was changed",
                              hint="watch again: cutover watch; roll back any time: cutover rollback")
        emit("watch", outcome, compact=as_lines)

    run("watch", body)


@app.command()
def history() -> None:
    """Every state change: when, who, from, to, reason."""

    def body():
        from cutover.commands import orchestrator

        plan = load_plan(waves_ok=True)
        if plan.targets:  # each target's own record
            from cutover.commands import waves

            emit("history", waves.history(plan, target_runtimes(plan, dry_run=True, command="history")))
            return
        emit("history", orchestrator.history(runtime(plan, dry_run=True, command="history")))

    run("history", body)


@app.command()
def runbook(
    out: Optional[str] = typer.Option(None, "--out", help="The runbook file (default: runbooks/<plan name>.md next to "
                                                          "the plan; - prints it on stdout)."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the file differs from a fresh render; write nothing."),
) -> None:
    """Render the on-call runbook (markdown) from the plan into runbooks/<plan name>.md. No AWS calls."""

    def body():
        from cutover.compile import runbook as rb

        plan = load_plan(waves_ok=True)
        if out == "-":
            if check:
                raise UsageError("--check compares a file: --out - has none", "cutover runbook --check (or --out FILE --check)")
            if options().json:
                from cutover.outcome import Outcome

                emit("runbook", Outcome(ExitCode.OK, f"runbook for plan '{plan.name}'", data={"markdown": rb.render(plan)}))
            # Not through say(): the runbook is redacted as it is rendered (fingerprints, PII patterns), so
            # stdout is byte for byte what --out writes and --check compares.
            write(rb.render(plan), nl=False)
            return
        path = Path(out) if out is not None else Path(plan.path).parent / "runbooks" / f"{plan.name}.md"
        emit("runbook", rb.check(plan, path) if check else rb.write(plan, path))

    run("runbook", body)


def managed_policies(doc: dict) -> list[dict]:
    """The policy as IAM managed policies: `doc` itself when it fits one (6,144 characters), else the
    fewest that each fit, at most the 10 IAM attaches to a role by default; more than that: exit 2."""
    from cutover import limits
    from cutover.compile import iam

    parts = limits.split_policy(doc, placeholder=iam.PLACEHOLDER_ACCOUNT)
    if len(parts) > limits.MANAGED_POLICIES_PER_ROLE:
        size = limits.policy_size(doc, placeholder=iam.PLACEHOLDER_ACCOUNT)
        raise UsageError(f"the IAM policy for this plan would be {size:,} characters: {len(parts)} managed policies of "
                         f"{limits.MANAGED_POLICY.size:,}, over the {limits.MANAGED_POLICIES_PER_ROLE} AWS attaches to a "
                         "role by default; nothing was printed",
                         "split the flags across plans (each gets its own policy), or ask AWS to raise the role's "
                         "managed-policy quota and grant the parameters by a path wildcard written by hand")
    if len(parts) > 1:
        say(f"note: this policy is {limits.over(limits.MANAGED_POLICY, limits.policy_size(doc, iam.PLACEHOLDER_ACCOUNT))}: "
            f"printed as a JSON list of {len(parts)} managed policies, each within it; create each one and attach "
            f"all {len(parts)} to the operator's role", err=True)
    return parts


@app.command("iam-policy")
def iam_policy(
    read_only: bool = typer.Option(False, "--read-only", help="Only the reads: dry runs, preflight, status, history, rehearsals."),
    account: str = typer.Option("ACCOUNT_ID", "--account", help="AWS account id for the ARNs (default: the placeholder ACCOUNT_ID)."),
    with_guard: bool = typer.Option(False, "--guard", help="Add what `cutover guard` needs (always added when a phase has auto_rollback)."),
) -> None:
    """Print the least-privilege IAM policy (JSON; a list of managed policies when one is too large) for the plan. No AWS calls."""

    def body():
        from cutover.compile import iam

        plan = load_plan(waves_ok=True)
        if plan.targets:  # a policy per account, and each role's trust policy
            from cutover.compile.iam_targets import policies

            iam.check_account(account)
            if account == iam.PLACEHOLDER_ACCOUNT:
                say(f"note: the caller's account is the placeholder {iam.PLACEHOLDER_ACCOUNT} (targets without account:, "
                    "and who may assume the roles); replace it, or pass --account 123456789012", err=True)
            if any(t.external_id and "${" in t.external_id for t in plan.targets):
                say("note: an external_id given as ${VAR} is shown as written: put its value in the trust policy", err=True)
            doc = policies(plan, account, read_only, with_guard or any(p.auto_rollback for p in plan.phases))
            for entry in doc["accounts"]:  # each account's as managed policies that fit (usually one)
                entry["policies"] = managed_policies(entry.pop("policy"))
            write(json.dumps(doc, indent=2))
            return
        doc = iam.policy(plan, account, read_only)
        if with_guard or any(p.auto_rollback for p in plan.phases):
            from cutover.compile.guard import operator_policy

            guard_doc = operator_policy(plan, account, read_only)
            doc["Statement"] += [s for s in guard_doc["Statement"] if s["Sid"] != "IdentifyCaller"]
        if account == iam.PLACEHOLDER_ACCOUNT:
            say(f"note: the ARNs hold the placeholder account {iam.PLACEHOLDER_ACCOUNT}; replace it, "
                "or pass --account 123456789012", err=True)
        parts = managed_policies(doc)
        # The policy document itself (a list of them when it is split), with or without --json. Not through
        # say(): it holds only names from the plan, and the redactor's credential patterns would mangle ARNs
        # like ...:secret:NAME-??????.
        write(iam.render(parts[0] if len(parts) == 1 else parts))

    run("iam-policy", body)


@app.command()
def unlock(
    force: bool = typer.Option(False, "--force", help="Required: this breaks another operator's lock."),
    reason: str = typer.Option("", "--reason", help="Required: why it is safe, for the record."),
    target: Optional[str] = typer.Option(None, "--target", help="A plan with targets: the target whose lock to break."),
) -> None:
    """Break a live lock (a rollback never needs this)."""

    def body():
        from cutover.commands import orchestrator

        if not force or not reason.strip():
            raise UsageError("unlock needs --force and --reason TEXT", "cutover unlock --force --reason \"why it is safe\"")
        plan = load_plan(waves_ok=True)
        if plan.targets:  # each target has its own lock: break one, named
            from cutover.commands import waves

            if target is None:
                raise UsageError(f"{plan.path} declares {len(plan.targets)} target(s), each with its own lock; nothing was done",
                                 f"name the one to break: cutover unlock --target NAME --force --reason TEXT "
                                 f"(targets: {', '.join(t.name for t in plan.targets)})")
            emit("unlock", waves.unlock(plan, target_runtimes(plan, dry_run=False, command="unlock"), target, force, reason))
            return
        if target is not None:
            raise UsageError(f"--target {target}: {plan.path} declares no targets", "leave out --target")
        emit("unlock", orchestrator.unlock(runtime(plan, command="unlock"), force, reason))

    run("unlock", body)


@app.command()
def sandbox(port: int = typer.Option(0, "--port", callback=_port, help="Port for the emulator (default: a free one)."),
            time_scale: int = typer.Option(1, "--time-scale", metavar="N", callback=_time_scale,
                                           help="Make every bake and alarm quiet window N times shorter (in a copy of the plan).")) -> None:
    """Start an AWS emulator on 127.0.0.1 seeded from the plan, and print the exports to use it."""

    def body():
        from cutover.sandbox import rehearse

        if port and not _port_is_free(port):  # moto's server would wait for it forever
            raise UsageError(f"--port {port} is in use on 127.0.0.1", "pick another port, or leave out --port for a free one")
        rehearse.serve_sandbox(load_plan(), port, say, time_scale, say_exactly=write)

    run("sandbox", body)


@app.command("rehearse")
def rehearse_cmd() -> None:
    """Run the whole plan end to end on the embedded emulator: every phase, an incident, a rollback."""

    def body():
        from cutover.sandbox import rehearse

        plan = load_plan(waves_ok=True)
        check_evidence_dir()
        on_terminal = sys.stderr.isatty() and not options().json  # a step line as each ends, on stderr
        if plan.targets:  # every target seeded, every (phase, wave) step, a rollback of all
            from cutover.sandbox.rehearse_targets import rehearse_targets as rehearse_one
        else:
            rehearse_one = rehearse.rehearse
        emit("rehearse", rehearse_one(plan, options().evidence_dir, verbose=options().verbose,
                                      progress=(lambda line: say(line, err=True, paint=True)) if on_terminal else None))

    run("rehearse", body)


from cutover.cli.guard import guard_app  # noqa: E402  (typer only; boto3 loads inside the commands)

app.add_typer(guard_app, name="guard")


def main() -> None:
    app(prog_name="cutover")  # (also under `python -m cutover`: completion scripts and usage name `cutover`)


if __name__ == "__main__":
    main()
