"""A saved advance: `advance --dry-run --out FILE` writes the exact decision, `advance --from FILE` applies
that decision and nothing else (the way a change board approves one thing and the night applies it).

The file names what the decision was made on, never a value: the plan's digest, account and region, the
state record's version, each SSM flag's parameter version and each flag function's RevisionId, the
phases, the changes (values as `redact.shown` displays them) and the gates' results, and when it expires.
Applying it first reads the same things again: anything different and it is refused (exit 3), nothing
written. The gates run again when it is applied: they judge the health of the moment, not of the preview.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from cutover import private
from cutover.commands.runtime import Runtime
from cutover.core import state
from cutover.core.state import StateView
from cutover.errors import Blocked, UsageError

FORMAT = "cutover-saved-advance/1"
VALID_FOR = timedelta(hours=24)


def basis(rt: Runtime, view: StateView) -> dict:
    """What an advance decides on, as versions: read again when the saved decision is applied."""
    plan = rt.plan
    params = rt.params.get_many([f.parameter for f in plan.ssm_flags])
    return {
        "plan_digest": plan.digest,
        "account": rt.identity().account,
        "region": plan.region,
        "state_version": view.version,
        "parameters": {f.parameter: params[f.parameter].version if f.parameter in params else None for f in plan.ssm_flags},
        "functions": {fn: rt.functions.get(fn).revision_id for fn in plan.functions},
    }


def save(path: Path, rt: Runtime, view: StateView, data: dict) -> None:
    """Write the dry run's decision (`data`: its phases, changes and gates) to `path`, 0600."""
    now = rt.clock.now()
    doc = {"format": FORMAT, "plan": rt.plan.name, "created_at": state.iso(now), "expires_at": state.iso(now + VALID_FOR),
           "from": data["phase"], "to": data["target"], "basis": basis(rt, view),
           "changes": data["changes"], "gates": data["gates"]}
    private.write_file(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")


def load(path: Path) -> dict:
    """The saved decision in `path` (exit 2 on a file that is not one)."""
    try:
        text = path.read_text()
    except OSError as err:  # a missing or unreadable file is not "not a saved advance": say which
        raise UsageError(f"--from {path}: cannot read it ({err.strerror or type(err).__name__})",
                         "pass the file `cutover advance --dry-run --out FILE` wrote") from None
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"--from {path}: not a saved advance ({type(err).__name__})",
                         "make one with `cutover advance --dry-run --out FILE`") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(doc.get("basis"), dict):
        raise UsageError(f"--from {path}: not a saved advance of this cutover (format {FORMAT})",
                         "make one with `cutover advance --dry-run --out FILE`")
    return doc


def check(doc: dict, rt: Runtime, view: StateView, current: str, target: str) -> None:
    """Refuse (Blocked, nothing written) unless the saved decision is still exactly the one to apply."""
    changed = []
    if doc.get("plan") != rt.plan.name:
        changed.append(f"it is for plan {doc.get('plan')!r}, not {rt.plan.name!r}")
    if (doc.get("from"), doc.get("to")) != (current, target):
        changed.append(f"it advances {doc.get('from')} -> {doc.get('to')}; the cutover is at {current} (next: {target})")
    try:
        expired = rt.clock.now() >= state.parse_iso(str(doc.get("expires_at")))
    except ValueError:
        expired = True
    if expired:
        changed.append(f"it expired at {doc.get('expires_at')}")
    saved, now = doc["basis"], basis(rt, view)
    names = {"plan_digest": "the plan file", "account": "the account", "region": "the region",
             "state_version": "the state record"}
    changed += [f"{what} changed" for key, what in names.items() if saved.get(key) != now[key]]
    for kind in ("parameters", "functions"):
        moved = sorted(k for k in {*now[kind], *(saved.get(kind) or {})} if (saved.get(kind) or {}).get(k) != now[kind].get(k))
        if moved:
            changed.append(f"live flags changed since it was saved ({', '.join(moved)})")
    if changed:
        raise Blocked(f"the saved advance no longer applies: {'; '.join(changed)}; nothing was written",
                      "review the cutover again and save a new one: cutover advance --dry-run --out FILE")
