"""Plays the guard in the sandbox: what EventBridge and SSM Automation do in AWS when a plan alarm fires.

The emulator stores the guard's document, rule and target (`cutover guard arm` writes them as in AWS) but
delivers no CloudWatch event to EventBridge and runs no Automation. So `cutover sandbox` watches the
emulator's alarms (`GuardPlayer`, a background thread polling DescribeAlarms) and, on a state change, plays
their part from what is armed, never from the plan: the CloudWatch event goes through the armed rule's
pattern (moto's own EventBridge matcher) and its target's input transformer; the document version the
target names is read back (GetDocument) and its steps run in order, as Automation runs them:
`aws:executeAwsApi` as the API call it names, `aws:executeScript` by running its Script's Handler in this
process with its InputPayload (the script's own boto3 reaches the emulator through AWS_ENDPOINT_URL), with
the document's {{ variables }} filled in, `maxAttempts` and `onFailure: Continue` honoured. So what the
sandbox shows is what the armed document really does.

What it cannot show: real EventBridge delivery (its latency and retries), IAM (the steps run with the
emulator's credentials, not the automation role), step timeouts, and a state change that comes and goes
between two polls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from cutover.compile import guard
from cutover.errors import CutoverError, UsageError
from cutover.model.plan import Plan

ALARM_EVENT = "CloudWatch Alarm State Change"
CREATED_STATE = "INSUFFICIENT_DATA"  # a new CloudWatch alarm starts there
POLL_SECONDS = 1.0
_AUTOMATION_ARN = re.compile(r"^arn:[^:]+:ssm:[^:]*:[^:]*:automation-definition/(?P<doc>[^:]+):(?P<version>.+)$")
_VAR = re.compile(r"\{\{\s*([A-Za-z0-9_:.-]+)\s*\}\}")


# --- the admin's part: the guard's roles -------------------------------------------------------------------
def resolve_account(node: Any, account: str, administrator: str | None = None) -> Any:
    """A CloudFormation template with its Fn::Sub of the account (and of the administrator account
    parameter, a plan with targets) applied: what CloudFormation does."""
    if isinstance(node, dict):
        if set(node) == {"Fn::Sub"}:
            return node["Fn::Sub"].replace(guard.ACCOUNT_VAR, account).replace(guard.ADMIN_ACCOUNT_VAR, administrator or account)
        return {k: resolve_account(v, account, administrator) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_account(v, account, administrator) for v in node]
    return node


def bootstrap_roles(plan: Plan, endpoint: str, role_arn: str | None = None) -> list[str]:
    """Apply `cutover guard bootstrap`'s template to the emulator, as an admin would (create the two roles,
    or bring them back to the template); the roles' names. `role_arn`: in that role's account (a target's)."""
    from cutover.sandbox.seed import EmulatorSeeder

    aws = EmulatorSeeder(endpoint, plan.region, role_arn)
    account = aws.call_api("sts", "GetCallerIdentity", {})["Account"]
    # The account that would start `rollback --in-aws`: the one the sandbox runs in without a role.
    administrator = EmulatorSeeder(endpoint, plan.region).call_api("sts", "GetCallerIdentity", {})["Account"] if role_arn else account
    made, resources = [], resolve_account(guard.bootstrap_template(plan), account, administrator)["Resources"]
    for resource in resources.values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::IAM::ManagedPolicy":  # after its role: the template lists roles first
            for ref in props["Roles"]:
                aws.attach_managed_policy(resources[ref["Ref"]]["Properties"]["RoleName"],
                                          guard.GuardArns(plan.region, account).policy(props["ManagedPolicyName"]),
                                          props["PolicyDocument"], props.get("Description", ""))
            continue
        aws.put_role(props["RoleName"], props["AssumeRolePolicyDocument"],
                     {p["PolicyName"]: p["PolicyDocument"] for p in props.get("Policies", [])},
                     props.get("Description", ""), {t["Key"]: t["Value"] for t in props.get("Tags", [])})
        made.append(props["RoleName"])
    return made


# --- EventBridge's part ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Armed:
    """What the armed rule would start: its pattern, and its target's document and version."""

    pattern: dict
    target: dict
    document: str
    version: str  # "$DEFAULT", "$LATEST" or a version number


def armed(plan: Plan, store) -> Armed | None:
    """The guard as armed in the emulator (an enabled rule with an Automation target), or None."""
    rule_name = guard.names(plan).rule
    rule = store.get_rule(rule_name)
    if rule is None or rule.get("state") != "ENABLED" or not rule.get("pattern"):
        return None
    for target in store.list_targets(rule_name):
        m = _AUTOMATION_ARN.match(target.get("Arn", ""))
        if m:
            return Armed(rule["pattern"], target, m["doc"], m["version"])
    return None


def alarm_event(name: str, state: str, previous: str, reason: str, region: str, account: str, when: datetime) -> dict:
    """A CloudWatch alarm state change, shaped as CloudWatch sends it to EventBridge."""
    stamp = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": ALARM_EVENT, "source": "aws.cloudwatch",
        "account": account, "time": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "region": region,
        "resources": [f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"],
        "detail": {"alarmName": name, "state": {"value": state, "reason": reason, "timestamp": stamp},
                   "previousState": {"value": previous, "reason": "", "timestamp": stamp}},
    }


def matches(pattern: dict, event: dict) -> bool:
    """The emulator's own EventBridge matcher (moto's), on the armed pattern."""
    from moto.events.models import EventPattern

    return EventPattern.load(json.dumps(pattern)).matches_event(event)


def _json_path(event: dict, path: str) -> Any:
    """`$.a.b` (the subset InputPathsMap entries of this kind use)."""
    if not path.startswith("$."):
        raise ValueError(f"input path {path!r} is not of the form $.a.b (the sandbox imitates only that)")
    node: Any = event
    for key in path[2:].split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def automation_parameters(target: dict, event: dict) -> dict:
    """The parameters the target passes to StartAutomationExecution: its input transformer applied to the
    event (or its constant Input)."""
    transformer = target.get("InputTransformer")
    if transformer:
        text = transformer["InputTemplate"]
        for key, path in (transformer.get("InputPathsMap") or {}).items():
            value = _json_path(event, path)
            text = text.replace(f"<{key}>", value if isinstance(value, str) else json.dumps(value))
        return json.loads(text)
    return json.loads(target["Input"]) if target.get("Input") else {}


# --- SSM Automation's part ---------------------------------------------------------------------------------
@dataclass
class Execution:
    execution_id: str
    document: str
    version: str
    alarm: str
    steps: list[tuple[str, str]] = field(default_factory=list)  # (step, "Success" | "Failed: why")
    total: int = 0  # steps in the document

    @property
    def status(self) -> str:
        """Failed when a step failed (`onFailure: Continue` or not) or some never ran, as Automation says."""
        done = len(self.steps) == self.total
        return "Success" if done and all(r == "Success" for _, r in self.steps) else "Failed"

    def line(self) -> str:
        ok = sum(r == "Success" for _, r in self.steps)
        failed = [f"{name} ({r.removeprefix('Failed: ')})" for name, r in self.steps if r != "Success"]
        return (f"guard: execution {self.execution_id} of {self.document} (version {self.version}) ended {self.status}: "
                f"{ok}/{self.total} step(s) succeeded" + (f"; failed: {'; '.join(failed)}" if failed else ""))


def parameter_values(doc: dict, params: dict) -> dict[str, str]:
    """The document's parameters as StartAutomationExecution takes them ({"Name": ["value"]}), or their
    defaults; an undeclared or missing one is refused, as AWS refuses to start."""
    declared = doc.get("parameters") or {}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise ValueError(f"parameters not declared by the document: {', '.join(unknown)}")
    values = {}
    for name, spec in declared.items():
        value = params.get(name, spec.get("default"))
        if isinstance(value, list):
            value = value[0] if len(value) == 1 else json.dumps(value)
        if value is None:
            raise ValueError(f"parameter {name} is required and was not passed")
        values[name] = str(value)
    return values


def substitute(node: Any, values: dict[str, str]) -> Any:
    """Every {{ variable }} in the step's inputs (nested ones too); an unknown one is an error."""
    if isinstance(node, dict):
        return {k: substitute(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute(v, values) for v in node]
    if not isinstance(node, str):
        return node

    def value(m: re.Match) -> str:
        if m.group(1) not in values:
            raise ValueError(f"unknown variable {{{{{m.group(1)}}}}}")
        return values[m.group(1)]

    return _VAR.sub(value, node)


def run_script(inputs: dict, context: dict) -> Any:
    """An `aws:executeScript` step: its Script in a fresh namespace, its Handler called with the
    InputPayload and the automation context."""
    if not str(inputs.get("Runtime", "")).startswith("python"):
        raise ValueError(f"runtime {inputs.get('Runtime')!r}: the sandbox runs only Python scripts")
    namespace: dict = {"__name__": "automation_script"}
    exec(compile(inputs["Script"], "<automation script step>", "exec"), namespace)  # noqa: S102 - the armed document's own
    return namespace[inputs["Handler"]](inputs.get("InputPayload") or {}, context)


def _run_step(step: dict, values: dict[str, str], aws) -> str:
    """One step, up to its maxAttempts: "Success" or "Failed: why" (one line)."""
    why = ""
    for _ in range(max(1, int(step.get("maxAttempts", 1)))):
        try:
            inputs = substitute(step.get("inputs") or {}, values)
            if step.get("action") == "aws:executeScript":
                run_script(inputs, dict(values))
            elif step.get("action") == "aws:executeAwsApi":
                aws.call_api(inputs.pop("Service"), inputs.pop("Api"), inputs)
            else:
                return f"Failed: the sandbox does not imitate {step.get('action')} steps"
            return "Success"
        except CutoverError as err:
            why = err.message
        except Exception as err:  # noqa: BLE001 - a failed step, as Automation records it
            why = f"{type(err).__name__}: {err}"
    return "Failed: " + " ".join(why.split())[:300]


def execute(doc: dict, params: dict, system: dict[str, str], aws, execution: Execution) -> Execution:
    """Run the document's mainSteps in order into `execution`: `onFailure: Continue` goes on, anything
    else stops (Abort, the default)."""
    steps = doc.get("mainSteps") or []
    execution.total = len(steps)
    values = {**parameter_values(doc, params), **system}
    for step in steps:
        result = _run_step(step, values, aws)
        execution.steps.append((step.get("name", "?"), result))
        if result != "Success" and step.get("onFailure", "Abort") != "Continue":
            break
    return execution


_SCRIPTS = threading.Lock()


@contextlib.contextmanager
def scripts_as(environment: dict[str, str]) -> Iterator[None]:
    """The document's scripts make plain boto3 clients, which in AWS run in the execution's region as the
    automation role: here, with the target's region and credentials in the environment (and boto3's default
    session made afresh, so it reads them), one execution at a time (the environment is the process's)."""
    import boto3

    with _SCRIPTS:
        saved = {k: os.environ.get(k) for k in environment}
        os.environ.update(environment)
        boto3.DEFAULT_SESSION = None
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            boto3.DEFAULT_SESSION = None


# --- the sandbox's watcher ---------------------------------------------------------------------------------
class GuardPlayer:
    """Watches the emulator's alarms; on a state change the armed rule matches, runs the armed document
    once, as EventBridge and Automation would. `poll()` is one look (tests call it); `start()` polls in a
    background thread until `stop()`."""

    def __init__(self, plan: Plan, endpoint: str, say: Callable[[str], None], *, environ=os.environ,
                 role_arn: str | None = None) -> None:
        """`plan`'s region (a target's plan: that target's); `role_arn`: the target's account, reached
        through that role (the emulator routes an assumed role's calls to its account)."""
        from cutover.sandbox.seed import EmulatorSeeder

        if environ.get("AWS_ENDPOINT_URL") != endpoint:
            # The document's scripts make their own boto3 clients: they must reach this emulator, never AWS.
            raise UsageError(f"AWS_ENDPOINT_URL is not the sandbox's emulator {endpoint}: the guard's scripts would "
                             "reach elsewhere", "point AWS_ENDPOINT_URL at the emulator (Emulator.apply_env)")
        self.plan, self.say = plan, say
        self.aws = EmulatorSeeder(endpoint, plan.region, role_arn)
        self.store = self.aws.guard_resources()
        self.executions: list[Execution] = []
        self._seen: dict[str, str] | None = None
        self._account = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    def poll(self) -> list[Execution]:
        """Compare every alarm's state with the last look (the first look only records them) and deliver
        each change; the executions it started."""
        states = self.aws.alarm_states()
        before, self._seen = self._seen, {name: a["state"] for name, a in states.items()}
        if before is None:
            return []
        ran = []
        for name, alarm in states.items():
            previous = before.get(name, CREATED_STATE)
            if alarm["state"] != previous:
                execution = self.deliver(name, alarm["state"], previous, alarm["reason"], alarm["updated"])
                ran += [execution] if execution else []
        return ran

    def deliver(self, name: str, state: str, previous: str, reason: str, when: datetime | None) -> Execution | None:
        """One state change, as EventBridge would handle it."""
        firing = state != "OK"
        target = armed(self.plan, self.store)
        if target is None:
            if firing:
                self.say(f"guard: alarm {name} in {state}, but no guard is armed here: nothing rolls back "
                         "(`cutover guard arm --yes` arms it)")
            return None
        event = alarm_event(name, state, previous, reason, self.plan.region, self.account(), when or datetime.now(timezone.utc))
        if not matches(target.pattern, event):
            if firing:
                self.say(f"guard: alarm {name} in {state}: the armed rule does not fire on it")
            return None
        self.say(f"guard: alarm {name} in {state} -> running the guard's document (as AWS would)")
        execution = self.start_automation(target, event)
        self.say(execution.line())
        return execution

    def start_automation(self, target: Armed, event: dict) -> Execution:
        """StartAutomationExecution of the target's document version, with the transformer's parameters."""
        execution = Execution(str(uuid.uuid4()), target.document, target.version, event["detail"]["alarmName"])
        self.executions.append(execution)
        try:
            version = None if target.version == "$DEFAULT" else target.version
            stored = self.store.get_document(target.document, version)
            if stored is None:
                raise ValueError(f"the target names document {target.document}, which does not exist")
            execution.version = stored.get("version") or target.version
            with scripts_as(self.aws.client_environment()):
                execute(json.loads(stored["content"]), automation_parameters(target.target, event),
                        self.system_variables(execution.execution_id), self.aws, execution)
        except (ValueError, KeyError, CutoverError) as err:  # the execution does not start, as in AWS
            why = err.message if isinstance(err, CutoverError) else str(err)
            execution.steps.append(("start", f"Failed: {why}"))
        return execution

    def account(self) -> str:
        if not self._account:
            self._account = self.aws.call_api("sts", "GetCallerIdentity", {})["Account"]
        return self._account

    def system_variables(self, execution_id: str) -> dict[str, str]:
        now = datetime.now(timezone.utc)
        return {"automation:EXECUTION_ID": execution_id, "global:ACCOUNT_ID": self.account(),
                "global:REGION": self.plan.region, "global:AWS_PARTITION": "aws",
                "global:DATE": now.strftime("%Y-%m-%d"), "global:DATE_TIME": now.strftime("%Y-%m-%d_%H.%M.%S")}

    # --- the background thread ---
    def start(self, interval: float = POLL_SECONDS) -> "GuardPlayer":
        self._thread = threading.Thread(target=self._loop, args=(interval,), name="cutover-sandbox-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self, interval: float) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
                self._last_error = ""
            except Exception as err:  # noqa: BLE001 - one line, once per kind; the watcher keeps going
                why = err.message if isinstance(err, CutoverError) else f"{type(err).__name__}: {err}"
                if why != self._last_error:
                    self.say(f"guard: could not read the alarms ({' '.join(why.split())[:200]}); still watching")
                self._last_error = why
            self._stop.wait(interval)
