"""Kill points across a plan with targets (issue 17): a real `cutover` process is SIGKILLed right after
its k-th AWS write, for every k, while it writes several targets in parallel (the writes of the targets
interleave; the fault proxy counts them over all targets, since every target's calls, STS included, go
through the one AWS_ENDPOINT_URL). After each kill, `status` says per target what was interrupted, and
both `rollback` and re-running the interrupted command converge in every target.

The single-target kill points are in test_faults_killpoints.py; one unreachable target during a
rollback (the others restored, exit 4, the retry line) is in test_waves_targets.py."""

import json
import signal
from types import SimpleNamespace

import pytest

from cutover.errors import ExitCode
from cutover.testing.faultproxy import Faults
from tests.integration.test_cli import Cli
from tests.integration.test_faults_killpoints import run_cli
from tests.integration.test_waves_targets import FLAG, STATE, safe, targets, value, wave_plan  # noqa: F401 (fixtures)

pytestmark = pytest.mark.timeout(900)
HOW = "fault proxy SIGKILLs the CLI process right after its k-th write over all targets, for every k"
LOCK = "/cutover/waves-demo/lock"
NAMES = ("use2", "usw2", "euw1")


@pytest.fixture
def walk(safe, fault_proxy, tmp_path):  # noqa: F811 (safe: the fixture imported above)
    """A walk of the waves plan (no bake) on one emulator, every target's calls through the fault proxy.
    `at(step)` puts every target where it was after that many advances, without re-running them;
    `snapshot()` and `restore(snap)` keep and put back every target's flag, state record and lock."""
    plan = wave_plan(tmp_path)
    cli = Cli(tmp_path / "ev", plan=plan)
    steps = []  # snapshots after 0, 1, 2, ... advances

    def snapshot():
        return {n: {name: value(safe[n], name) for name in (FLAG, STATE, LOCK)} for n in NAMES}

    def restore(snap) -> None:
        fault_proxy.reconfigure(Faults())
        for n, values in snap.items():
            for name, v in values.items():
                if v is not None:
                    safe[n].put(name, v)
                elif value(safe[n], name) is not None:
                    safe[n].delete(name)
        assert snapshot() == snap

    def at(step: int) -> None:
        fault_proxy.reconfigure(Faults())
        while len(steps) <= step:
            if steps:
                assert cli("advance", "--yes", "--reason", "walk").exit_code == 0
            steps.append(snapshot())
        restore(steps[step])

    return SimpleNamespace(at=at, snapshot=snapshot, restore=restore, cli=cli, plan=plan, stores=safe, proxy=fault_proxy)


def flags(stores) -> tuple:
    return tuple(value(stores[n]) for n in NAMES)


def records(stores) -> dict:
    return {n: (json.loads(v) if (v := value(stores[n], STATE)) else None) for n in NAMES}


def kill_points(walk, start: int, args: list[str], done: tuple, tmp_path, reliability, recover) -> int:
    """`args` run from step `start` and killed after its k-th write (over all targets), for every k until
    it runs to the end (leaving the flags `done`); after each kill, status explains it and `recover(k)`
    converges. Returns the number of kill points."""
    k = 0
    while True:
        k += 1
        walk.at(start)
        code = run_cli(walk.proxy, args, k, tmp_path, plan=walk.plan)
        if code != -signal.SIGKILL:  # fewer than k writes: the command ran to the end
            assert code == 0 and flags(walk.stores) == done, (k, code, flags(walk.stores))
            return k - 1
        walk.proxy.reconfigure(Faults())
        with reliability.case("kill points across targets (SIGKILL after the k-th write)", HOW):
            explained(walk)
            recover(k)
            final = walk.cli("status", "--check")
            assert final.exit_code == ExitCode.OK, (k, final.output)


SETS = {"shadow": "off", "canary": "on", "rolled_back": "off"}  # waves.yaml: the flag each phase declares


def explained(walk) -> None:
    """status --check after a kill: no traceback (Cli asserts it); exit 5 unless every target is settled;
    each target left unsettled is named, with a line under its row saying what was interrupted and what
    finishes it; a rollback stopped between waves is said as such."""
    result = walk.cli("status", "--check")
    text, recs, live = result.output, records(walk.stores), dict(zip(NAMES, flags(walk.stores)))
    unsettled = [n for n in NAMES if recs[n]["status"] != "stable" or live[n] != SETS[recs[n]["phase"]]]
    for n in unsettled:
        why = rows_of(text, n)
        if recs[n]["status"] != "stable":
            assert f"{recs[n]['status']} was interrupted" in why, (n, text)
        else:  # the flag restored, the record not marked yet (either explanation line)
            assert live[n] == "off" and "a rollback that" in why and "`cutover rollback`" in why, (n, text)
    between = recs["use2"]["phase"] != "rolled_back" and any(recs[n]["phase"] == "rolled_back" for n in ("usw2", "euw1"))
    if between:
        assert "a rollback that stopped between waves" in text and "`cutover rollback` restores every target" in text, text
    if unsettled or between:
        assert result.exit_code == ExitCode.DRIFT, text
        assert f"need attention: {', '.join(n for n in NAMES if n in unsettled or (between and n == 'use2'))}" in text, text
    else:
        assert result.exit_code == ExitCode.OK, text


def rows_of(text: str, name: str) -> str:
    """A target's row in status and the lines under it."""
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name} ("))
    indent = len(lines[i]) - len(lines[i].lstrip())
    under = lines[i + 1:]
    end = next((j for j, line in enumerate(under) if len(line) - len(line.lstrip()) <= indent), len(under))
    return "\n".join([lines[i], *under[:end]])


def test_rollback_of_every_target_killed_after_every_write(walk, tmp_path, reliability):
    def recover(k):
        again = walk.cli("rollback", "--yes")
        assert again.exit_code == 0, (k, again.output)
        assert flags(walk.stores) == ("off", "off", "off")
        assert {r["phase"] for r in records(walk.stores).values()} == {"rolled_back"}

    walk.at(4)  # every wave in canary: every flag on
    assert flags(walk.stores) == ("on", "on", "on")
    points = kill_points(walk, 4, ["rollback", "--yes"], ("off", "off", "off"), tmp_path, reliability, recover)
    assert points >= 3 * 3  # at least a state mark, a flag and a final state in each of three targets


def test_advance_of_the_second_wave_killed_after_every_write(walk, tmp_path, reliability):
    """After each kill, both ways out, from the same killed state: a rollback of every target, and the
    advance re-run (which finishes the step: every target in canary)."""
    def recover(k):
        killed = walk.snapshot()
        back = walk.cli("rollback", "--yes")
        assert back.exit_code == 0, (k, back.output)
        assert flags(walk.stores) == ("off", "off", "off")
        assert walk.cli("status", "--check").exit_code == ExitCode.OK
        walk.restore(killed)  # the dead advance's records and locks, as the kill left them
        again = walk.cli("advance", "--yes", "--reason", "again")
        assert again.exit_code == 0, (k, again.output)
        assert flags(walk.stores) == ("on", "on", "on")
        assert {r["phase"] for r in records(walk.stores).values()} == {"canary"}

    walk.at(3)  # shadow everywhere, canary in wave pilot: the next step writes usw2 and euw1 at once
    assert flags(walk.stores) == ("on", "off", "off")
    points = kill_points(walk, 3, ["advance", "--yes", "--reason", "test"], ("on", "on", "on"), tmp_path, reliability,
                         recover)
    assert points >= 2 * 4  # a lock, a state mark, a flag and a final state in each of the wave's two targets
