"""Evidence of every advance, rollback, preflight, watch and rehearse: report.json (for machines, with a
schema version) and report.md (for a pull request), both passed through the one redactor before they
touch the disk.

report.json, schema_version 2: the Report fields below, plus derived `outcome` (a word for the exit
code), `duration_seconds` and `counts` (gates by status; changes written and confirmed).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from cutover import __version__, private
from cutover.redact import REDACTOR, Redactor
from cutover.errors import ExitCode

SCHEMA_VERSION = 2

OUTCOMES = {c.value: c.word for c in ExitCode}  # report.json's `outcome`
_READ_ONLY_COMMANDS = {"preflight", "status", "history", "watch"}  # "(dry run)" would say nothing there


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
    gates: list[dict] = field(default_factory=list)  # GateResult.to_dict(), in plan order
    changes: list[dict] = field(default_factory=list)  # FlagChange.to_dict(): old -> new with SSM versions
    notes: list[str] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)  # rehearse: each step and its outcome
    final_status: str = ""  # the headline
    exit_code: int | None = None
    ended_at: str = ""
    overall_status: str = ""  # preflight: PASS | FAIL
    tool_version: str = __version__

    @property
    def outcome(self) -> str:
        return OUTCOMES.get(self.exit_code, "unknown") if self.exit_code is not None else "unfinished"

    @property
    def duration_seconds(self) -> float | None:
        try:
            start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in (self.started_at, self.ended_at))
        except ValueError:
            return None
        return round((end - start).total_seconds(), 3)

    def counts(self) -> dict:
        by_status = {s: sum(1 for g in self.gates if g.get("status") == s) for s in ("PASS", "FAIL", "SKIPPED")}
        return {
            "gates": {"total": len(self.gates), "passed": by_status["PASS"], "failed": by_status["FAIL"],
                      "skipped": by_status["SKIPPED"]},
            "changes": {"total": len(self.changes), "written": sum(1 for c in self.changes if c.get("written")),
                        "confirmed": sum(1 for c in self.changes if c.get("confirmed"))},
        }

    def to_dict(self) -> dict:
        return {"schema_version": SCHEMA_VERSION, **asdict(self), "outcome": self.outcome,
                "duration_seconds": self.duration_seconds, "counts": self.counts()}


# --- markdown --------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """Text safe inside a markdown table cell: one line, pipes escaped."""
    return " ".join(str(value if value is not None else "").split()).replace("|", "\\|")


def _code(value: object) -> str:
    text = _cell(value)
    return f"`{text}`" if text else "—"


def _seconds(value: object) -> str:
    try:
        return f"{float(value):.2f}s"
    except (TypeError, ValueError):
        return "—"


def _status_word(r: Report) -> str:
    if r.overall_status:
        return r.overall_status
    return r.outcome.replace("_", " ").upper()


def summary_line(r: Report) -> str:
    """The one line a reviewer reads first."""
    c = r.counts()
    parts = [f"**{_status_word(r)}**" + (f" (exit {r.exit_code})" if r.exit_code is not None else "")]
    if r.from_state or r.to_state:
        parts.append(f"{r.from_state or '?'} → {r.to_state}" if r.command != "preflight" else f"phase {r.to_state}")
    g = c["gates"]
    if g["total"]:
        skipped = f", {g['skipped']} skipped" if g["skipped"] else ""
        parts.append(f"gates: {g['passed']} passed, {g['failed']} failed{skipped}")
    if r.command in ("advance", "rollback") or r.changes:
        ch = c["changes"]
        if not ch["total"]:
            parts.append("flags: no change")
        elif r.dry_run:
            parts.append(f"flags: {ch['total']} would change")
        else:
            parts.append(f"flags: {ch['written']} of {ch['total']} changed, {ch['confirmed']} confirmed")
    if r.duration_seconds is not None:  # the stamps have whole seconds
        parts.append(f"took {r.duration_seconds:g}s" if r.duration_seconds >= 1 else "took <1s")
    return " · ".join(parts)


def _header(r: Report) -> list[str]:
    dry = " (dry run)" if r.dry_run and r.command not in _READ_ONLY_COMMANDS and not r.final_status.startswith("dry run") else ""
    rows = [
        ("plan", f"`{_cell(r.plan)}` · sha256 `{_cell(r.plan_digest[:12])}`"),
        ("run id", _code(r.run_id)),
        ("actor", _code(r.actor or "unknown")),
        ("account / region", f"{_code(r.account or 'unknown')} / {_code(r.region)}"),
        ("started / ended (UTC)", f"{_cell(r.started_at)} / {_cell(r.ended_at) or '—'}"),
    ]
    if r.from_state or r.to_state:
        label, value = ("phase", _code(r.to_state)) if r.command == "preflight" else (
            "transition", f"{_code(r.from_state or '?')} → {_code(r.to_state)}")
        rows.append((label, value))
    if r.reason:
        rows.append(("reason", _cell(r.reason)))
    rows.append(("cutover", _code(r.tool_version)))
    out = [f"# cutover {r.command}{dry}: {_cell(r.final_status)}", "", summary_line(r), ""]
    skipped = [g["check"] for g in r.gates if g.get("status") == "SKIPPED"]
    if skipped:
        out += [f"> **Not valid for sign-off:** skipped {', '.join(skipped)}.", ""]
    out += ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    return out


def _gates(r: Report) -> list[str]:
    out = ["", "## Gates", "", "| # | check | type | status | detail | next action | time |", "|---|---|---|---|---|---|---|"]
    for i, g in enumerate(r.gates, 1):
        status = g.get("status", "")
        shown = f"**{status}**" if status == "FAIL" else status
        out.append(f"| {i} | {_cell(g.get('check'))} | {_cell(g.get('type'))} | {shown} | {_cell(g.get('detail'))} "
                   f"| {_cell(g.get('next_action')) or '—'} | {_seconds(g.get('duration'))} |")
    return out


def _version(c: dict) -> str:
    if c.get("kind") == "lambda":  # a function's environment has no per-variable version
        return "written" if c.get("written") else "(not written)"
    old, new = c.get("old_version"), c.get("new_version")
    if new is None:
        return f"v{old} (not written)" if old is not None else "(not written)"
    return f"v{old} → v{new}" if old is not None else f"(new) → v{new}"


def _changes(r: Report) -> list[str]:
    out = ["", "## Flag changes", "", "| flag | where it lives | old → new | SSM version | confirmed |", "|---|---|---|---|---|"]
    for c in r.changes:
        old = _code(c.get("old")) if c.get("old") is not None else "(missing)"
        out.append(f"| {_cell(c.get('flag'))} | {_code(c.get('target') or c.get('parameter'))} | {old} → {_code(c.get('new'))} "
                   f"| {_version(c)} | {'yes' if c.get('confirmed') else 'no'} |")
    return out


def _steps(r: Report) -> list[str]:
    out = ["", "## Steps", "", "| step | expected | outcome | ok |", "|---|---|---|---|"]
    out += [f"| {_cell(s.get('step'))} | {_cell(s.get('expected'))} | {_cell(s.get('outcome'))} | "
            f"{'yes' if s.get('ok') else '**NO**'} |" for s in r.steps]
    return out


def render_markdown(report: Report) -> str:
    """A report that reads well in a pull request. A preflight report ends with `overall_status PASS|FAIL`."""
    r = report
    out = _header(r)
    if r.steps:
        out += _steps(r)
    if r.gates:
        out += _gates(r)
    if r.changes:
        out += _changes(r)
    elif r.command in ("advance", "rollback") and r.exit_code == 0:
        out += ["", "## Flag changes", "", "None: every flag was already at its target value."]
    if r.notes:
        out += ["", "## Notes", ""] + [f"- {_cell(n)}" for n in r.notes]
    out += ["", f"final status: {_cell(r.final_status)}"]
    if r.overall_status:
        out.append(f"overall_status {r.overall_status}")
    return "\n".join(out) + "\n"


# --- writing ---------------------------------------------------------------------------------------------


LOG_NAME = "cutover.log.jsonl"  # the JSON-lines log, next to the run folders
_RUN_FOLDER = re.compile(r"\d{8}T\d{6}Z-[a-z-]+-[0-9a-z]+")


def folder_name(report: Report) -> str:
    stamp = report.started_at.replace("-", "").replace(":", "").replace("+0000", "Z")
    return f"{stamp}-{report.command}-{report.run_id}"


DRY_RUNS = "dry-runs"  # the folder the reports of --dry-run previews go to, apart from the real runs
PREVIEWS = frozenset({"advance", "rollback", "guard-arm", "guard-disarm"})  # the commands with a --dry-run


def _is_ours(name: str) -> bool:
    return (name in (LOG_NAME, LOG_NAME + ".tmp", DRY_RUNS) or name.startswith(".cutover-probe-")
            or bool(_RUN_FOLDER.fullmatch(name)))


def prepare_dir(evidence_dir: str | Path) -> Path:
    """The evidence folder, created 0700. An existing one is tightened to 0700 only when everything in
    it is cutover's (an older version left it 0755): `--evidence-dir .` or /tmp keeps its mode, while
    each run folder and the log are private anyway."""
    root = Path(evidence_dir)
    if not private.make_dir(root):
        with os.scandir(root) as entries:
            if all(_is_ours(entry.name) for entry in entries):
                private.tighten(root, private.DIR_MODE)
    return root


def check_dir(evidence_dir: str | Path) -> None:
    """Raise OSError unless evidence can be written there: create it, and write and remove a probe file."""
    root = prepare_dir(evidence_dir)
    fd, probe = tempfile.mkstemp(prefix=".cutover-probe-", dir=root)
    os.close(fd)
    os.unlink(probe)


def redacted(report: Report, redactor: Redactor = REDACTOR) -> Report:
    """A copy with every string redacted. Done field by field, before any formatting: escaping a '|' or
    folding whitespace for markdown would otherwise turn a registered value into one that no longer
    matches."""
    fields = {k: redactor.value(v) for k, v in asdict(report).items()}
    return Report(**fields)


def markdown(report: Report, redactor: Redactor = REDACTOR) -> str:
    """report.md's text, redacted (also for `preflight --out-md`)."""
    return redactor.text(render_markdown(redacted(report, redactor)))


