"""From this invocation's options to what a command runs with: the plan (with --region checked), the
evidence folder, and a Runtime wired to AWS through the adapters."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import typer

from cutover.cli.options import options
from cutover.cli.render import say, write
from cutover.errors import UsageError


# The commands that act on every target of a plan with targets; the others refuse such a plan.
TARGET_COMMANDS = ("status", "preflight", "advance", "watch", "rollback", "iam-policy", "runbook", "history", "unlock",
                   "rehearse", "guard")
NOT_FOR_TARGETS = "sandbox"


def listed(names) -> str:
    """`a`, `b` and `c`."""
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1] if len(quoted) > 1 else "".join(quoted)


def load_plan(waves_ok: bool = False):
    """The --plan file, loaded (exit 2 on any error). Only `validate` and TARGET_COMMANDS take a plan with
    targets (`waves_ok`): the others cannot act on several accounts and regions yet, and acting on one of
    them would be wrong."""
    from cutover.plan.load import load_plan as _load

    plan = _load(options().plan)
    if plan.targets and not waves_ok:
        raise UsageError(f"{plan.path} declares {len(plan.targets)} target(s) in {len(plan.waves)} wave(s); this version of "
                         f"cutover acts on targets with {listed(TARGET_COMMANDS)} only; nothing was done",
                         "`cutover validate` checks the plan; for the other commands, use a plan without targets: and waves: "
                         "(its region, the caller's account)")
    if options().region:
        from cutover.regions import problem

        wrong = problem(options().region)
        if wrong:
            raise UsageError(f"--region {wrong[0]}", wrong[1])
        if options().region != plan.region and not options().region_override:  # its flags and state live in the plan's region
            raise UsageError(f"--region {options().region} is not the plan's region {plan.region} ({plan.path}); nothing was done",
                             f"leave out --region to act on {plan.region}, or add --region-override to act on {options().region} on purpose")
        plan = dataclasses.replace(plan, region=options().region)
    return plan


# Commands that end with an evidence report (the others only log).
WRITES_EVIDENCE = frozenset({"advance", "rollback", "preflight", "watch", "guard-arm", "guard-disarm"})


def check_evidence_dir(command: str = "") -> None:
    """Exit 2 before any AWS call if the evidence cannot be written: found out at the end, it would
    turn a finished advance into an error. A rollback is never stopped by it (nothing may stop a
    rollback from restoring flags): its evidence and log go to a new private temporary folder, named
    on stderr before any AWS call."""
    import tempfile

    from cutover import private
    from cutover.core import evidence

    try:
        evidence.check_dir(options().evidence_dir)
    except OSError as err:
        why = f"--evidence-dir {options().evidence_dir} {private.why_unusable(options().evidence_dir, err)}"
        if command != "rollback":
            raise UsageError(why, "pass --evidence-dir DIR, a folder cutover can create or write to (default ./evidence)") from None
        options().evidence_dir = Path(tempfile.mkdtemp(prefix="cutover-evidence-"))  # mode 0700
        write(f"warning: {why}; the rollback goes on, its evidence and log go to {options().evidence_dir}", err=True)


def check_out_file(option: str, path: Path) -> None:
    """Exit 2 before any work if `option`'s file could not be written."""
    from cutover.private import unwritable_file

    problem = unwritable_file(path)
    if problem:
        raise UsageError(f"{option} {path} {problem}", f"pass {option} FILE in a folder you can write to")


def runtime(plan, *, dry_run: bool = False, yes: bool = True, command: str = "", credentials=None, evidence_dir=None,
            one_of_targets: bool = False, clock=None):
    """The Runtime of one command on one account and region. `one_of_targets`: one target of several,
    run in parallel with the others (the log is configured once for all, and no live progress lines)."""
    from cutover import logs
    from cutover.adapters.aws import make_ports
    from cutover.clock import SystemClock
    from cutover.core.evidence import LOG_NAME
    from cutover.commands.orchestrator import Runtime

    if command in WRITES_EVIDENCE:
        check_evidence_dir(command)
    evidence_dir = evidence_dir or options().evidence_dir
    if not one_of_targets:
        logs.configure(options().verbose, evidence_dir / LOG_NAME)
    ports = make_ports(plan.region, options().profile, read_only=dry_run, credentials=credentials)
    from cutover.adapters.aws import GuardResources

    rt = Runtime(plan=plan, aws=ports, env=dict(os.environ), evidence_dir=evidence_dir, dry_run=dry_run,
                 confirm=confirmer(yes), assume_yes=yes, log=logs.get().bind(command=command), clock=clock or SystemClock(),
                 guard_store=lambda: GuardResources.connect(plan.region, options().profile, read_only=dry_run,
                                                            credentials=credentials))
    _use_sandbox_stub(rt)
    _check_account(rt)
    from cutover.progress import FlagProgress

    # One line per flag as it is confirmed, for a person at a terminal (stderr: stdout stays the result).
    # Targets run in parallel: their lines would interleave, so each target reports once, at its end.
    if not one_of_targets:
        rt.progress = FlagProgress(out=(lambda line: say(line, err=True)) if sys.stderr.isatty() else None)
    return rt


