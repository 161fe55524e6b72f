"""A plan with targets (issue 17) on one emulator: two regions of the caller's account and one region of
another account, reached through an assumed role (moto routes an assumed role's calls to that role's
account). `status` shows a row per target; `rollback` restores every target, later waves first, goes on
past a target it cannot reach and names the command that retries it."""

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import Cli

ROOT = Path(__file__).resolve().parents[2]
WAVES = str(ROOT / "tests" / "plans" / "waves.yaml")
FLAG, STATE = "/waves-demo/kill_switch", "/cutover/waves-demo/state"
OTHER = "222222222222"


def store(region: str, account: str | None = None):
    """The parameter store of one target, through cutover's own adapters (a role assumed for `account`)."""
    from cutover.adapters.aws import assume_role, make_ports

    creds = assume_role(f"arn:aws:iam::{account}:role/cutover-operator", "ext-1", region, None, "test") if account else None
    return make_ports(region, None, read_only=False, credentials=creds).params


@pytest.fixture
def targets(aws_env, monkeypatch):
    monkeypatch.setenv("CUTOVER_EXTERNAL_ID", "ext-1")
    stores = {"use2": store("us-east-2"), "usw2": store("us-west-2"), "euw1": store("eu-west-1", OTHER)}
    for s in stores.values():
        s.put(FLAG, "on")  # every target out of place
    return stores


def value(s, name=FLAG):
    got = s.get_many([name])
    return got[name].value if name in got else None


def test_rollback_restores_every_target_later_waves_first(targets, tmp_path):
    cli = Cli(tmp_path / "ev", plan=WAVES)
    result = cli("rollback", "--yes", "--reason", "drill", json_out=True)
    doc = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert [t["target"] for t in doc["targets"]] == ["usw2", "euw1", "use2"]  # the wave `rest` first, then `pilot`
    assert {name: value(s) for name, s in targets.items()} == {"use2": "off", "usw2": "off", "euw1": "off"}
    # Each target keeps its own state record, in its own account and region.
    for name, s in targets.items():
        rec = json.loads(value(s, STATE))
        assert (rec["phase"], rec["status"], rec["command"]) == ("rolled_back", "stable", "rollback"), name
    euw1 = next(t for t in doc["targets"] if t["target"] == "euw1")
    assert euw1["account"] == OTHER and Path(euw1["evidence"]).is_relative_to(tmp_path / "ev" / "euw1")
    # Later waves first: pilot's flag is written after every flag of the wave after it.
    written = {name: max(v.last_modified for v in s.history(FLAG)) for name, s in targets.items()}
    assert max(written["usw2"], written["euw1"]) <= written["use2"]


def test_a_target_that_cannot_be_reached_fails_alone_and_is_named_with_its_retry(targets, tmp_path, monkeypatch):
    monkeypatch.delenv("CUTOVER_EXTERNAL_ID")  # euw1's role cannot be assumed without it
    cli = Cli(tmp_path / "ev", plan=WAVES)
    result = cli("rollback", "--yes", "--reason", "drill")
    assert result.exit_code == 4, result.output
    assert "1 of 3 target(s) not restored: euw1 (eu-west-1, account 222222222222)" in result.output
    assert "cutover rollback --target euw1 --yes" in result.output
    assert "CUTOVER_EXTERNAL_ID" in result.output  # why, in its own line
    assert (value(targets["use2"]), value(targets["usw2"]), value(targets["euw1"])) == ("off", "off", "on")
    assert value(targets["euw1"], STATE) is None  # nothing written there

    monkeypatch.setenv("CUTOVER_EXTERNAL_ID", "ext-1")
    retry = cli("rollback", "--target", "euw1", "--yes", json_out=True)
    assert retry.exit_code == 0, retry.output
    assert [t["target"] for t in json.loads(retry.stdout)["targets"]] == ["euw1"]
    assert value(targets["euw1"]) == "off"


def test_status_has_a_row_per_target_and_check_exits_on_the_worst(targets, tmp_path):
    cli = Cli(tmp_path / "ev", plan=WAVES)
    assert cli("rollback", "--yes").exit_code == 0
    healthy = cli("status", "--check")
    assert healthy.exit_code == 0, healthy.output
    assert "3 target(s): flags match the declared values" in healthy.output
    for row in ("wave pilot:", "use2 (us-east-2, the caller's account): rolled_back",
                "wave rest:", "euw1 (eu-west-1, account 222222222222): rolled_back"):
        assert row in healthy.output
    targets["usw2"].put(FLAG, "on")  # a hand edit in one region
    drifted = cli("status", "--check", json_out=True)
    assert drifted.exit_code == 5, drifted.output
    doc = json.loads(drifted.stdout)
    assert doc["unhealthy"] == ["usw2"] and "1 of 3 target(s) need attention: usw2" in doc["headline"]


def test_a_dry_run_writes_nowhere_and_bad_options_are_refused(targets, tmp_path):
    cli = Cli(tmp_path / "ev", plan=WAVES)
    dry = cli("rollback", "--dry-run", "--detailed-exitcode")
    assert dry.exit_code == 7, dry.output
    assert all(value(s) == "on" and value(s, STATE) is None for s in targets.values())
    unknown = cli("rollback", "--target", "mars", "--yes")
    assert unknown.exit_code == 2 and "no such target" in unknown.output and "use2, usw2, euw1" in unknown.output
    to = cli("rollback", "--to", "shadow", "--yes")
    assert to.exit_code == 2 and "--to is not built yet" in to.output
    assert all(value(s) == "on" for s in targets.values())


