"""`preflight` and `watch` of a plan with targets (issue 17) on one emulator, and the assumed role's
credentials refreshed on the clock when a watch outlives them. Three targets: two regions of the caller's
account, one region of 222222222222 through an assumed role. The watch runs on an injected clock."""

import json
from datetime import datetime, timezone
from pathlib import Path

from cutover.testing.clock import FakeClock
from tests.integration.test_cli import Cli
from tests.integration.test_waves_targets import (  # noqa: F401 (safe, targets: fixtures)
    OTHER, alarm, phases, safe, targets, up_to_canary_rest_with_an_alarm_in_euw1, value, wave_plan,
)

ROLE = f"arn:aws:iam::{OTHER}:role/cutover-operator"


def test_preflight_runs_the_next_waves_gates_in_each_of_its_targets(safe, tmp_path):
    cli = up_to_canary_rest_with_an_alarm_in_euw1(tmp_path)
    result = cli("preflight", json_out=True)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["headline"] == "preflight for canary in wave rest: FAIL in euw1"
    assert [(t["target"], t["exit_code"]) for t in doc["targets"]] == [("usw2", 0), ("euw1", 1)]  # wave rest only
    assert [(g["check"], g["status"]) for g in doc["targets"][1]["data"]["gates"]][0] == ("quiet", "FAIL")
    text = cli("preflight").output
    assert "euw1 (eu-west-1, account 222222222222): preflight for canary: FAIL" in text
    assert "    quiet FAIL" in text  # each target's gate rows under it
    assert phases(safe) == {"use2": "canary", "usw2": "shadow", "euw1": "shadow"}  # read-only
    assert (value(safe["usw2"]), value(safe["euw1"])) == ("off", "off")
    unknown = cli("preflight", "--phase", "full")
    assert unknown.exit_code == 2 and "--phase full: no such phase" in unknown.output


BAKED_CANARY = "    gates: [quiet]\n    bake: 30m\n"


def test_an_alarm_in_one_target_rolls_back_every_target(safe, tmp_path, monkeypatch):
    from cutover.cli.wiring import target_runtimes
    from cutover.commands import waves
    from cutover.plan.load import load_plan

    for region, account in (("us-east-2", None), ("us-west-2", None), ("eu-west-1", OTHER)):
        alarm(region, "OK", account)
    path = Path(wave_plan(tmp_path, gated=True))
    path.write_text(path.read_text().replace("    gates: [quiet]\n", BAKED_CANARY))
    cli = Cli(tmp_path / "ev", plan=str(path))
    for _ in range(4):  # every wave into shadow, then into canary
        assert cli("advance", "--yes").exit_code == 0
    assert {n: value(s) for n, s in safe.items()} == {"use2": "on", "usw2": "on", "euw1": "on"}

    monkeypatch.chdir(tmp_path)  # the evidence of a call outside the CLI: ./evidence
    plan, clock = load_plan(path), FakeClock(datetime.now(timezone.utc))
    polls = []

    def show(p):
        polls.append((p.target, p.event))
        if len(polls) == 3:  # after the first round, the alarm fires in one region only
            alarm("us-west-2", "ALARM")

    out = waves.watch(plan, target_runtimes(plan, dry_run=False, command="watch", clock=clock), clock, True, 60, show)
    assert out.exit_code == 6, (out.headline, out.lines)
    assert out.headline.startswith("usw2: alarm app-errors in ALARM: every target rolled back automatically")
    assert sorted(polls[:3]) == [("euw1", "polling"), ("use2", "polling"), ("usw2", "polling")]
    assert ("usw2", "alarm") in polls[3:]
    assert {n: value(s) for n, s in safe.items()} == {"use2": "off", "usw2": "off", "euw1": "off"}
    assert set(phases(safe).values()) == {"rolled_back"}
    assert [t["target"] for t in out.data["rollback"]["targets"]] == ["usw2", "euw1", "use2"]  # later waves first


def test_watch_without_trouble_ends_when_every_entered_target_has_baked(safe, tmp_path):
    cli = Cli(tmp_path / "ev", plan=wave_plan(tmp_path))
    assert cli("advance", "--yes").exit_code == 0  # shadow in wave pilot (no bake); the others pending
    result = cli("watch", json_out=True)
    assert result.exit_code == 0, result.output
    *polls, last = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [(p["target"], p["event"]) for p in polls] == [("use2", "baked")]  # one JSON line per target and poll
    assert last["headline"] == "1 target(s) baked with every alarm quiet and no drift", last
    assert {name: p["event"] for name, p in last["targets"].items()} == {"use2": "baked"}  # only the target that entered


def test_an_assumed_roles_credentials_are_assumed_again_before_they_expire(targets):
    from cutover.adapters.aws import assume_role, make_ports

    clock = FakeClock(datetime.now(timezone.utc))
    creds = assume_role(ROLE, "ext-1", "eu-west-1", None, "test", clock=clock)
    first = creds.get_frozen_credentials().access_key
    clock.advance(40 * 60)  # 20 minutes left: no need yet
    assert creds.get_frozen_credentials().access_key == first
    params = make_ports("eu-west-1", None, read_only=True, credentials=creds).params
    clock.advance(2 * 3600)  # long past the first session's hour: a bake outlived it
    assert value(params) == "on"  # still the other account's store
    second = creds.get_frozen_credentials().access_key
    assert second != first
    clock.advance(60)
    assert creds.get_frozen_credentials().access_key == second  # refreshed once, not on every call
