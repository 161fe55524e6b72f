"""Structured logging: readable lines on stderr, JSON lines to a log file, both through the redactor.

Standard library only, on purpose: every command that touches AWS, rollback included, configures the
log before its first write, and importing structlog (which pulls in rich and asyncio) cost about 0.2 s
of that start-up. The interface is structlog's, as far as cutover uses it: `get().bind(k=v)`, then
`.info/.warning/.error/.debug(event, **fields)` and `.exception(event)` inside an `except`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import traceback
from datetime import datetime, timezone
from pathlib import Path

from cutover import private
from cutover.redact import REDACTOR

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class _Tee:
    """Writes each event as a JSON line to the file and, when verbose or a warning or worse, as a
    readable line to stderr."""

    def __init__(self, verbose: bool, log_file: Path | None) -> None:
        self.verbose = verbose
        self.file = None
        self.lock = threading.Lock()  # the converger's threads log too: one whole line at a time
        if log_file is not None:
            try:  # the evidence folder 0700, the log 0600 (an older, world-readable log is tightened)
                private.make_dir(log_file.parent)
                self.file = os.fdopen(private.open_file(log_file, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
            except OSError:
                self.file = None  # no log file (a read-only folder, a path under a file): stderr still works

    def __call__(self, event: dict) -> None:
        with self.lock:
            if self.file:
                try:
                    self.file.write(json.dumps(event, default=repr) + "\n")
                    self.file.flush()
                except OSError:  # the disk filled up: stop writing the file, never stop the command
                    self.file = None
            if self.verbose or LEVELS.get(event["level"], 20) >= LEVELS["warning"]:
                with contextlib.suppress(OSError, ValueError):  # stderr closed: the file has the event
                    print(console_line(event), file=sys.stderr, flush=True)


def console_line(event: dict) -> str:
    """`TIMESTAMP [level   ] event   key=value ...`, then the traceback, if any, on its own lines."""
    fields = {k: v for k, v in event.items() if k not in ("timestamp", "level", "event", "exception")}
    line = f"{event['timestamp']} [{event['level']:<9}] {event['event']:<30}"
    line += "".join(f" {k}={v!r}" if not isinstance(v, str) else f" {k}={v}" for k, v in fields.items())
    return line.rstrip() + (f"\n{event['exception']}" if "exception" in event else "")


def _redacted(event: dict) -> dict:
    return {k: REDACTOR.value(v) if isinstance(v, (str, dict, list, tuple)) else v for k, v in event.items()}


class Logger:
    """A logger with bound fields; every call builds one event and hands it to the current sink."""

    def __init__(self, fields: dict | None = None) -> None:
        self.fields = dict(fields or {})

    def bind(self, **fields) -> Logger:
        return Logger({**self.fields, **fields})

    def log(self, level: str, event: str, exc_info: bool = False, **fields) -> None:
        record = {**self.fields, **fields, "event": event, "level": level,
                  "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")}
        if exc_info and sys.exc_info()[0] is not None:  # rendered to text first, so the redactor sees it
            record["exception"] = traceback.format_exc().rstrip()
        if _current is not None:
            _current(_redacted(record))

    def debug(self, event: str, **fields) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields) -> None:
        self.log("error", event, **fields)

    def exception(self, event: str, **fields) -> None:
        self.log("error", event, exc_info=True, **fields)


_current: _Tee | None = None


def configure(verbose: bool = False, log_file: Path | None = None) -> None:
    global _current
    if _current is not None and _current.file:
        with contextlib.suppress(OSError):  # in-process callers (tests, rehearse) configure more than once
            _current.file.close()
    _current = _Tee(verbose, log_file)


def get(name: str = "cutover") -> Logger:
    """A logger (the name is kept for callers written for structlog; events do not carry it)."""
    return Logger()