GATED = """checks:
  quiet:
    type: alarms
    names: [app-errors]
    quiet_for: 0s
phases:
  - name: shadow
    set: {kill_switch: "off"}
  - name: canary
    set: {kill_switch: "on"}
    gates: [quiet]
"""


def wave_plan(tmp_path, bake: bool = False, gated: bool = False) -> str:
    text = (ROOT / "tests" / "plans" / "waves.yaml").read_text()
    if not bake:
        text = text.replace(", bake: 30m}", "}")
    if gated:
        text = text[:text.index("phases:")] + GATED
    path = tmp_path / "waves.yaml"
    path.write_text(text)
    return str(path)


def alarm(region: str, state: str, account: str | None = None) -> None:
    """The alarm `app-errors` in one target, in `state`."""
    from cutover.adapters.aws import assume_role, make_session

    creds = assume_role(f"arn:aws:iam::{account}:role/cutover-operator", "ext-1", region, None, "test") if account else None
    cw = make_session(region, None, False, credentials=creds).client("cloudwatch")
    cw.put_metric_alarm(AlarmName="app-errors", MetricName="Errors", Namespace="App", Statistic="Sum", Period=60,
                        EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")
    cw.set_alarm_state(AlarmName="app-errors", StateValue=state, StateReason="test")


@pytest.fixture
def safe(targets):
    for s in targets.values():
        s.put(FLAG, "off")  # every target at its rollback value, nothing entered yet
    return targets


def phases(targets) -> dict[str, str | None]:
    return {name: (json.loads(v)["phase"] if (v := value(s, STATE)) else None) for name, s in targets.items()}


def test_advance_takes_one_wave_step_at_a_time(safe, tmp_path):
    cli = Cli(tmp_path / "ev", plan=wave_plan(tmp_path))
    expected = [
        ("entered shadow in wave pilot: use2", {"use2": "shadow", "usw2": None, "euw1": None}, ("off", "off", "off")),
        ("entered shadow in wave rest: usw2, euw1", {"use2": "shadow", "usw2": "shadow", "euw1": "shadow"}, ("off", "off", "off")),
        ("entered canary in wave pilot: use2", {"use2": "canary", "usw2": "shadow", "euw1": "shadow"}, ("on", "off", "off")),
        ("entered canary in wave rest: usw2, euw1", {"use2": "canary", "usw2": "canary", "euw1": "canary"}, ("on", "on", "on")),
    ]
    for headline, where, flags in expected:
        result = cli("advance", "--yes", "--reason", "waves")
        assert result.exit_code == 0 and headline in result.output, result.output
        assert phases(safe) == where
        assert tuple(value(safe[n]) for n in ("use2", "usw2", "euw1")) == flags
    done = cli("advance", "--yes")
    assert done.exit_code == 0 and "nothing to do: every target is at the last phase" in done.output
    # And one rollback brings every wave back.
    assert cli("rollback", "--yes").exit_code == 0
    assert {n: value(s) for n, s in safe.items()} == {"use2": "off", "usw2": "off", "euw1": "off"}


def up_to_canary_rest_with_an_alarm_in_euw1(tmp_path) -> Cli:
    """The gated plan advanced to the step (canary, rest), with the canary gate's alarm firing in eu-west-1 only."""
    alarm("us-east-2", "OK")
    alarm("us-west-2", "OK")
    alarm("eu-west-1", "ALARM", OTHER)  # alarms are regional: only this target's gate fails
    cli = Cli(tmp_path / "ev", plan=wave_plan(tmp_path, gated=True))
    for _ in range(3):  # shadow pilot, shadow rest, canary pilot
        assert cli("advance", "--yes").exit_code == 0
    return cli


def test_a_failing_gate_in_the_second_wave_writes_nothing_there_and_leaves_the_first(safe, tmp_path):
    cli = up_to_canary_rest_with_an_alarm_in_euw1(tmp_path)
    assert value(safe["use2"]) == "on"
    failed = cli("advance", "--yes")
    assert failed.exit_code == 1, failed.output
    assert "gates for canary failed in wave rest: euw1; nothing was written in any target" in failed.output
    assert (value(safe["usw2"]), value(safe["euw1"])) == ("off", "off")  # not even the target whose gate passed
    assert phases(safe) == {"use2": "canary", "usw2": "shadow", "euw1": "shadow"}
    assert value(safe["use2"]) == "on"  # the first wave untouched


def test_a_wave_waits_for_the_bake_after_the_wave_before(safe, tmp_path):
    cli = Cli(tmp_path / "ev", plan=wave_plan(tmp_path, bake=True))
    assert cli("advance", "--yes").exit_code == 0  # shadow, pilot
    early = cli("advance", "--yes")
    assert early.exit_code == 1, early.output
    assert "wave rest waits for wave pilot to hold shadow" in early.output and "left of 30m" in early.output
    assert phases(safe) == {"use2": "shadow", "usw2": None, "euw1": None}
