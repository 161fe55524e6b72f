"""What a gate may use: AWS ports, the operator's environment, a clock, the redactor, and the
rehearsal substitutions (URL rerouting, command stubs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from cutover.clock import Clock, SystemClock
from cutover.ports import AwsPorts
from cutover.redact import REDACTOR, Redactor


@dataclass
class GateContext:
    aws: AwsPorts
    env: Mapping[str, str]
    clock: Clock = field(default_factory=SystemClock)
    redactor: Redactor = REDACTOR
    # Rehearsal/sandbox: rewrite an http/graphql URL (scheme+host) to the local stub. None = no rewrite.
    reroute_url: Callable[[str], str] | None = None
    # Rehearsal: replace a command check's argv (the program belongs to the system being cut over).
    command_override: tuple[str, ...] | None = None
    # Working directory for command checks (the plan file's folder).
    cwd: str = "."
    # A dry run (advance --dry-run, preflight): a command check runs only if the plan marks it read_only.
    dry_run: bool = False
    # The phase's bake (seconds): what a window check's `stay_open_for: bake` means. run_gates sets it.
    bake: float = 0.0
    # advance --outside-window: the operator's reason (None: no override). Window checks with
    # allow_override: true then pass while closed, saying so.
    outside_window: str | None = None
