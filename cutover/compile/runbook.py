"""The on-call runbook, rendered from the plan: rollback first (with the same rollback by hand, for when
cutover itself cannot run), then prerequisites, each phase, the guard, the state diagram, exit codes and
the plan digest.

Deterministic (no timestamps, nothing read from AWS), so `cutover runbook --check` can tell a stale
committed runbook from a current one. Sensitive flag values appear as `redact.shown` displays them
(their public values, else "(sensitive)"); every other value from the plan passes the redactor's
patterns, so an email or a token in a non-sensitive value is masked too. No boto3: this is plan ->
markdown only.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Iterator

from cutover import checks as check_types
from cutover.checks import words
from cutover.compile import iam
from cutover.core import machine
from cutover.model import program
from cutover.model.plan import (
    PENDING,
    ROLLED_BACK,
    CommandCheck,
    EnvCheck,
    Flag,
    GraphqlCheck,
    HttpCheck,
    LambdaTarget,
    Phase,
    Plan,
    function_name,
)
from cutover.errors import ExitCode, UsageError
from cutover.model.durations import format_duration
from cutover.model.templates import ENV_REF
from cutover.redact import HIDDEN, MIN_REGISTERED_LEN, is_public, shown



# --- small formatting helpers ----------------------------------------------------------------------------


_safe, _code, _names = words.safe, words.code, words.names  # shared with the check types' own words


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(plan: Plan, flag: str, value: str) -> str:
    text = shown(plan.flag(flag), value)
    return text if text == HIDDEN else _safe(text)


def _lives(f: Flag) -> str:
    """Where a flag lives, for a table cell: an SSM parameter, or one variable of a Lambda function."""
    if isinstance(f.target, LambdaTarget):
        return f"Lambda {_code(f.target.function_name)}, variable {_code(f.target.variable)}"
    return f"SSM parameter {_code(f.parameter)}"


def _hidden(plan: Plan) -> Iterator[str]:
    """The sensitive values long enough to be masked in free text, longest first."""
    return (v for v in plan.sensitive_values if len(v) >= MIN_REGISTERED_LEN)


def _typed_rollbacks(plan: Plan) -> dict[str, str | None]:
    """Each flag's rollback value exactly as a command must type it, or None when the runbook may not
    show it: a sensitive flag's value that is not public, a value the redactor would mask, or one holding
    some sensitive value (which the final pass would mask inside the command). Hidden values are found
    by their first MIN_REGISTERED_LEN characters, so the work grows with the flags, not their square."""
    by_prefix: dict[str, list[str]] = {}
    for h in _hidden(plan):
        by_prefix.setdefault(h[:MIN_REGISTERED_LEN], []).append(h)

    def holds_hidden(value: str) -> bool:
        return any(value.startswith(h, i) for i in range(len(value) - MIN_REGISTERED_LEN + 1)
                   for h in by_prefix.get(value[i:i + MIN_REGISTERED_LEN], ()))

    return {f.name: None if not is_public(f, f.rollback) or _safe(f.rollback) != f.rollback or holds_hidden(f.rollback)
            else f.rollback for f in plan.flags}


def cli_prefix(plan: Plan) -> str:
    """How to invoke cutover for this plan: the default plan file needs no --plan."""
    path = Path(plan.path)
    return "cutover" if path.name == "phases.yaml" else f"cutover --plan {shlex.quote(path.as_posix())}"


def _commands(rows: list[tuple[str, str]]) -> list[str]:
    """A sh code block, comments aligned."""
    width = max(len(cmd) for cmd, _ in rows)
    return ["```sh", *(f"{cmd.ljust(width)}  # {note}" if note else cmd for cmd, note in rows), "```"]


# --- gate descriptions: one line from each check's type and fields ---------------------------------------


def _metric_name(q) -> str:
    dims = ", ".join(f"{k}={v}" for k, v in q.dimensions.items())
    return f"{_code(_safe(q.metric))} ({_safe(q.namespace)}{', ' + _safe(dims) if dims else ''})"


def _metric(c, span: str = "") -> str:
    """A metric check in words: what is measured, over which window, and each limit."""
    from cutover.stats import number, percent, points

    span = span or f"over the {format_duration(c.window)} ending {format_duration(c.settle)} ago ({format_duration(c.period)} periods)"
    back = f"the same window {' and '.join(format_duration(o) for o in c.baseline.offsets)} back" if c.baseline else ""
    limits = []
    if c.is_rate:
        what = f"the share of {_metric_name(c.bad)} in {_metric_name(c.total)}"
        if c.max_rate is not None:
            limits.append(f"at most {percent(c.max_rate)}")
        if c.baseline:
            limits.append(f"not worse than {back} by more than {points(c.baseline.worse_by)} "
                          f"(one-sided, {100 * c.baseline.confidence:g}% confidence)")
        few = f"; fewer than {c.min_total} events in the window or the baseline is not enough data"
    else:
        what = f"the {_safe(c.value.stat)} of {_metric_name(c.value)}, its worst period,"
        limits += [f"at most {number(c.max)}"] if c.max is not None else []
        limits += [f"at least {number(c.min)}"] if c.min is not None else []
        limits += [f"at most {c.max_ratio:g} times its value {back}"] if c.max_ratio is not None else []
        few = ""
    policy = "; not enough data lets it through (inconclusive: pass)" if c.inconclusive == "pass" \
        else "; not enough data blocks"
    return f"{what} {span} is {' and '.join(limits)}{few}{policy}; a failed read blocks"


def _bounds(lim) -> str:
    from cutover.stats import number

    return " and ".join([*([f"at most {number(lim.max)}"] if lim.max is not None else []),
                         *([f"at least {number(lim.min)}"] if lim.min is not None else [])])


def _logs_query(c) -> str:
    limits = [f"{_code(_safe(name))} {_bounds(lim)}" for name, lim in c.expect.items()]
    no_rows = "no rows lets it through (inconclusive: pass)" if c.inconclusive == "pass" else "no rows blocks"
    return (f"the Logs Insights query {_code(_safe(c.query))} on {_names(c.log_groups)} over the last "
            f"{format_duration(c.window)} gives, in every row, {'; '.join(limits)}; {no_rows}; a failed query blocks")


# The types not yet in `cutover.checks.TYPES` (those describe themselves).
_DESCRIBE = {
    "metric": _metric,
    "logs_query": _logs_query,
}


def describe_check(check) -> str:
    """One human line for a check, e.g. "alarms `a`, `b` OK and quiet for 15m; no data fails"."""
    listed = check_types.by_kind().get(check.type)
    return listed.describe(check) if listed is not None else _DESCRIBE[check.type](check)


# --- sections ------------------------------------------------------------------------------------------


def _header(plan: Plan) -> list[str]:
    lines = [f"# Runbook: {plan.name}", ""]
    if plan.description:
        lines += [_safe(plan.description), ""]
    lines += [
        f"Generated by `cutover runbook` from {_code(Path(plan.path).name)}. Do not edit it by hand: change the plan,",
        f"then run `{cli_prefix(plan)} runbook` again (it rewrites this file).",
        "",
        f"Region {_code(plan.region)}. Cutover keeps its state in {_code(plan.state_parameter)} "
        f"and its lock in {_code(plan.lock_parameter)}.",
        "",
    ]
    return lines


def _rollback(plan: Plan) -> list[str]:
    cli = cli_prefix(plan)
    lines = [
        "## Roll back (read this first)",
        "",
        f"Something is wrong? Run this, from the folder that holds {_code(Path(plan.path).name)}. It needs no approval",
        "and runs no gates.",
        "",
        *_commands([(f'{cli} rollback --yes --reason "what happened"', "")]),
        "",
        "It restores these values, in this order (kill switches first):",
        "",
        "| # | flag | where it lives | restored value | what it does |",
        "|---|---|---|---|---|",
    ]
    for i, f in enumerate(plan.flags, 1):
        value = _code(_shown(plan, f.name, f.rollback))
        lines.append(f"| {i} | {f.name} | {_cell(_lives(f))} | {_cell(value)} | {_cell(_safe(f.description))} |")
    if plan.functions:
        lines += [
            "",
            "The variables of one Lambda function are changed together, in one update of its environment, when the",
            "rollback reaches the function's first flag. Every other variable of the function is kept as it is.",
        ]
    lines += [
        "",
        "- Another operator holds the lock? Run it anyway. A rollback never waits for the lock: it preempts.",
        "  A running advance stops before its next write and exits 3. You do not need `cutover unlock`.",
        "- It exits 4 (AWS error or interrupted)? Run it again. It writes only what still differs.",
    ]
    if plan.functions:
        lines += [
            "- It exits 4 and names a Lambda function? Run it again. If that function keeps failing,",
            f"  `{cli} status` shows which flags are restored; update that function by hand as described below.",
        ]
    earlier = plan.phase_names[:-1]
    if earlier:
        step_back = f'{cli} rollback --to PHASE --yes --reason "..."'
        lines.append(f"- To step back to an earlier phase instead ({_names(earlier)}): {_code(step_back)}.")
    lines += [
        "",
        "Check that it worked:",
        "",
        *_commands([(f"{cli} status --check", "")]),
        "",
        "Exit 0: every flag is at its rollback value. Exit 5: something still differs. Run the rollback again.",
        f"`{cli} history` shows who changed what, and when.",
        "",
        *_manual(plan),
    ]
    return lines


# --- the rollback by hand, for when cutover itself cannot run -----------------------------------------------


def manual_steps(plan: Plan) -> list[tuple[str, list[Flag]]]:
    """The rollback program (`program.steps`) as manual steps, in its order: consecutive SSM writes make
    one step (one command each), and each Lambda function one step (all its flags, one update)."""
    out: list[tuple[str, list[Flag]]] = []
    for step in program.steps(plan):
        if isinstance(step, program.MergeEnvironment):
            out.append(("lambda", list(step.flags)))
        elif out and out[-1][0] == "ssm":
            out[-1][1].append(step.flag)
        else:
            out.append(("ssm", [step.flag]))
    return out


def _shell_var(f: Flag) -> str:
    return "ROLLBACK_" + re.sub(r"[^A-Za-z0-9_]", "_", f.name).upper()


def _manual(plan: Plan) -> list[str]:
    plan_file = _code(Path(plan.path).name)
    region = shlex.quote(plan.region)
    lines = [
        "### If `cutover` itself cannot run",
        "",
        "Only when `cutover` cannot start at all (not installed, broken Python...). If it ran and exited with a code,",
        "follow that code above instead. This is the same rollback done by hand with the AWS CLI, with the same",
        "AWS access. Do the steps in this order (kill switches first), in one shell where you have first run:",
        "",
        *_commands([('export AWS_PAGER=""', "AWS CLI v2 would page every output (and can hang without a terminal)")]),
        "",
    ]
    typed = _typed_rollbacks(plan)
    for n, (kind, flags) in enumerate(manual_steps(plan), 1):
        lines += (_manual_ssm if kind == "ssm" else _manual_lambda)(plan, typed, n, flags, region, plan_file)
    lines += [
        "That restores the flags; the state record still names the phase you left. When `cutover` runs again, run",
        "the rollback command at the top of this page anyway: it finds the flags restored (writing none of them, or",
        "only what still differs) and records the rollback, so `status --check` exits 0 and `history` shows it.",
        "",
    ]
    return lines


def _manual_ssm(plan: Plan, typed: dict[str, str | None], n: int, flags: list[Flag], region: str, plan_file: str) -> list[str]:
    what = "parameter" if len(flags) == 1 else "parameters, one command each, in this order"
    lines = [f"**Step {n}: SSM {what}** ({_names(f.name for f in flags)}).", ""]
    hidden = [f for f in flags if typed[f.name] is None]
    if hidden:
        example = _code(_shell_var(hidden[0]) + "='...'")
        lines += [f"{_names(f.name for f in hidden)}: the value is not shown here. Copy the flag's `rollback:` value",
                  f"from {plan_file} into the shell variable its command names first, e.g. {example}.",
                  "Without it the command stops and writes nothing.", ""]
    lines.append("```sh")
    for f in flags:
        lines.append(_put_parameter(plan, typed, f, region))
    each = "It prints" if len(flags) == 1 else "Each command prints"
    lines += ["```", "", f"{each} the parameter's new `Version` when it worked.", ""]
    return lines


# The AWS CLI reads a parameter value starting with one of these from a file or a URL instead.
_CLI_LOADS = ("file://", "fileb://", "http://", "https://")


def _put_parameter(plan: Plan, typed: dict[str, str | None], f: Flag, region: str) -> str:
    kind = "SecureString" if f.secure else "String"
    value = typed[f.name]
    if value is not None and value.startswith(_CLI_LOADS):  # taken as it is from --cli-input-json
        doc = {"Name": f.parameter, "Value": value, "Type": kind, "Overwrite": True}
        return f"aws ssm put-parameter --region {region} --cli-input-json {shlex.quote(json.dumps(doc))}"
    if value is None:
        var = _shell_var(f)
        arg = f'--value "${{{var}:?set {var} to the rollback value of {f.name} in {Path(plan.path).name}}}"'
    else:  # --value=X: a value starting with "-" is not taken for an option
        arg = f"--value{'=' if value.startswith('-') else ' '}{shlex.quote(value)}"
    return f"aws ssm put-parameter --region {region} --name {shlex.quote(f.parameter)} {arg} --type {kind} --overwrite"


def _manual_lambda(plan: Plan, typed: dict[str, str | None], n: int, flags: list[Flag], region: str, plan_file: str) -> list[str]:
    target = flags[0].target
    name = target.function_name
    fn = f"--region {region} --function-name {shlex.quote(target.function)}"
    env_file = f"{name}-env.json"
    count = "its flag variable" if len(flags) == 1 else f"its {len(flags)} flag variables"
    lines = [
        f"**Step {n}: Lambda function {_code(name)}** ({_names(f.name for f in flags)}): {count} in ONE update.",
        "",
        "Careful: an update replaces the function's WHOLE environment. Sending only the variables below would",
        f"delete every other variable of {_code(name)} and break the function. So read its environment first,",
        "change only these variables, and send it all back in one update for the function (never one per variable).",
        "",
        f"a. Read the function's revision, then its environment, into {_code(env_file)} (in this order):",
        "",
        "```sh",
        f"REV=$(aws lambda get-function-configuration {fn} --query RevisionId --output text)",
        f"aws lambda get-function-configuration {fn} --query '{{Variables: Environment.Variables}}' --output json "
        f"> {shlex.quote(env_file)}",
        "```",
        "",
        '   If the file says `"Variables": null`, STOP: Lambda did not return the environment (for example, it',
        "   cannot decrypt it). Writing the flags alone would replace it: do not run step c, get help.",
        "",
        f"b. Set these variables in {_code(env_file)} and change nothing else (the command below does it: no JSON",
        "   to edit by hand):",
        "",
        "| variable | set it to |",
        "|---|---|",
    ]
    for f in flags:
        value = typed[f.name]
        why = "sensitive: not shown here" if f.sensitive else "not shown here"
        shown = (_code(json.dumps(value, ensure_ascii=False)) if value is not None else
                 f"the `rollback:` value of {_code(f.name)} in {plan_file} ({why})")
        lines.append(f"| {_code(f.target.variable)} | {_cell(shown)} |")
    visible = [f.target.variable for f in flags if not f.sensitive]
    lines += ["", *_set_variables(plan, typed, flags, env_file), ""]
    lines += [
        "c. Send it back in one update (refused if the function changed since step a), wait until Lambda has",
        "   applied it, check the variables, then delete the file: it holds the function's whole environment.",
        "",
        "```sh",
        f"aws lambda update-function-configuration {fn} --revision-id \"${{REV:?run step a first}}\" "
        f"--environment file://{shlex.quote(env_file)} --query LastUpdateStatus --output text",
        f"aws lambda wait function-updated {fn}",
    ]
    if visible:
        query = "Environment.Variables.{" + ", ".join(f"{v}: {v}" for v in visible) + "}"
        lines.append(f"aws lambda get-function-configuration {fn} --query {shlex.quote(query)} --output json")
    lines += [
        f"rm {shlex.quote(env_file)}",
        "```",
        "",
        *([f"The last `get-function-configuration` prints {_names(visible)}: each must have its value from the table"
           + (" (sensitive variables are left out, so they are not printed)." if len(visible) < len(flags) else "."),
           ""] if visible else []),
        "If a command fails:",
        "",
        "- `PreconditionFailedException`: someone changed the function after step a. Start again at step a.",
        "- `ResourceConflictException`: another update is still being applied. Run the `wait` command, then start",
        "  again at step a.",
        f"- The `wait` fails: Lambda could not apply the update. "
        f"{_code(f'aws lambda get-function-configuration {fn} --query LastUpdateStatusReason')} says why.",
        "",
    ]
    return lines


def _set_variables(plan: Plan, typed: dict[str, str | None], flags: list[Flag], env_file: str) -> list[str]:
    """Step b as a command: a Python one-off that sets the variables in the file read at step a and keeps
    every other one. A value the runbook may not show comes from a shell variable the operator sets."""
    hidden = [f for f in flags if typed[f.name] is None]
    lines = []
    if hidden:
        example = _code(_shell_var(hidden[0]) + "='...'")
        lines += [f"   First set {_names(_shell_var(f) for f in hidden)} to the `rollback:` value of "
                  f"{_names(f.name for f in hidden)} in {_code(Path(plan.path).name)}, e.g. {example}; without it the",
                  "   command stops and changes nothing.", ""]
    values = [f"    {json.dumps(f.target.variable)}: " + (json.dumps(typed[f.name], ensure_ascii=False) if typed[f.name] is not None
              else f"os.environ.get({json.dumps(_shell_var(f))}) or sys.exit({json.dumps('set ' + _shell_var(f) + ' first')}),")
              .rstrip(",") + "," for f in flags]
    return lines + [
        "```sh",
        f"{_shell_var_exports(hidden)}python3 - {shlex.quote(env_file)} <<'PY'",
        "import json, os, sys",
        "path = sys.argv[1]",
        "doc = json.load(open(path))",
        'if doc.get("Variables") is None:',
        '    sys.exit("STOP: the file holds no environment (Lambda did not return it): do not run step c")',
        'doc["Variables"].update({',
        *values,
        "})",
        'json.dump(doc, open(path, "w"))',
        "PY",
        "```",
    ]


def _shell_var_exports(hidden: list[Flag]) -> str:
    """The hidden values' shell variables are passed to Python (set, not exported, they would not be)."""
    return "".join(f'{_shell_var(f)}="${{{_shell_var(f)}}}" ' for f in hidden)


