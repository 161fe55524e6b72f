"""Code that runs inside AWS, in the guard's SSM Automation document (aws:executeScript, python3.11 with
boto3). Each module is a whole step's script: `guard.build_document` embeds its source as it is. So a
module here imports nothing of cutover (the standard library, and boto3 inside its handler only), holds
no double braces (Automation would take them for its variables), and is imported and tested like any
other module."""

from __future__ import annotations

from importlib import resources

RUNTIME, HANDLER = "python3.11", "handler"


def source(module: str) -> str:
    """The text of one script module, as the document embeds it."""
    return resources.files(__name__).joinpath(f"{module}.py").read_text(encoding="utf-8")
