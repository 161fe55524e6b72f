"""The one way a check reports failure: raise Fail(detail, next_action); run_check turns it into a FAIL."""

from __future__ import annotations


class Fail(Exception):
    def __init__(self, detail: str, next_action: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.next_action = next_action