def _env_vars(plan: Plan) -> tuple[list[str], dict[str, str | None]]:
    """Env lines from env checks, and ${VAR} used in http/graphql checks -> its default (None: required)."""
    required: list[str] = []
    for c in plan.checks.values():
        if isinstance(c, EnvCheck):
            required += [_code(f"{k}={_safe(v)}") for k, v in c.equals.items()]
            required += [f"{_code(k)} set (any value)" for k in c.present]
    in_env_checks = {k for c in plan.checks.values() if isinstance(c, EnvCheck) for k in (*c.equals, *c.present)}
    refs: dict[str, str | None] = {}
    for c in plan.checks.values():
        if isinstance(c, (HttpCheck, GraphqlCheck)):
            texts = [c.url, *c.headers.values()] + ([c.query] if isinstance(c, GraphqlCheck) else [])
            for m in (m for t in texts for m in ENV_REF.finditer(t)):
                if m["default"] is None or refs.get(m["var"], "") is None:
                    refs[m["var"]] = None  # required wherever one use has no default
                else:
                    refs.setdefault(m["var"], m["default"])
    return list(dict.fromkeys(required)), {k: v for k, v in refs.items() if k not in in_env_checks}


def _where(plan: Plan) -> str:
    path = Path(plan.path)
    if path.name == "phases.yaml":
        return f"- **The plan**: run every command from the directory that holds {_code(path.name)}."
    return f"- **The plan**: run every command from the directory where {_code(path.as_posix())} is (they pass `--plan`)."


