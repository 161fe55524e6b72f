"""The global options (--plan, --json, --region...) of one invocation. Each invocation makes its own
(`start`, in the app's callback), keeps it on its typer context (`ctx.obj`) and in a context variable the
helpers read (`options`): the app can run many times in one process (tests), and no module holds them."""

from __future__ import annotations

import contextvars
import dataclasses
from pathlib import Path
from typing import Optional


@dataclasses.dataclass
class Globals:
    plan: Path = Path("phases.yaml")
    region: Optional[str] = None
    profile: Optional[str] = None
    json: bool = False
    evidence_dir: Path = Path("evidence")
    verbose: bool = False
    no_color: bool = False
    region_override: bool = False


# main_options' parameter -> the Globals field it sets
GLOBAL_FIELDS = {"plan": "plan", "region": "region", "profile": "profile", "json_out": "json",
                 "evidence_dir": "evidence_dir", "verbose": "verbose", "no_color": "no_color",
                 "region_override": "region_override"}


_CURRENT: contextvars.ContextVar["Globals | None"] = contextvars.ContextVar("cutover_cli_options", default=None)


def options() -> Globals:
    """This invocation's options (the defaults outside a command, e.g. a test calling a helper)."""
    return _CURRENT.get() or Globals()


def start(ctx) -> Globals:
    """A fresh set of options for a new invocation, on its context (the app's callback)."""
    ctx.obj = Globals()
    token = _CURRENT.set(ctx.obj)
    ctx.call_on_close(lambda: _CURRENT.reset(token))  # gone with the invocation
    return ctx.obj


def take(given: dict) -> None:
    """Set the options given (before the command name or after it); the others keep their value."""
    for name, value in given.items():
        if value is not None and value is not False:
            field = GLOBAL_FIELDS[name]
            setattr(options(), field, Path(value) if isinstance(getattr(Globals, field, None), Path) else value)