def write(report: Report, evidence_dir: str | Path, redactor: Redactor = REDACTOR) -> Path:
    """report.json and report.md in a new 0700 run folder, each file 0600 and written atomically (a
    crash mid-write must not leave a truncated report that looks complete)."""
    root = prepare_dir(evidence_dir)
    if report.dry_run and report.command in PREVIEWS:  # previews pile up: one folder for them all
        root = prepare_dir(root / DRY_RUNS)
    folder = root / folder_name(report)
    if not private.make_dir(folder):
        private.tighten(folder, private.DIR_MODE)
    data = redactor.value(report.to_dict())
    private.write_atomic(folder / "report.json", json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    private.write_atomic(folder / "report.md", markdown(report, redactor))
    return folder


def write_or_explain(report: Report, evidence_dir: str | Path, redactor: Redactor = REDACTOR) -> tuple[str | None, str]:
    """(the run folder, "") or (None, why not): for callers whose work is done, so that a report that
    cannot be written (disk full, folder removed) is a warning, never a changed outcome."""
    try:
        return str(write(report, evidence_dir, redactor)), ""
    except OSError as err:
        return None, f"evidence could not be written: {evidence_dir} {private.why_unusable(Path(evidence_dir), err)}"
    except Exception as err:  # a bug in rendering must not undo a finished rollback's exit code either
        return None, f"evidence could not be written to {evidence_dir}: {type(err).__name__}"