def _prerequisites(plan: Plan) -> list[str]:
    inv, cli = iam.inventory(plan), cli_prefix(plan)  # the checks' resources (the flags are in the rollback table)
    lines = [
        "## Before you start",
        "",
        f"- **AWS access** in region {_code(plan.region)} (`AWS_PROFILE` or `--profile`). The IAM policy to grant:",
        f"  {_code(f'{cli} iam-policy --account ACCOUNT')} to step phases and roll back;",
        f"  {_code(f'{cli} iam-policy --read-only --account ACCOUNT')} for dry runs, preflight, status and rehearsals.",
        _where(plan) + f" {_code(f'{cli} validate')} checks it.",
    ]
    required, refs = _env_vars(plan)
    if required or refs:
        lines.append("- **Your shell** must have:")
        lines += [f"  - {r}" for r in required]
        for var, default in refs.items():
            note = "set (used in a check URL)" if default is None else f"optional (default {_code(_safe(default))})"
            lines.append(f"  - {_code(var)} {note}")
    if inv.secrets_read:
        lines.append(f"- **Secrets** (Secrets Manager) that must exist and decrypt: {_names(inv.secrets_read)}")
    if inv.secrets_described:
        lines.append(f"- **Secrets** that must exist (not read): {_names(inv.secrets_described)}")
    if inv.alarm_names or inv.alarm_prefixes:
        alarms = [*map(_code, inv.alarm_names), *(f"every alarm named {_code(p + '*')}" for p in inv.alarm_prefixes)]
        lines.append(f"- **Alarms** (CloudWatch): {', '.join(alarms)}")
    if inv.log_groups:
        lines.append(f"- **Log groups** (CloudWatch Logs): {_names(inv.log_groups)}")
    if inv.change_calendars:
        lines.append(f"- **Change calendars** (SSM Change Calendar, read with GetCalendarState): {_names(inv.change_calendars)}")
    if plan.functions:
        names = _names(dict.fromkeys(function_name(fn) for fn in plan.functions))
        lines.append(f"- **Lambda functions** whose environment holds flags: {names}. Cutover reads their configuration"
                     " and updates their environment variables.")
        lines.append(_kms_line(plan, inv))
    lines.append("- **Rollback readiness**: before every advance (and in `preflight`) cutover checks that a rollback "
                 "could restore every flag: each target readable now and, where IAM lets you simulate it, the "
                 "rollback's calls allowed for you and the guard's role. If not, the advance stops (exit 1) naming the target.")
    if plan.notify_topic:
        lines.append(f"- **Notifications**: every state change and rollback is posted to SNS topic {_code(plan.notify_topic)}.")
    commands = [c for c in plan.checks.values() if isinstance(c, CommandCheck)]
    if commands:
        lines.append(f"- **Local commands** the gates run: {', '.join(_code(_safe(shlex.join(c.run))) for c in commands)}")
    return lines + [""]


