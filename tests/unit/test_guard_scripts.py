"""The guard's in-AWS scripts are real modules: linted, imported and tested here, their source embedded in
the document as it is, and the Lambda step's read-merge-write is the same code `cutover rollback` runs."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pytest
from pyflakes.api import check
from pyflakes.reporter import Reporter

from cutover import guard_scripts
from cutover.compile import guard
from cutover.testing.clock import FakeClock
from cutover.errors import AwsError
from cutover.guard_scripts import merge_environment
from cutover.guard_scripts.merge_environment import NotSet, Retry, UpdateFailed, merge
from cutover.core.lambdaenv import EnvWriter
from cutover.plan.load import load_plan

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = ("merge_environment", "put_parameters", "verify_and_record")


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_script_is_lint_clean_self_contained_and_free_of_automation_variables(name):
    text = guard_scripts.source(name)
    out = io.StringIO()
    assert check(text, f"{name}.py", Reporter(out, out)) == 0, out.getvalue()
    assert "{{" not in text and "}}" not in text  # Automation would substitute them
    imported = {a.name.split(".")[0] for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"json", "time", "datetime", "boto3", "botocore"}, imported  # what Automation's runtime has


def test_the_document_embeds_the_modules_source():
    plan = load_plan(str(REPO / "tests/plans/e2e.yaml"))
    steps = guard.build_document(plan, "123456789012")["mainSteps"]
    scripts = {s["inputs"]["Script"] for s in steps if s["action"] == "aws:executeScript"}
    assert scripts == {Path(merge_environment.__file__).read_text(), (REPO / "cutover/guard_scripts/verify_and_record.py").read_text()}


class Environment:
    """One function's environment as merge() sees it: a revision that moves on every write; `others`
    are writes someone else makes between our read and our write."""

    def __init__(self, variables, others=(), fail=None):
        self.variables, self.revision, self.others, self.fail, self.sent = dict(variables), 1, list(others), fail, 0

    def read(self):
        return dict(self.variables), str(self.revision), self.fail if self.revision > 1 else None

    def write(self, merged, revision, attempt):
        if self.others:
            self.variables.update(self.others.pop(0))
            self.revision += 1
        if revision != str(self.revision):
            raise Retry("PreconditionFailed")
        self.variables, self.revision, self.sent = dict(merged), self.revision + 1, self.sent + 1


def test_merge_keeps_what_someone_else_wrote_meanwhile():
    env = Environment({"OTHER": "1", "FLAG": "on"}, others=[{"OTHER": "2"}, {"NEW": "x"}])
    merge({"FLAG": "off"}, env.read, env.write)
    assert env.variables == {"OTHER": "2", "NEW": "x", "FLAG": "off"} and env.sent == 1


def test_merge_gives_up_after_its_rounds_and_says_why():
    env = Environment({"FLAG": "on"}, others=[{"OTHER": str(i)} for i in range(20)])
    with pytest.raises(NotSet) as caught:
        merge({"FLAG": "off"}, env.read, env.write, attempts=3)
    assert str(caught.value) == "PreconditionFailed" and env.sent == 0


def test_merge_reports_an_update_lambda_could_not_apply():
    env = Environment({"FLAG": "on"}, fail="KMS key disabled")
    env.write = lambda merged, revision, attempt: setattr(env, "revision", env.revision + 1)  # accepted, not applied
    with pytest.raises(UpdateFailed, match="KMS key disabled"):
        merge({"FLAG": "off"}, env.read, env.write)


def test_merge_does_not_write_what_is_already_set():
    env = Environment({"FLAG": "off"})
    merge({"FLAG": "off"}, env.read, env.write)
    assert env.sent == 0


class SettlingClient:
    """What settled() and variables() need of a boto3 Lambda client."""

    def __init__(self, configs):
        self.configs = list(configs)

    def get_function_configuration(self, FunctionName):
        return self.configs.pop(0) if len(self.configs) > 1 else self.configs[0]


def test_the_script_refuses_an_environment_it_cannot_decrypt():
    client = SettlingClient([{"LastUpdateStatus": "Successful", "Environment": {"Error": {"ErrorCode": "KMSAccessDenied"}}}])
    with pytest.raises(RuntimeError, match="cannot read the environment of fn: KMSAccessDenied"):
        merge_environment.variables(merge_environment.settled(client, "fn"), "fn")


def test_the_cli_runs_the_same_loop(monkeypatch):
    """EnvWriter.apply is merge() with typed errors: a refusal every round ends in its 'after N attempts'."""
    from fakes import FakeFunctionStore

    store = FakeFunctionStore({"fn": {"FLAG": "on"}})
    store.before_update = lambda fn: store.set(fn, {**store.env[fn], "OTHER": str(store.revision[fn])})
    calls = []
    monkeypatch.setattr("cutover.core.lambdaenv.merge", lambda *a: calls.append(a) or merge(*a))
    with pytest.raises(AwsError, match="after 6 attempts"):
        EnvWriter(store, FakeClock()).apply("fn", {"FLAG": "off"})
    assert len(calls) == 1 and len(store.updates()) == 6
