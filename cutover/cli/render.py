"""Everything the CLI prints goes through here: the redactor, colour on a terminal, the one renderer of
an Outcome (human or --json), and the mapping of every error to one line and a contract exit code."""

from __future__ import annotations

import json
import os
import re
import sys

import typer

from cutover.cli.options import options
from cutover.errors import CutoverError
from cutover.redact import REDACTOR


def say(text: str = "", err: bool = False, paint: bool = False) -> None:
    """Print through the redactor; `paint`: colour the line by what it reports, on a terminal."""
    text = REDACTOR.text(text)
    write(colour(text) if paint and colour_on(sys.stderr if err else sys.stdout) else text, err=err)


TROUBLE = re.compile(r"\b(ALARM|MISSING|DRIFT|FAIL|FAILED|UNREADABLE|UNKNOWN)\b")
FINE = re.compile(r"\bPASS\b")


def colour(line: str) -> str:
    """Red for a line that reports trouble (an alarm, drift, a failed gate), green for a pass."""
    if TROUBLE.search(line):
        return typer.style(line, fg="red", bold=True)
    if line.lstrip().startswith("~ "):  # a change to confirm
        return typer.style(line, fg="yellow")
    return typer.style(line, fg="green") if FINE.search(line) else line


def colour_on(stream) -> bool:
    """Colour only for a person at a terminal, unless NO_COLOR (no-color.org) or --no-color says not."""
    return not (options().no_color or os.environ.get("NO_COLOR")) and stream.isatty()


def write(text: str, err: bool = False, nl: bool = True) -> None:
    """typer.echo, except that a reader who went away (`cutover status | head -3`) is not an error:
    the rest of the output is dropped and the command ends with the exit code of what it did."""
    try:
        typer.echo(text, err=err, nl=nl)
    except BrokenPipeError:
        _discard_output(sys.stderr if err else sys.stdout)


def _discard_output(stream) -> None:
    """Point the closed stream at /dev/null, so later writes and the flush at exit go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to redirect
        pass
    finally:
        os.close(devnull)


def emit(command: str, outcome, compact: bool = False) -> None:
    """Print an Outcome (human or JSON) and exit with its code."""
    if options().json:
        doc = {"command": command, "exit_code": outcome.exit_code, "ok": outcome.exit_code == 0,
               "headline": outcome.headline, **outcome.data}
        if outcome.hint:
            doc["hint"] = outcome.hint
        say(json.dumps(REDACTOR.value(doc), indent=None if compact else 2, default=str))
    else:
        say(outcome.headline, paint=True)
        where = acts_on(outcome)
        if where:
            say(f"  {where}")
        for line in outcome.lines:
            say(f"  {line}", paint=True)
        if outcome.hint:
            say(f"next: {outcome.hint}")
        if outcome.evidence_path:
            say(f"evidence: {outcome.evidence_path}")
    raise typer.Exit(outcome.exit_code)


def acts_on(outcome) -> str:
    """`account 123456789012, region us-east-2` for an outcome that acted on AWS, unless a line says it."""
    account, region = outcome.data.get("account"), outcome.data.get("region")
    if not (account and region) or any(line.startswith("account ") for line in outcome.lines):
        return ""
    return f"account {account}, region {region}"


def fail(command: str, err: CutoverError) -> None:
    if options().json:
        say(json.dumps({"command": command, "exit_code": err.exit_code, "ok": False, "headline": REDACTOR.text(err.message),
                        "error": REDACTOR.text(err.message), "hint": REDACTOR.text(err.hint)}, indent=2))
    say(f"error: {err.message}", err=True, paint=True)
    if err.hint:
        say(f"hint: {err.hint}", err=True)
    raise typer.Exit(err.exit_code)


def run(command: str, fn) -> None:
    """Run a command body, mapping every error to a one-line message and a contract exit code."""
    try:
        fn()
    except typer.Exit:
        raise
    except CutoverError as err:
        fail(command, err)
    except KeyboardInterrupt:
        fail(command, CutoverError("interrupted", "run `cutover status` to see whether anything was written; re-run or `cutover rollback`"))
    except Exception as err:  # a bug: still one line, never a traceback with local values
        if options().verbose:
            import traceback

            say(traceback.format_exc(limit=20), err=True)  # frames, no locals, and through the redactor
        fail(command, CutoverError(f"internal error: {type(err).__name__} in {command}",
                                   "run `cutover status` to see whether anything was written; re-run with -v and report it"))