def _kms_line(plan: Plan, inv: iam.Inventory) -> str:
    """What a customer managed key on a function's environment needs."""
    if not inv.lambda_keys:
        return ("- **KMS**: the plan names no `kms_key`, so the functions' environments must use Lambda's own key. "
                "If one uses a customer managed key, every advance stops until the plan names it as `kms_key` on "
                "that function's flags (then re-grant `iam-policy` and re-apply `guard bootstrap`).")
    keyed = [f"{_code(function_name(fn))} under {_code(k)}" for fn, k in plan.function_keys.items() if k]
    return (f"- **KMS**: {', '.join(keyed)}. Reading and writing such an environment needs `kms:Decrypt` and "
            "`kms:Encrypt` on the key through Lambda: `iam-policy` and the guard's role grant exactly that (and the "
            "key's policy must allow it too).")


def _flag_changes(plan: Plan, source: str, before: dict[str, str], after: dict[str, str]) -> list[str]:
    changed = [f for f in plan.flags if before[f.name] != after[f.name]]
    if not changed:
        kept = "its rollback value" if before == plan.rollback_values() else f"its {source} value"
        return [f"No flag changes: every flag keeps {kept}."]
    lines = ["| flag | from | to |", "|---|---|---|"]
    for f in changed:
        old, new = _shown(plan, f.name, before[f.name]), _shown(plan, f.name, after[f.name])
        lines.append(f"| {f.name} | {_cell(_code(old))} | {_cell(_code(new))} |")
    return lines


