"""structlog set-up: readable lines on stderr, JSON lines to a log file, both through the redactor."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import structlog

from cutover import private
from cutover.redact import REDACTOR


def _redact(logger, method, event_dict):
    return {k: REDACTOR.value(v) if isinstance(v, (str, dict, list, tuple)) else v for k, v in event_dict.items()}


class _Tee:
    """Sends each rendered event to the console renderer (stderr) and the JSON renderer (file)."""

    def __init__(self, verbose: bool, log_file: Path | None) -> None:
        self.console = structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
        self.json = structlog.processors.JSONRenderer()
        self.verbose = verbose
        self.file = None
        if log_file is not None:
            try:  # the evidence folder 0700, the log 0600 (an older, world-readable log is tightened)
                private.make_dir(log_file.parent)
                self.file = os.fdopen(private.open_file(log_file, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
            except OSError:
                self.file = None  # no log file (a read-only folder, a path under a file): stderr still works

    def __call__(self, logger, method, event_dict):
        if self.file:
            try:
                self.file.write(self.json(logger, method, dict(event_dict)) + "\n")
                self.file.flush()
            except OSError:  # the disk filled up: stop writing the file, never stop the command
                self.file = None
        level = logging.getLevelName(method.upper()) if isinstance(method, str) else logging.INFO
        if self.verbose or (isinstance(level, int) and level >= logging.WARNING):
            return self.console(logger, method, event_dict)
        raise structlog.DropEvent


_current: _Tee | None = None


def configure(verbose: bool = False, log_file: Path | None = None) -> None:
    global _current
    if _current is not None and _current.file:
        with contextlib.suppress(OSError):  # in-process callers (tests, rehearse) configure more than once
            _current.file.close()
    _current = _Tee(verbose, log_file)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,  # render tracebacks to text first, so the redactor sees them
            _redact,
            _current,
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


def get(name: str = "cutover"):
    return structlog.get_logger(name)
