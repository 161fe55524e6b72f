"""Shared fixtures. Integration tests talk to a real moto server over HTTP (boto3 with AWS_ENDPOINT_URL);
nothing here patches boto3."""

from __future__ import annotations

import pytest

REGION = "us-east-2"


@pytest.fixture(scope="session")
def emulator():
    """One moto server on 127.0.0.1 for the whole test session (moto's state is process-global)."""
    from cutover.sandbox.emulator import Emulator

    with Emulator(region=REGION) as emu:
        yield emu


@pytest.fixture
def aws_env(emulator, monkeypatch, tmp_path) -> dict[str, str]:
    """A clean emulator and an environment pointing boto3 at it (and nowhere else)."""
    emulator.reset()
    for name in emulator.UNSET + ("AWS_MAX_ATTEMPTS",):
        monkeypatch.delenv(name, raising=False)
    # Hermetic: the developer's ~/.aws must not add a profile, region or endpoint.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    env = emulator.env(REGION)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def aws_ports(aws_env):
    """Read-write AwsPorts on the clean emulator."""
    from cutover.adapters.aws import make_ports

    return make_ports(REGION, None, read_only=False)


@pytest.fixture
def http_stub():
    from cutover.sandbox.emulator import HttpStub

    with HttpStub() as stub:
        yield stub


E2E_PLAN = "tests/plans/e2e.yaml"


class SteppingClock:
    """Real wall time, but sleeping moves the clock instead of waiting: paced writes, back-offs and
    bakes take no real time, while AWS-side timestamps (alarms, log events) stay meaningful."""

    def __init__(self) -> None:
        from cutover.clock import OffsetClock

        self._inner = OffsetClock()

    def now(self):
        return self._inner.now()

    def monotonic(self):
        import time

        return time.monotonic() + self._inner.offset

    def sleep(self, seconds: float) -> None:
        self._inner.advance(max(seconds, 0))

    def advance(self, seconds: float) -> None:
        self._inner.advance(seconds)


@pytest.fixture
def e2e(aws_env, monkeypatch, tmp_path):
    """The e2e plan seeded on a clean emulator, with the operator env its gates want.

    Returns a factory of Runtimes (read-write, or read-only with dry_run=True) sharing one clock.
    """
    from pathlib import Path

    from cutover.adapters.aws import make_ports
    from cutover.commands.orchestrator import Runtime
    from cutover.plan.load import load_plan
    from cutover.sandbox.emulator import seed

    plan = load_plan(Path(__file__).parent.parent / E2E_PLAN)
    seed(plan, aws_env["AWS_ENDPOINT_URL"])
    monkeypatch.setenv("E2E_READ_ONLY", "true")
    clock = SteppingClock()

    class Factory:
        def __init__(self):
            self.plan, self.clock, self.evidence = plan, clock, tmp_path / "evidence"

        _ports: dict = {}

        def __call__(self, dry_run=False, counter=None, **kw):
            import os

            # Clients are costly to make (service models): reuse them per flavour and endpoint.
            key = (dry_run, os.environ.get("AWS_ENDPOINT_URL"))
            if counter is not None:
                ports = make_ports(plan.region, None, read_only=dry_run, counter=counter)
            else:
                ports = self._ports.get(key) or self._ports.setdefault(key, make_ports(plan.region, None, read_only=dry_run))
            return Runtime(plan=kw.pop("plan", plan), aws=ports, env=dict(os.environ), clock=kw.pop("clock", clock),
                           evidence_dir=self.evidence, dry_run=dry_run, **kw)

        def direct(self):
            """A read-only parameter store on the emulator itself (never through a fault proxy)."""
            from cutover.adapters.aws import SsmParameterStore, Clients, make_session

            if "direct" not in self._ports:
                self._ports["direct"] = SsmParameterStore(
                    Clients(make_session(plan.region, None, True), endpoint_url=aws_env["AWS_ENDPOINT_URL"]))
            return self._ports["direct"]

        def state(self):
            from cutover.core.state import StateStore

            return StateStore(plan, self.direct()).read()

        def live(self) -> dict[str, str]:
            """Live flag values of both kinds, read from the emulator itself (never through a fault proxy)."""
            from cutover.sandbox.emulator import function_environments

            got = self.direct().get_many([f.parameter for f in plan.ssm_flags])
            envs = function_environments(plan, aws_env["AWS_ENDPOINT_URL"])
            values = {f.name: got[f.parameter].value for f in plan.ssm_flags if f.parameter in got}
            for f in plan.flags:
                if f.kind == "lambda" and f.target.variable in envs[f.target.function]:
                    values[f.name] = envs[f.target.function][f.target.variable]
            return values

        def others(self) -> dict[str, dict[str, str]]:
            """Per function, the variables that are not the plan's flags (they must never change)."""
            from cutover.sandbox.emulator import function_environments

            mine = {f.target.variable for f in plan.flags if f.kind == "lambda"}
            return {fn: {k: v for k, v in env.items() if k not in mine}
                    for fn, env in function_environments(plan, aws_env["AWS_ENDPOINT_URL"]).items()}

        def set_flags(self, values: dict[str, str]) -> None:
            """Hand-edit flags in the emulator itself."""
            from cutover.sandbox.emulator import set_flags

            set_flags(plan, aws_env["AWS_ENDPOINT_URL"], values)

    return Factory()


@pytest.fixture
def fault_proxy(e2e, emulator, monkeypatch):
    """A fault-injecting proxy in front of the emulator; AWS_ENDPOINT_URL points at it (seeding and
    `e2e.live()` still go to the emulator directly)."""
    from cutover.testing.faultproxy import FaultProxy

    with FaultProxy(emulator.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        # Few botocore attempts (its back-off sleeps for real): our own retry layer, on the
        # injected clock, must carry the rest.
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
        yield proxy


class Reliability:
    """Counts cases tried and passed per fault class; scripts/reliability.py turns them into
    docs/RELIABILITY.md (written only when CUTOVER_RELIABILITY_OUT is set)."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}

    def case(self, fault_class: str, how: str):
        """`with reliability.case(...):` one case, passed if the block raises nothing."""
        from contextlib import contextmanager

        @contextmanager
        def run():
            ok = False
            try:
                yield
                ok = True
            finally:
                self.record(fault_class, how, ok)

        return run()

    def record(self, fault_class: str, how: str, passed: bool) -> None:
        row = self.rows.setdefault(fault_class, {"how": how, "tried": 0, "passed": 0})
        row["tried"] += 1
        row["passed"] += int(passed)


@pytest.fixture(scope="session")
def reliability():
    import json
    import os

    rel = Reliability()
    yield rel
    out = os.environ.get("CUTOVER_RELIABILITY_OUT")
    if out:
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # under pytest-xdist, one file per worker: OUT.gw0, ...
        with open(f"{out}.{worker}" if worker else out, "w") as f:
            json.dump(rel.rows, f, indent=2)
