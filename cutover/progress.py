"""What a long write tells a person while it runs, and what Ctrl-C does to it.

Use cases call `Progress.begin` with the flag changes they are about to write; the converger reports
each flag's events. The base class is silent (tests, the guard, `--json` off a terminal); the CLI's
`FlagProgress` counts confirmed flags, and on a terminal prints one line per flag on stderr. Only flag
names and where they live are ever printed: never a value.
"""

from __future__ import annotations

import signal
import time
from contextlib import contextmanager
from typing import Callable


class Progress:
    def begin(self, what: str, changes: list, *, rest_unread: bool = False) -> None:
        """`rest_unread`: `changes` is only the kill switch; more() adds the rest once they are read."""

    def more(self, changes: list) -> None:
        pass

    def flag(self, event: str, change) -> None:
        pass


class FlagProgress(Progress):
    def __init__(self, out: Callable[[str], None] | None = None) -> None:
        self.out = out  # where the per-flag lines go (stderr on a terminal), or None: count only
        self.what = ""
        self.planned: list[str] | None = None  # None until a write begins
        self.confirmed: list[str] = []
        self.started = 0.0
        self.rest_unread = False  # the flags after the kill switch are not read yet

    def begin(self, what: str, changes: list, *, rest_unread: bool = False) -> None:
        self.what, self.started, self.rest_unread = what, time.monotonic(), rest_unread
        self.planned = list(dict.fromkeys(c.name for c in changes))
        self.confirmed = []
        self._say(f"{what}: the kill switch first, the other flags once it is written" if rest_unread
                  else f"{what}: {len(self.planned)} flag(s) to write")

    def more(self, changes: list) -> None:
        self.rest_unread = False
        new = [n for n in dict.fromkeys(c.name for c in changes) if n not in (self.planned or [])]
        self.planned = [*(self.planned or []), *new]
        self._say(f"{self.what}: {len(new)} more flag(s) to write")

    def flag(self, event: str, change) -> None:
        if event != "confirmed" or self.planned is None or change.name in self.confirmed:
            return
        if change.name not in self.planned:  # written again after someone else changed it
            self.planned.append(change.name)
        self.confirmed.append(change.name)
        left = self.not_confirmed
        how_far = (f"{len(self.confirmed)} done; the other flags are read next" if self.rest_unread
                   else f"{len(self.confirmed)} of {len(self.planned)} done" + (f"; left: {', '.join(left)}" if left else ""))
        self._say(f"  {time.monotonic() - self.started:5.1f}s  {change.name} ({change.flag.where}) confirmed; {how_far}")

    @property
    def not_confirmed(self) -> list[str]:
        return [n for n in self.planned or [] if n not in self.confirmed]

    @property
    def so_far(self) -> str:
        """How far the write got, in words, e.g. for a Ctrl-C."""
        if self.rest_unread:
            return (f"{len(self.confirmed)} restored (the kill switch is written first; "
                    "the other flags are not read yet)")
        return f"{len(self.confirmed)} of {len(self.planned or [])} restored"

    def _say(self, line: str) -> None:
        if self.out is not None:
            self.out(line)


@contextmanager
def second_ctrl_c_aborts(progress: FlagProgress, say: Callable[[str], None]):
    """While `progress` runs a write, the first Ctrl-C only says how far it got and that a second one
    aborts it; the second raises KeyboardInterrupt. Before the write begins (reads, the confirmation
    prompt) Ctrl-C interrupts at once, as usual."""
    presses = 0

    def on_sigint(signum, frame) -> None:
        nonlocal presses
        presses += 1
        if progress.planned is None or presses > 1:
            raise KeyboardInterrupt
        say(f"{progress.what} in progress: {progress.so_far}; "
            "press Ctrl-C again to abort (flags already restored stay restored)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
