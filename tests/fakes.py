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


class FakeFunctionStore:
    """Lambda functions in memory, with the behaviours the emulator lacks: RevisionId checks, updates
    that stay InProgress for a few reads, updates that fail, responses lost after the update applied."""

    def __init__(self, functions: dict[str, dict[str, str]] | None = None) -> None:
        self.env = {name: dict(v) for name, v in (functions or {}).items()}
        self.revision = {name: 1 for name in self.env}
        self.calls: list[tuple[str, str]] = []  # (operation, function)
        self.in_progress_reads = 0  # after an update, this many reads still say InProgress
        self.fail_update: str | None = None  # after an update, LastUpdateStatus Failed with this reason
        self.lost_responses = 0  # the next N updates are applied but raise as if the response was lost
        self.before_update = None  # called (with the function name) between the caller's read and the update
        self._pending: dict[str, int] = {}

    def _config(self, name):
        from cutover.ports import FunctionConfig

        if name not in self.env:
            raise NotFound(f"function {name} not found", code="ResourceNotFoundException")
        status = "Successful"
        if self._pending.get(name, 0) > 0:
            self._pending[name] -= 1
            status = "InProgress"
        elif self.fail_update is not None and self.revision[name] > 1:
            status = "Failed"
        return FunctionConfig(name, f"arn:aws:lambda:us-east-2:123456789012:function:{name}", dict(self.env[name]),
                              str(self.revision[name]), status, self.fail_update or "" if status == "Failed" else "")

    def get(self, function):
        self.calls.append(("GetFunctionConfiguration", function))
        return self._config(function)

    def put_environment(self, function, variables, revision_id):
        from cutover.errors import RevisionConflict

        self.calls.append(("UpdateFunctionConfiguration", function))
        if self.before_update:
            self.before_update(function)
        if revision_id is not None and revision_id != str(self.revision[function]):
            raise RevisionConflict(f"function {function} changed", code="PreconditionFailedException")
        self.set(function, variables)
        applied = self._config(function)
        self._pending[function] = self.in_progress_reads  # reads from now on see the update being applied
        if self.lost_responses:
            self.lost_responses -= 1
            raise AwsError("read timeout", code="ReadTimeoutError", transient=True)
        return applied

    # --- test helpers ---
    def set(self, function, variables):
        """Replace the environment (as anyone with UpdateFunctionConfiguration can)."""
        self.env[function] = dict(variables)
        self.revision[function] += 1

    def updates(self):
        return [f for op, f in self.calls if op == "UpdateFunctionConfiguration"]


def ctrl_c_as_at_a_terminal() -> None:
    """Popen's preexec_fn for a child the test stops with SIGINT: a shell that starts a job in the
    background (`cmd &`, as a CI runner may) leaves SIGINT ignored in it and all its children, and Python
    then installs no KeyboardInterrupt. A person's Ctrl-C reaches a process with the default handling."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class FakeAutomationStarter:
    """AutomationStarter (`rollback --in-aws`): moto implements no Automation execution, let alone across
    accounts, so the use case is tested through this. Records every start; `refuse` makes start raise."""

    def __init__(self, roles=("AWS-SystemsManager-AutomationAdministrationRole",), documents=(), refuse=None) -> None:
        self.roles, self.documents, self.refuse = set(roles), set(documents), refuse
        self.started: list[dict] = []

    def role_exists(self, name: str) -> bool:
        return name in self.roles

    def document_exists(self, name: str) -> bool:
        return name in self.documents

    def start(self, document, parameters, locations, max_errors, max_concurrency) -> str:
        if self.refuse is not None:
            raise self.refuse
        self.started.append({"document": document, "parameters": parameters, "locations": locations,
                             "max_errors": max_errors, "max_concurrency": max_concurrency})
        return f"exec-{len(self.started)}"
