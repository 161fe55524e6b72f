"""`cutover guard bootstrap|arm|status|disarm`: the plan's rollback armed inside AWS (alarm -> EventBridge
-> SSM Automation). A typer sub-app registered by cutover.cli.app; the use cases and AWS load inside the commands
(nothing AWS-shaped is loaded for --help)."""

from __future__ import annotations

import json
from typing import Optional

import typer

from cutover.cli.options import options
from cutover.cli.render import emit, run, say, write
from cutover.cli.wiring import confirmer, load_plan, require_yes_or_tty, runtime, target_runtimes

guard_app = typer.Typer(
    rich_markup_mode=None,  # plain help, like the main app
    no_args_is_help=True,
    help="Rollback armed inside AWS: when a plan alarm goes to ALARM, an SSM Automation rolls every flag "
    "back to its known-safe value, with no laptop awake.",
)


TARGET_HELP = "A plan with targets: this target only (default: every target)."


def _one_target_only(plan, target) -> None:
    if target is not None and not plan.targets:
        from cutover.errors import UsageError

        raise UsageError(f"--target {target}: {plan.path} declares no targets", "leave out --target")


def _connect(plan, dry_run: bool, yes: bool, command: str):
    """The use case's Runtime and the guard's AWS resources, both read-only in a dry run."""
    from cutover.adapters.aws import GuardResources

    rt = runtime(plan, dry_run=dry_run, yes=yes, command=command)
    return rt, GuardResources.connect(plan.region, options().profile, read_only=dry_run)


@guard_app.command()
def bootstrap(target: Optional[str] = typer.Option(None, "--target", help="A plan with targets: the template of this "
                                                   "target's account (its roles serve every target of that account).")) -> None:
    """Print the CloudFormation template (JSON) of the guard's two IAM roles, for an admin to apply once
    (per account, for a plan with targets). No AWS calls: the everyday operator never writes IAM."""

    def body():
        from cutover.compile import guard

        plan = load_plan(waves_ok=True)
        _one_target_only(plan, target)
        if plan.targets:
            plan = _account_plan(plan, target)
        guard.check_plan(plan)
        say(f"note: apply as an admin: {guard.bootstrap_hint(plan)}", err=True)
        # The template itself, with or without --json (it is JSON): names from the plan, never a value.
        write(json.dumps(guard.bootstrap_template(plan), indent=2))

    run("guard", body)


def _account_plan(plan, target):
    """The plan as the targets of one account see it: --target's, or the only account's."""
    from cutover.commands.guard_targets import chosen
    from cutover.errors import UsageError

    accounts = list(dict.fromkeys(t.account for t in plan.targets))
    if target is None and len(accounts) > 1:
        firsts = [next(t for t in plan.targets if t.account == a) for a in accounts]
        raise UsageError(f"{plan.path}: the targets are in {len(accounts)} accounts, each with its own two roles: "
                         "pass --target NAME for the template of that target's account",
                         "one template per account: " + "; ".join(f"--target {t.name} ({t.where})" for t in firsts))
    return plan.at_target(chosen(plan, target)[0])


@guard_app.command()
def arm(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be created or updated; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    target: Optional[str] = typer.Option(None, "--target", help=TARGET_HELP),
) -> None:
    """Create or update the guard from the plan: Automation document, EventBridge rule and target (the IAM
    roles must exist: `cutover guard bootstrap`). A plan with targets: in every target."""

    def body():
        from cutover.commands import guard
        from cutover.compile.guard import check_plan

        require_yes_or_tty(yes, dry_run, "guard arm")
        plan = load_plan(waves_ok=True)
        _one_target_only(plan, target)
        check_plan(plan)  # exit 2 before any AWS call
        if plan.targets:
            from cutover.commands import guard_targets

            runtime_for = target_runtimes(plan, dry_run=dry_run, command="guard-arm")
            emit("guard", guard_targets.arm(plan, runtime_for, dry_run, confirmer(yes), target))
            return
        rt, store = _connect(plan, dry_run, yes, "guard-arm")
        emit("guard", guard.arm(rt, store))

    run("guard", body)


@guard_app.command()
def status(
    check: bool = typer.Option(False, "--check", help="Exit 5 unless the guard is armed and matches the plan (in every target)."),
    target: Optional[str] = typer.Option(None, "--target", help=TARGET_HELP),
) -> None:
    """Whether the guard is armed, whether it matches the plan, and what it would do. Read-only. A plan with
    targets: a section per target."""

    def body():
        from cutover.commands import guard

        plan = load_plan(waves_ok=True)
        _one_target_only(plan, target)
        if plan.targets:
            from cutover.commands import guard_targets

            runtime_for = target_runtimes(plan, dry_run=True, command="guard-status")
            emit("guard", guard_targets.status(plan, runtime_for, check, target))
            return
        rt, store = _connect(plan, True, True, "guard-status")
        emit("guard", guard.status(rt, store, check=check))

    run("guard", body)


@guard_app.command()
def disarm(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; write nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    target: Optional[str] = typer.Option(None, "--target", help=TARGET_HELP),
) -> None:
    """Remove the guard: the rule's targets, the rule and the document (the bootstrap's roles stay). A plan
    with targets: in every target."""

    def body():
        from cutover.commands import guard

        require_yes_or_tty(yes, dry_run, "guard disarm")
        plan = load_plan(waves_ok=True)
        _one_target_only(plan, target)
        if plan.targets:
            from cutover.commands import guard_targets

            runtime_for = target_runtimes(plan, dry_run=dry_run, command="guard-disarm")
            emit("guard", guard_targets.disarm(plan, runtime_for, dry_run, confirmer(yes), target))
            return
        rt, store = _connect(plan, dry_run, yes, "guard-disarm")
        emit("guard", guard.disarm(rt, store))

    run("guard", body)