def _phase(plan: Plan, index: int, phase: Phase, before: dict[str, str]) -> list[str]:
    cli = cli_prefix(plan)
    sources = [PENDING, ROLLED_BACK] if index == 0 else [plan.phases[index - 1].name]
    lines = [f"### Phase {index}: {phase.name}", ""]
    if phase.description:
        lines += [_safe(phase.description.rstrip(".")) + ".", ""]
    last = index == len(plan.phases) - 1
    after = "before you call the cutover done" if last else "before the next advance"
    bake = f"hold {format_duration(phase.bake)} with alarms quiet {after}" if phase.bake else f"none: nothing to wait for {after}"
    lines += [
        f"- **Enter from**: {' or '.join(map(_code, sources))}.",
        *_approval(phase, sources[0]),
        f"- **Bake**: {bake}.",
        "",
        f"**Flags** ({_code(sources[0])} -> {_code(phase.name)}):",
        "",
        *_flag_changes(plan, sources[0], before, plan.values_for(phase.name)),
        "",
        "**Gates** (all must pass, or nothing is written):",
        "",
    ]
    for name in phase.gates:
        check = plan.checks[name]
        lines.append(f"- {_code(name)} ({check.type}): {describe_check(check)}")
        listed = check_types.by_kind().get(check.type)
        lines += listed.details(check) if listed is not None else []
    if not phase.gates:
        lines.append("- none")
    reason = ' --reason "CHANGE-TICKET"'
    approve = " --approve" + reason if phase.approval else ""  # approval is checked in dry runs too
    watch_note = f"through the {format_duration(phase.bake)} bake; rolls back on ALARM or drift" if phase.bake \
        else "alarms and drift; rolls back on ALARM or drift"
    lines += [
        "",
        "**Commands**:",
        "",
        *_commands([
            (f"{cli} status", f"phase must be {' or '.join(sources)}"),
            (f"{cli} preflight --phase {phase.name}", "gates only; prints overall_status PASS|FAIL"),
            (f"{cli} advance --dry-run{approve}", "gates, and the flags that would change"),
            (f"{cli} advance{approve or reason}", f"enter {phase.name} (asks to confirm)"),
            (f"{cli} watch --auto-rollback", watch_note),
        ]),
        "",
        *_watch(plan, index, phase, cli),
        "",
    ]
    return lines


