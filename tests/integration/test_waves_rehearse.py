"""`cutover rehearse` of a plan with targets (issue 17): every target of tests/plans/waves.yaml seeded on
the embedded emulator (two regions of its account, one of account 222222222222 through the role), every
step (phase, wave) taken, every target rolled back, and a report per target."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WAVES = ROOT / "tests" / "plans" / "waves.yaml"


def rehearse(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    """In a child: the rehearsal points the process's AWS variables at its emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "CUTOVER_EXTERNAL_ID"}
    return subprocess.run([sys.executable, "-m", "cutover", "--plan", str(WAVES), "--evidence-dir", str(tmp_path / "ev"),
                           *extra, "rehearse"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def test_rehearse_takes_every_wave_step_then_rolls_back_every_target(tmp_path):
    r = rehearse(tmp_path, "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    steps = [s["step"] for s in doc["steps"]]
    assert all(s["ok"] for s in doc["steps"]), doc["steps"]
    assert [s for s in steps if s.startswith("advance into")] == [
        "advance into shadow, wave pilot (use2)", "advance into shadow, wave rest (usw2, euw1)",
        "advance into canary, wave pilot (use2)", "advance into canary, wave rest (usw2, euw1)"]
    assert "rollback of every target, later waves first" in steps
    # The report per target: each rolled back, euw1 read in its own account.
    by_target = {t["target"]: t for t in doc["targets"]}
    assert set(by_target) == {"use2", "usw2", "euw1"}
    assert by_target["euw1"]["account"] == "222222222222"
    assert all(t["exit_code"] == 0 and t["headline"].startswith("rolled_back") for t in doc["targets"]), doc["targets"]
    assert any("wave rest's bake" in n for n in doc["notes"])  # the 30m wave bake fast-forwarded, and said


def test_rehearse_output_names_every_target_and_wave(tmp_path):
    r = rehearse(tmp_path)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert r.stdout.startswith("rehearsal passed")
    for name in ("use2 (us-east-2", "usw2 (us-west-2", "euw1 (eu-west-1, account 222222222222)", "wave pilot", "wave rest"):
        assert name in r.stdout, name
