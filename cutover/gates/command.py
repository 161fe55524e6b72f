"""command: a local program (e.g. the shadow report) must exit 0 within its timeout.

Its output is only used for the last few lines of a failure, redacted and truncated; never stored.
The child runs in its own process group so a timeout kills its children too (they would otherwise
hold the output pipe open and hang us).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess

from cutover.model import CommandCheck

from ._fail import Fail
from ._fmt import duration, one_line
from .context import GateContext

TAIL_LINES = 3
TAIL_CHARS = 240


def _tail(ctx: GateContext, output: str) -> str:
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


def check_command(check: CommandCheck, ctx: GateContext) -> str:
    argv = list(ctx.command_override or check.run)
    shown = one_line(ctx.redactor.text(shlex.join(argv)), 120)
    if not argv:
        raise Fail("no command to run", "set `run` in the plan's check")
    if not os.path.isdir(ctx.cwd):
        raise Fail(f"working directory {ctx.cwd} does not exist", "run cutover from the plan's folder, or fix --plan")
    try:
        proc = subprocess.Popen(
            argv,
            cwd=ctx.cwd,
            env=dict(ctx.env),
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