def _approval(phase: Phase, previous: str) -> list[str]:
    if not phase.approval:
        return ["- **Approval**: not needed."]
    lines = ["- **Approval**: required. Add `--approve` and `--reason` (the dry run needs them too)."]
    if phase.approvers:
        lines.append(f"  Only an identity matching {_names(map(_safe, phase.approvers))} may approve.")
    if phase.separate_approver:
        lines.append(f"  The approver must not be whoever entered {_code(previous)} (four eyes).")
    return lines


def _watch(plan: Plan, index: int, phase: Phase, cli: str) -> list[str]:
    alarms = [a for c in plan.alarm_checks(phase.name) for a in
              [*map(_code, c.names), *([f"every alarm named {_code(c.prefix + '*')}"] if c.prefix else [])]]
    what = (f"alarms {', '.join(dict.fromkeys(alarms))} stay OK, and no flag drifts from the values above."
            if alarms else "this phase has no alarms gate, so watch your dashboards. No flag may drift from the values above.")
    last = index == len(plan.phases) - 1
    done = "the cutover is complete" if last else f"the next advance ({plan.phases[index + 1].name}) may start"
    auto = ["This phase rolls back on its own on ALARM or drift (`auto_rollback: true`), even without "
            "`--auto-rollback`."] if phase.auto_rollback else []
    judged = [f"- {_code(c.name)}: {_metric(c, 'over the bake so far')}" for c in plan.watch_checks(phase.name)]
    if judged:
        judged = ["Every poll also judges these metric checks over the bake so far, with a sequential test (a "
                  "sustained rise fails like an alarm in ALARM; repeated polls do not raise false alarms):", "",
                  *judged, ""]
    return [
        f"**Watch**: {what}",
        *judged,
        *auto,
        f"`{cli} watch` exits 0 when the bake is over and quiet: {done}.",
        "Exit 6: it rolled back. Run the check in the rollback section.",
    ]


