"""What changed in the plan since the state was recorded.

The state record keeps a short fingerprint of every flag, check and phase (not the plan itself: the
record must stay under SSM's 4 KB), so an advance under a changed plan can name what changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

from cutover.model.plan import Plan


def _h(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:6]


def fingerprints(plan: Plan) -> dict[str, str]:
    items = {f"flag:{f.name}": _h(asdict(f) | {"line": None}) for f in plan.flags}
    items |= {f"check:{name}": _h(asdict(c)) for name, c in plan.checks.items()}
    items |= {f"phase:{p.name}": _h([i, asdict(p)]) for i, p in enumerate(plan.phases)}
    items["plan:settings"] = _h([plan.region, plan.state_prefix, plan.write_rate, plan.lock_lease])
    return items


def describe(old: dict[str, str] | None, new: dict[str, str]) -> str:
    """One line: which flags, checks and phases were added, removed or changed."""
    if not old:
        return "details unknown (the recorded state holds no plan fingerprints)"
    parts = []
    for label, names in (
        ("changed", [k for k in new if k in old and old[k] != new[k]]),
        ("added", [k for k in new if k not in old]),
        ("removed", [k for k in old if k not in new]),
    ):
        if names:
            parts.append(f"{label}: {', '.join(names)}")
    return "; ".join(parts) or "only comments or formatting"
