"""In-memory fakes of the parameter store and identity ports, for unit tests of the core.

Integration tests use the emulator instead (tests/conftest.py); these fakes let a test script
faults precisely: stale reads, failing writes, writes applied but reported as failed.
"""

from __future__ import annotations

from datetime import datetime, timezone

from cutover.errors import AlreadyExists, AwsError, NotFound
from cutover.ports import Identity, Param, ParamVersion


class FakeParameterStore:
    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[str, str]]] = {}  # name -> [(value, type)]
        self.calls: list[tuple[str, str]] = []  # (operation, name)
        self.stale_reads = 0  # the next N reads of a written name return its previous version
        self.fail_puts: list[AwsError] = []  # raised by the next puts (before applying)
        self.lost_responses = 0  # the next N puts are applied but raise as if the response was lost
        self._stale_for: dict[str, int] = {}

    # --- ParameterStore ---
    def get_many(self, names):
        self.calls.append(("GetParameters", ",".join(names)))
        out = {}
        for n in names:
            vs = self.versions.get(n)
            if not vs:
                continue
            idx = len(vs)
            if self._stale_for.get(n, 0) > 0 and idx > 1:
                self._stale_for[n] -= 1
                idx -= 1
            value, typ = vs[idx - 1]
            out[n] = Param(n, value, idx, typ, datetime(2026, 1, 1, tzinfo=timezone.utc))
        return out

    def put(self, name, value, *, secure=False, overwrite=True):
        self.calls.append(("PutParameter", name))
        if self.fail_puts:
            raise self.fail_puts.pop(0)
        if not overwrite and name in self.versions:
            raise AlreadyExists(f"{name} exists", code="ParameterAlreadyExists")
        self.versions.setdefault(name, []).append((value, "SecureString" if secure else "String"))
        if self.stale_reads:
            self._stale_for[name] = self.stale_reads
        if self.lost_responses:
            self.lost_responses -= 1
            raise AwsError("read timeout", code="ReadTimeoutError", transient=True)
        return len(self.versions[name])

    def delete(self, name):
        self.calls.append(("DeleteParameter", name))
        self.versions.pop(name, None)

    def history(self, name):
        if name not in self.versions:
            raise NotFound(f"{name} not found")
        return [ParamVersion(name, v, i + 1, datetime(2026, 1, 1, tzinfo=timezone.utc)) for i, (v, _) in enumerate(self.versions[name])]

    # --- test helpers ---
    def value(self, name):
        vs = self.versions.get(name)
        return vs[-1][0] if vs else None

    def writes(self):
        return [n for op, n in self.calls if op == "PutParameter"]


class FakeIdentity:
    def __init__(self, arn="arn:aws:sts::123456789012:assumed-role/release/alice"):
        self.arn = arn

    def caller(self):
        return Identity(self.arn, "123456789012")