def _phases(plan: Plan) -> list[str]:
    order = " -> ".join([PENDING, *plan.phase_names])
    lines = ["## Phases", "", f"In order: {order}. One `advance` enters one phase, only when its gates pass.", ""]
    before = plan.rollback_values()
    for i, phase in enumerate(plan.phases):
        lines += _phase(plan, i, phase, before)
        before = plan.values_for(phase.name)
    return lines


def _fires_on(plan: Plan) -> list[str]:
    """When the guard fires: per alarms check's insufficient_data policy (the stricter wins)."""
    from cutover.compile.guard import watches

    out = []
    for w in watches(plan):
        if w.empty:
            continue
        alarms = ", ".join([*map(_code, w.names), *(f"every alarm named {_code(p + '*')}" for p in w.prefixes)])
        when = ("ALARM or INSUFFICIENT_DATA (`insufficient_data: fail`, the default: no data fails the gates too)"
                if "INSUFFICIENT_DATA" in w.states else "ALARM only (`insufficient_data: ok`)")
        out.append(f"- on {when}: {alarms}")
    return out


def _guard(plan: Plan) -> list[str]:
    """The rollback armed inside AWS: when it fires, what it does, its one-time bootstrap, and how to
    stand it down for planned work."""
    from cutover.compile.guard import names, stack_name

    cli = cli_prefix(plan)
    auto = [p.name for p in plan.phases if p.auto_rollback]
    told = (f" SNS topic {_code(plan.notify_topic)} is told which flags are still live (names, never values),"
            if plan.notify_topic else "")
    n = names(plan)
    lines = [
        "## The guard (rollback armed inside AWS)",
        "",
        "When armed, a plan alarm changing state starts an SSM Automation that writes every flag back to the",
        "rollback values above, in the same order. It fires:",
        "",
        *_fires_on(plan),
        "",
        *(["A Lambda function's variables are written as `cutover rollback` writes them: in one update that keeps",
           "every other variable of the function."] if plan.functions else []),
        "",
        "Every flag is attempted, whatever fails before it. Then it reads every flag back: only if all are restored",
        "does it record the state as `rolled_back` with the alarm as the reason. Otherwise it records the rollback as",
        f"unfinished (`rolling_back`),{told} and the execution fails: run `{cli} rollback --yes --reason \"guard unfinished\"`",
        "(`cutover status` shows which flags). Nobody needs to be awake. It takes no lock.",
        "",
        f"Did it fire? `{cli} history` shows a change by `guard` (the automation role) with the alarm in its reason;",
        "the executions themselves: "
        + _code(f"aws ssm describe-automation-executions --region {plan.region} --filters "
                f"Key=DocumentNamePrefix,Values={n.document}"),
        "",
        ("Entering " + ", ".join(auto) + " arms it first (`auto_rollback: true`); if it cannot be armed, the phase "
         "is not entered." if auto else "No phase arms it automatically; arm it by hand if you want it."),
        "",
        f"**Bootstrap, once, by an admin.** The guard runs as two IAM roles ({_code(n.automation_role)}, "
        f"{_code(n.events_role)}) that operators never write (whoever may write a role's policy may make it admin).",
        f"An admin creates them from the CloudFormation template `{cli} guard bootstrap` prints (it calls no AWS API),",
        "and re-applies it when `guard status` says the roles differ (a plan change of flags, functions, `kms_key` or topic):",
        "",
        "```sh",
        f"{cli} guard bootstrap > guard-roles.json",
        f"aws cloudformation deploy --template-file guard-roles.json --stack-name {stack_name(plan)} \\",
        f"    --capabilities CAPABILITY_NAMED_IAM --region {plan.region}",
        "```",
        "",
        *_commands([
            (f"{cli} guard status", "armed? matching this plan? what it would do"),
            (f"{cli} guard arm --dry-run", "what arming would create or change"),
            (f"{cli} guard arm --yes", "arm it (again after every plan change)"),
            (f"{cli} guard disarm --yes", "stand it down before planned work that trips alarms"),
        ]),
        "",
        "After planned work, set the alarms back to OK and re-arm it.",
        "",
    ]
    return lines


