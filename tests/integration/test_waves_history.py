"""`history` and `unlock` of a plan with targets (issue 17), on one emulator with the three targets of
tests/plans/waves.yaml: each target's history is read from its own state record (euw1's through its
assumed role); a target that cannot be read is one line naming why; unlock breaks one named target's lock."""

import json

from tests.integration.test_waves_targets import OTHER, WAVES, targets, value  # noqa: F401  (targets: the fixture)
from tests.integration.test_cli import Cli

LOCK = "/cutover/waves-demo/lock"


def test_history_shows_each_targets_own_record(targets, tmp_path):
    cli = Cli(tmp_path / "ev", plan=WAVES)
    assert cli("rollback", "--yes", "--reason", "drill").exit_code == 0
    assert cli("advance", "--yes", "--reason", "CHG-1").exit_code == 0  # shadow in the first wave (use2) only

    result = cli("history")
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    heads = [line for line in lines if line.startswith("target ")]
    assert [h.split(" ")[1] for h in heads] == ["use2", "usw2", "euw1"]  # wave by wave
    assert "target euw1 (eu-west-1, account 222222222222): 2 state change(s)" in lines  # rolling_back, then stable
    use2 = lines[lines.index(heads[0]) + 1: lines.index(heads[1])]
    assert len(use2) == 4 and "-> rolled_back (stable) by `rollback`" in use2[1] and "-> shadow (stable) by `advance`" in use2[3]
    assert "assumed-role/cutover-operator" in lines[lines.index(heads[2]) + 1]  # euw1's record, written as its role
    assert lines[0] == "8 state change(s) recorded in 3 of 3 target(s)"
    doc = json.loads(cli("history", json_out=True).stdout)
    by_target = {t["target"]: t for t in doc["targets"]}
    assert by_target["euw1"]["account"] == OTHER
    assert [r["to"] for r in by_target["use2"]["data"]["history"]] == ["rolled_back", "rolled_back", "shadow", "shadow"]
    assert [r["command"] for r in by_target["euw1"]["data"]["history"]] == ["rollback", "rollback"]


def test_a_target_that_cannot_be_read_is_one_line_naming_why(targets, tmp_path, monkeypatch):
    cli = Cli(tmp_path / "ev", plan=WAVES)
    assert cli("rollback", "--yes").exit_code == 0
    monkeypatch.delenv("CUTOVER_EXTERNAL_ID")  # euw1's role cannot be assumed without it
    result = cli("history")
    assert result.exit_code == 2, result.output
    [line] = [line for line in result.stdout.splitlines() if "euw1" in line and line.strip().startswith("target ")]
    assert "CUTOVER_EXTERNAL_ID" in line and "not set" in line
    assert "not read: euw1" in result.stdout
    assert "target use2 (us-east-2, the caller's account): 2 state change(s)" in result.stdout


def test_unlock_breaks_the_named_targets_lock_only(targets, tmp_path):
    for s in targets.values():
        s.put(LOCK, "not a lock record")
    cli = Cli(tmp_path / "ev", plan=WAVES)
    refused = cli("unlock", "--force", "--reason", "stuck")
    assert refused.exit_code == 2 and "each with its own lock" in refused.stderr and "--target NAME" in refused.stderr
    unknown = cli("unlock", "--target", "nope", "--force", "--reason", "stuck")
    assert unknown.exit_code == 2 and "--target nope: no such target" in unknown.stderr
    assert all(value(s, LOCK) == "not a lock record" for s in targets.values())  # nothing broken yet

    result = cli("unlock", "--target", "euw1", "--force", "--reason", "stuck")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("euw1 (eu-west-1, account 222222222222): lock broken")
    assert value(targets["euw1"], LOCK) is None
    assert value(targets["use2"], LOCK) == value(targets["usw2"], LOCK) == "not a lock record"