def target_runtimes(plan, *, dry_run: bool, command: str, clock=None):
    """For a plan with targets: a function from a target to its Runtime, on that target's region and
    account (its role assumed first, with its external_id, and again on `clock` before its credentials
    expire: a watch or bake outlives them), its evidence under EVIDENCE_DIR/TARGET."""
    from cutover import logs
    from cutover.adapters.aws import assume_role
    from cutover.core.evidence import LOG_NAME
    from cutover.model.templates import ENV_REF, expand_vars

    if command in WRITES_EVIDENCE:
        check_evidence_dir(command)
    logs.configure(options().verbose, options().evidence_dir / LOG_NAME)

    def runtime_for(target):
        credentials = None
        if target.role_arn:
            external_id = target.external_id
            if external_id and ENV_REF.search(external_id):
                expanded = expand_vars(external_id, os.environ)
                if ENV_REF.search(expanded):
                    raise UsageError(f"its external_id {external_id} names a variable that is not set; "
                                     "nothing was done there", "export it (the value the role's trust policy expects), then re-run")
                external_id = expanded
            credentials = assume_role(target.role_arn, external_id, target.region, options().profile, f"cutover-{command}",
                                      clock=clock)
        return runtime(plan.at_target(target), dry_run=dry_run, command=command, credentials=credentials,
                       evidence_dir=options().evidence_dir / target.name, one_of_targets=True, clock=clock)

    return runtime_for


def _check_account(rt) -> None:
    """A plan that pins `account:` acts only on that account (one read, before any write)."""
    plan = rt.plan
    if not plan.account or options().region_override:
        return
    actual = rt.identity().account
    if actual != plan.account:
        raise UsageError(f"the credentials are of account {actual}, the plan ({plan.path}) is for account {plan.account}; "
                         "nothing was done", "use credentials of the plan's account (--profile), or add --region-override "
                         f"to act on {actual} on purpose")


def _use_sandbox_stub(rt) -> None:
    """Inside `cutover sandbox`, http/graphql checks go to its local stub (CUTOVER_HTTP_STUB). Honoured
    only when AWS itself is a local emulator: a stub must never stand in for upstream APIs in a real
    account, so a leftover export there is refused rather than ignored."""
    from urllib.parse import urlsplit

    stub = os.environ.get("CUTOVER_HTTP_STUB")
    if not stub:
        return
    endpoint = urlsplit(os.environ.get("AWS_ENDPOINT_URL", "")).hostname or ""
    if endpoint not in ("127.0.0.1", "localhost", "::1"):
        raise UsageError("CUTOVER_HTTP_STUB is set but AWS_ENDPOINT_URL is not a local emulator; nothing was done",
                         "unset CUTOVER_HTTP_STUB (it belongs to `cutover sandbox` sessions only)")
    from cutover.sandbox.emulator import reroute_url

    rt.reroute_url = lambda url: reroute_url(url, stub)
    rt.notes.append(f"sandbox: http and graphql checks rerouted to the local stub {stub}")
    from cutover.sandbox.emulator import serve_open_calendars

    rt.notes += serve_open_calendars(rt.plan, rt.aws)


def confirmer(yes: bool):
    def confirm(summary: str) -> bool:
        if yes:
            return True
        for line in summary.splitlines():
            say(line, err=True, paint=True)
        try:
            return typer.confirm("Proceed?", default=False, err=True)
        except typer.Abort:  # Ctrl-C or end of input at the prompt: a "no", not an internal error
            return False

    return confirm


def require_yes_or_tty(yes: bool, dry_run: bool, what: str) -> None:
    if not (yes or dry_run or sys.stdin.isatty()):
        raise UsageError(f"{what} writes to AWS and needs --yes when not run from a terminal; nothing was written",
                         "re-run with --yes (or --dry-run to see what would change)")