def _diagram(plan: Plan) -> list[str]:
    return [
        "## State diagram",
        "",
        "Drawn from the same transition table the state machine uses.",
        "",
        "```mermaid",
        *machine.mermaid(plan).rstrip("\n").split("\n"),
        "```",
        "",
    ]


def _exit_codes() -> list[str]:
    return ["## Exit codes", "", "Every command uses the same codes.", "", *ExitCode.table(), ""]


def _digest(plan: Plan) -> list[str]:
    return [
        "## Plan",
        "",
        f"Rendered from {_code(Path(plan.path).name)} (plan {_code(plan.name)}), sha256:",
        "",
        f"    {plan.digest}",
        "",
        "`cutover validate` prints the first 12 characters. If they differ, this runbook is stale: render it again.",
    ]


def render(plan: Plan) -> str:
    """The runbook as markdown. Same plan file, same text."""
    sections = [_header(plan), _rollback(plan), _prerequisites(plan), _phases(plan), _guard(plan), _diagram(plan),
                _exit_codes(), _digest(plan)]
    text = "\n".join(line for section in sections for line in section) + "\n"
    # Flag values are hidden where shown; this also catches a sensitive value quoted in free text
    # (a description, a command). Short values ("none", "*") are ordinary words: as the redactor does.
    for value in _hidden(plan):
        text = text.replace(value, HIDDEN)
    return text


# --- the command: write, or check a committed runbook ----------------------------------------------------

DIFF_LINES = 20  # enough to see what changed; the fix is the same whatever the size


def write(plan: Plan, out: Path):
    """Write the runbook to `out` (bytes, so line endings never differ by platform)."""
    from cutover.outcome import Outcome

    text = render(plan)
    old = _read(out)
    if old == text:
        return Outcome(ExitCode.OK, f"{out}: unchanged (already current for {Path(plan.path).name})",
                       data={"path": str(out), "changed": False, "digest": plan.digest})
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(text.encode("utf-8"))
    except OSError as e:
        raise UsageError(f"cannot write {out}: {e.strerror or e}", "check the path and its permissions") from None
    return Outcome(ExitCode.OK, f"wrote {out} ({len(text.splitlines())} lines) from {Path(plan.path).name}",
                   data={"path": str(out), "changed": True, "digest": plan.digest})


def check(plan: Plan, out: Path):
    """Exit 0 when `out` is exactly a fresh render, 1 (with how to fix it) when not. Writes nothing."""
    from cutover.outcome import Outcome

    text, old = render(plan), _read(out)
    fix = f"re-run without --check to rewrite it, then commit it: {cli_prefix(plan)} runbook --out {out}"
    data = {"path": str(out), "current": old == text, "digest": plan.digest}
    if old is None:
        return Outcome(ExitCode.GATE_FAILED, f"{out} does not exist", data=data, hint=fix)
    if old == text:
        return Outcome(ExitCode.OK, f"{out} is current: it matches a fresh render of {Path(plan.path).name}", data=data)
    line = first_difference(old, text)
    data["first_difference_line"] = line
    return Outcome(ExitCode.GATE_FAILED,
                   f"{out} is stale: it differs from a fresh render of {Path(plan.path).name} (first at line {line})",
                   _diff(old, text, str(out)), data, hint=fix)


def _read(path: Path) -> str | None:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""  # not our text: stale, and rewritten by a plain --out
    except OSError as e:  # a directory, no permission...
        raise UsageError(f"cannot read {path}: {e.strerror or e}", "pass --out FILE, a markdown file") from None


def _diff(old: str, new: str, name: str) -> list[str]:
    import difflib

    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"{name} (committed)", "fresh render", lineterm="", n=1))
    more = len(lines) - DIFF_LINES
    return lines[:DIFF_LINES] + ([f"... {more} more diff lines"] if more > 0 else [])


def first_difference(old: str, new: str) -> int | None:
    """The 1-based line where two texts first differ; None when equal."""
    if old == new:
        return None
    a, b = old.splitlines(), new.splitlines()
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return i
    return min(len(a), len(b)) + 1
