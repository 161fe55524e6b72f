"""Evidence of every advance, rollback, preflight, watch and rehearse: report.json and report.md,
both passed through the one redactor before they touch the disk."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cutover.redact import REDACTOR, Redactor

SCHEMA_VERSION = 1


@dataclass
class Report:
    command: str
    run_id: str
    plan: str
    plan_digest: str
    region: str
    started_at: str
    actor: str = ""
    account: str = ""
    dry_run: bool = False
    from_state: str = ""
    to_state: str = ""
    reason: str = ""
    gates: list[dict] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # rehearse: each step and its outcome
    final_status: str = ""
    exit_code: int | None = None
    ended_at: str = ""

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}


def render_markdown(report: Report) -> str:
    r = report
    out = [
        f"# cutover {r.command}{' (dry run)' if r.dry_run else ''}: {r.final_status}",
        "",
        "| | |",
        "|---|---|",
        f"| plan | `{r.plan}` (sha256 `{r.plan_digest[:12]}`) |",
        f"| run id | `{r.run_id}` |",
        f"| actor | `{r.actor or 'unknown'}` |",
        f"| account / region | `{r.account or 'unknown'}` / `{r.region}` |",
        f"| started / ended | {r.started_at} / {r.ended_at} |",
    ]
    if r.from_state or r.to_state:
        out.append(f"| transition | `{r.from_state}` -> `{r.to_state}` |")
    if r.reason:
        out.append(f"| reason | {r.reason} |")
    out.append(f"| exit code | {r.exit_code} |")
    if r.steps:
        out += ["", "## Steps", "", "| step | expected | outcome | ok |", "|---|---|---|---|"]
        out += [f"| {s['step']} | {s['expected']} | {s['outcome']} | {'yes' if s['ok'] else 'NO'} |" for s in r.steps]
    if r.gates:
        out += ["", "## Gates", "", "| check | status | detail | next action | seconds |", "|---|---|---|---|---|"]
        out += [
            f"| {g['check']} | {g['status']} | {g['detail']} | {g.get('next_action', '')} | {g.get('duration', 0):.2f} |"
            for g in r.gates
        ]
    if r.changes:
        out += ["", "## Flag changes", "", "| flag | parameter | old | new | version | confirmed |", "|---|---|---|---|---|---|"]
        out += [
            f"| {c['flag']} | `{c['parameter']}` | `{c['old']}` | `{c['new']}` | {c.get('old_version')} -> {c.get('new_version')} | {'yes' if c.get('confirmed') else 'no'} |"
            for c in r.changes
        ]
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in r.notes]
    out += ["", f"final status: **{r.final_status}**", ""]
    return "\n".join(out)


def write(report: Report, evidence_dir: str | Path, redactor: Redactor = REDACTOR) -> Path:
    stamp = report.started_at.replace("-", "").replace(":", "").replace("+0000", "Z")
    folder = Path(evidence_dir) / f"{stamp}-{report.command}-{report.run_id}"
    folder.mkdir(parents=True, exist_ok=True)
    data = redactor.value(report.to_dict())
    (folder / "report.json").write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    (folder / "report.md").write_text(redactor.text(render_markdown(report)))
    return folder
