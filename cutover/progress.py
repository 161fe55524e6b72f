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
    def begin(self, what: str, changes: list) -> None:
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

    def begin(self, what: str, changes: list) -> None:
        self.what, self.started = what, time.monotonic()
        self.planned = list(dict.fromkeys(c.name for c in changes))
        self.confirmed = []
        self._say(f"{what}: {len(self.planned)} flag(s) to write")

    def flag(self, event: str, change) -> None:
        if event != "confirmed" or self.planned is None or change.name in self.confirmed:
            return
        if change.name not in self.planned:  # written again after someone else changed it
            self.planned.append(change.name)
        self.confirmed.append(change.name)
        left = self.not_confirmed
        self._say(f"  {time.monotonic() - self.started:5.1f}s  {change.name} ({change.flag.where}) confirmed; "
                  f"{len(self.confirmed)} of {len(self.planned)} done" + (f"; left: {', '.join(left)}" if left else ""))

    @property
    def not_confirmed(self) -> list[str]:
        return [n for n in self.planned or [] if n not in self.confirmed]

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
        say(f"{progress.what} in progress: {len(progress.confirmed)} of {len(progress.planned)} restored; "
            "press Ctrl-C again to abort (flags already restored stay restored)")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
