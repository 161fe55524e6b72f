"""command: a local program (e.g. the shadow report) must exit 0 within its timeout.

Its output is only used for the last few lines of a failure, redacted and truncated; never stored.
The child runs in its own process group so a timeout kills its children too (they would otherwise
hold the output pipe open and hang us).

The program is not trusted with the operator's session: it gets a minimal environment (`child_env`),
AWS credentials only when the check says `aws_credentials: true`, and in a dry run it runs only when
the check says `read_only: true` (otherwise it is SKIPPED: a dry run writes nothing, and cutover
cannot know what a program writes).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import shlex
import signal
from typing import TYPE_CHECKING, Iterator

from cutover.checks.fmt import duration, one_line
from cutover.checks.interface import ENV_NAME, CheckType, Fail, Need, Problem, Skip, fragment, list_of, text
from cutover.checks.words import code, safe
from cutover.model.durations import format_duration


@dataclass(frozen=True)
class CommandCheck:
    name: str
    run: tuple[str, ...]
    timeout: float = 600.0
    env: tuple[str, ...] = ()  # variables passed through from the operator's environment (beyond PATH, HOME, LANG)
    aws_credentials: bool = False  # pass the operator's AWS credentials (AWS_*) through
    read_only: bool = False  # the program changes nothing: it may run in a dry run (advance --dry-run, preflight)
    type: str = "command"


if TYPE_CHECKING:
    import subprocess

TAIL_LINES = 3
TAIL_CHARS = 240
# Passed to every program: where programs are, the home folder, and the locale (LC_ALL and LC_CTYPE
# override LANG: without them a program could decode its input or encode its output differently
# than when run by hand). TERM is not: the program's output is a pipe, not a terminal.
BASE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE")
# HOME is passed, so without these the AWS SDKs would still find ~/.aws/credentials, ~/.aws/config and
# the instance's role (the metadata service): point them nowhere.
NO_AWS = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}


def child_env(check: CommandCheck, env) -> dict[str, str]:
    """The program's environment: BASE_ENV and the check's `env:` names from the operator's, plus every
    AWS_* variable only with `aws_credentials: true`."""
    names = [*BASE_ENV, *(n for n in check.env if check.aws_credentials or not n.startswith("AWS_"))]
    out = {n: env[n] for n in names if n in env}
    if check.aws_credentials:
        return out | {k: v for k, v in env.items() if k.startswith("AWS_")}
    return out | NO_AWS


def _tail(ctx, output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()][-TAIL_LINES:]
    return one_line(ctx.redactor.text(" | ".join(lines)), TAIL_CHARS) if lines else "(no output)"


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except ProcessLookupError:
        pass


def _run(check: CommandCheck, ctx) -> str:
    import subprocess  # on use: loading a plan (validate, a rollback) does not pay for it

    argv = list(ctx.command_override or check.run)
    shown = one_line(ctx.redactor.text(shlex.join(argv)), 120)
    if not argv:
        raise Fail("no command to run", "set `run` in the plan's check")
    if ctx.dry_run and not check.read_only and ctx.command_override is None:
        raise Skip(
            f"not run in a dry run: the check is not marked read_only ({shown})",
            "a real advance runs it before any write; if the program only reads, add read_only: true to the check",
        )
    if not os.path.isdir(ctx.cwd):
        raise Fail(f"working directory {ctx.cwd} does not exist", "run cutover from the plan's folder, or fix --plan")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ctx.cwd,
            env=child_env(check, ctx.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise Fail(f"command not found: {argv[0]} (cwd {ctx.cwd})", f"install {argv[0]} or fix `run` in the plan (is it on PATH?)") from None
    except PermissionError:
        raise Fail(f"command not executable: {argv[0]}", f"chmod +x {argv[0]} or run it through its interpreter in the plan") from None
    try:
        out, _ = proc.communicate(timeout=check.timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc)
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a grandchild in its own session still holds the pipe
            out = b""
        raise Fail(
            f"still running after {duration(check.timeout)}, killed; last output: {_tail(ctx, _decode(out))}",
            f"run `{shown}` by hand in {ctx.cwd} to see why it hangs, then re-run",
        ) from None
    text = _decode(out)
    if proc.returncode == 0:
        return f"exit 0 ({shown})"
    if proc.returncode < 0:
        how = f"killed by signal {_signal_name(-proc.returncode)}"
    else:
        how = f"exit {proc.returncode}"
    raise Fail(f"{how}; last output: {_tail(ctx, text)}", f"run `{shown}` by hand in {ctx.cwd} and fix what it reports, then re-run")


def _decode(out: bytes | None) -> str:
    return (out or b"").decode("utf-8", errors="replace")


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


class Command(CheckType):
    kind = "command"
    model = CommandCheck
    schema = fragment(
        "command",
        "command check",
        {
            "run": list_of(
                text(minLength=1, description="one argument, quoted"),
                description="the program and its arguments, e.g. [python, scripts/report.py]",
            ),
            "env": list_of(
                text(pattern=ENV_NAME, description="an environment variable name"),
                uniqueItems=True,
                description="variables passed through from the operator's environment, besides PATH, HOME, "
                "LANG, LC_ALL and LC_CTYPE (the program gets no other)",
            ),
            "aws_credentials": {
                "type": "boolean", "default": False,
                "description": "pass the operator's AWS_* variables (credentials, profile, region) to the program",
            },
            "read_only": {
                "type": "boolean", "default": False,
                "description": "the program changes nothing, so it may run in a dry run (advance --dry-run, "
                "preflight); otherwise a dry run skips it",
            },
        },
        ["run"],
        "10m",
    )

    def problems(self, check: CommandCheck, fields: dict) -> Iterator[Problem]:
        """An AWS_* name under `env` passes only with aws_credentials: true (which passes them all)."""
        if "env" not in fields or check.aws_credentials:
            return
        for i, item in enumerate(fields["env"][1].value):
            if item.value.startswith("AWS_"):
                yield (item, ("env", i), f"{item.value} is an AWS variable; the program gets them only with "
                       "aws_credentials: true", "add aws_credentials: true to the check (it passes every AWS_* "
                       "variable), or remove the name")

    run = staticmethod(_run)  # the gate, above

    def needs(self, check: CommandCheck) -> Iterator[Need]:
        yield Need("command", tuple(check.run))

    def describe(self, check: CommandCheck) -> str:
        return f"{code(safe(shlex.join(check.run)))} exits 0 within {format_duration(check.timeout)} (run from the plan's directory)"


TYPE = Command()
