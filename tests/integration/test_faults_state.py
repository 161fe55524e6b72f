"""Bad state, changed plans, hand-edited flags, broken locks, fuzzed plans: each explained, each
refused where it must be, and rollback always works."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover.commands import advance as advance_module
from cutover.commands import orchestrator
from cutover.core import state
from cutover.errors import Blocked, ExitCode

ROOT = Path(__file__).parents[2]

BAD_RECORDS = {
    "deleted": None,
    "truncated JSON": '{"phase": "canary", "status": "sta',
    "written by another plan": json.dumps({"phase": "canary", "status": "stable", "plan": "some-other-plan"}),
    "names a phase that no longer exists": json.dumps({"phase": "beta", "status": "stable", "plan": "e2e"}),
}


@pytest.mark.parametrize("kind", list(BAD_RECORDS))
def test_bad_state_record(kind, e2e, reliability):
    with reliability.case("bad state record", "state parameter deleted, truncated, foreign or naming an unknown phase, with flags left at canary"):
        params = e2e().aws.params
        for _ in range(2):
            orchestrator.advance(e2e(), approve=True, reason="test")
        assert e2e.live() == e2e.plan.values_for("canary")
        if BAD_RECORDS[kind] is None:
            params.delete(e2e.plan.state_parameter)
        else:
            params.put(e2e.plan.state_parameter, BAD_RECORDS[kind])
        # status explains, with the fix, and --check fails
        st = orchestrator.status(e2e(dry_run=True), check=True)
        assert st.exit_code == ExitCode.DRIFT
        assert "rollback" in st.hint
        if kind != "deleted":
            assert any(w in st.headline for w in ("corrupt", "belongs to plan", "does not declare")), st.headline
        else:
            assert "DRIFT" in st.headline  # no record: pending, and the canary flags are drift
        # advance refuses with a clear message, writing nothing
        with pytest.raises(Blocked) as err:
            orchestrator.advance(e2e(), approve=True, reason="test")
        assert "nothing was written" in err.value.message or "refusing" in err.value.message
        assert e2e.live() == e2e.plan.values_for("canary")
        # rollback still works and leaves a good record
        assert orchestrator.rollback(e2e()).exit_code == 0
        assert e2e.live() == e2e.plan.rollback_values()
        assert orchestrator.status(e2e(dry_run=True), check=True).exit_code == 0


def test_hand_edited_flag_is_drift_that_blocks_advance(e2e, reliability):
    with reliability.case("drift (hand-edited flags)", "a flag changed in SSM behind cutover's back"):
        orchestrator.advance(e2e())
        e2e().aws.params.put("/e2e/kill", "on")
        st = orchestrator.status(e2e(dry_run=True), check=True)
        assert st.exit_code == ExitCode.DRIFT and st.data["drift"] == ["kill"]
        with pytest.raises(Blocked) as err:
            orchestrator.advance(e2e(), approve=True, reason="test")
        assert "kill" in err.value.message and "rollback" in err.value.hint
        assert orchestrator.rollback(e2e(), to=None).exit_code == 0
        assert e2e.live() == e2e.plan.rollback_values()


def test_a_hand_edit_during_the_gates_stops_the_advance_before_its_first_write(e2e, monkeypatch, reliability):
    """Someone sets kill=off while the canary -> full gates run: the re-read just before the first
    write sees it, and the advance stops (exit 3) writing nothing."""
    with reliability.case("drift: a hand edit while the gates run", "a flag changed in SSM between the drift check and the first write"):
        for _ in range(2):
            assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0
        before = e2e.state()
        real_gates = advance_module.run_phase_gates

        def gates_with_a_hand_edit(rt, phase):
            results = real_gates(rt, phase)
            e2e.set_flags({"kill": "off"})  # the on-call engineer, by hand, while the gates ran
            return results

        monkeypatch.setattr(advance_module, "run_phase_gates", gates_with_a_hand_edit)
        with pytest.raises(Blocked) as err:
            orchestrator.advance(e2e(), approve=True, reason="test")
        assert "flags changed while the gates ran: kill; nothing was written" in err.value.message
        assert e2e.live() == {**e2e.plan.values_for("canary"), "kill": "off"}
        assert e2e.state().version == before.version  # no record written either


def test_plan_changed_since_the_last_transition(e2e, tmp_path, reliability):
    from cutover.plan.load import load_plan

    def edited(name, old, new):
        path = tmp_path / name
        text = (ROOT / "tests/plans/e2e.yaml").read_text()
        assert old in text, f"the e2e plan no longer has {old!r}"
        path.write_text(text.replace(old, new))
        return load_plan(path)

    with reliability.case("plan changed since the last transition", "the plan file edited between two advances"):
        orchestrator.advance(e2e())
        changed = edited("a.yaml", 'set: {allow: "*", cohort: "*"}', 'set: {allow: "*", cohort: "*", mode: "full"}')
        with pytest.raises(Blocked) as err:
            orchestrator.advance(e2e(plan=changed), approve=True, reason="test")
        assert "plan changed" in err.value.message and "changed: phase:full" in err.value.message  # names what changed
        assert "--accept-plan-change" in err.value.hint
        assert e2e.live() == e2e.plan.values_for("shadow")
        # the dry run shows it without blocking; the explicit confirmation proceeds and says so
        dry = orchestrator.advance(e2e(plan=changed, dry_run=True), approve=True, reason="test")
        assert dry.exit_code == 0 and any("plan changed" in n for n in dry.data["notes"])
        out = orchestrator.advance(e2e(plan=changed), approve=True, reason="test", accept_plan_change=True)
        assert out.exit_code == 0 and any("accepted with --accept-plan-change" in n for n in out.data["notes"])
        # rollback always uses the current plan's rollback values, changed or not
        safer = edited("b.yaml", 'rollback: "off"', 'rollback: "disabled"')
        assert orchestrator.rollback(e2e(plan=safer)).exit_code == 0
        assert e2e.live()["kill"] == "disabled"


def test_unlock_force_records_who_and_why(e2e, reliability):
    with reliability.case("locks", "a live lock broken with unlock --force, recording who and why"):
        orchestrator.advance(e2e())
        before = e2e.state()
        state.acquire(e2e.plan, e2e().aws.params, e2e.clock, holder="arn:aws:iam::1:user/bob", command="advance", run_id="bob1")
        out = orchestrator.unlock(e2e(), force=True, reason="bob's laptop died")
        assert out.exit_code == 0 and "user/bob" in out.headline
        assert state.read_lock(e2e.plan, e2e().aws.params) is None
        # Who and why are in the evidence; the state record is left alone (only the lock is touched).
        notes = json.loads(Path(out.evidence_path, "report.json").read_text())["notes"]
        assert any("bob's laptop died" in n and "user/bob" in n and "user/moto" in n for n in notes), notes
        assert e2e.state().version == before.version
        assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0  # the way is clear


@pytest.mark.parametrize("moment", ["after it read the state", "after it deleted the lock"])
def test_unlock_never_writes_the_state_record_over_a_rollback(moment, e2e, reliability):
    """A rollback finishes while `unlock --force` runs: the rollback's record stays on top (unlock
    used to write back the copy of the state it had read, `rolling_back`, over the final `stable`)."""
    from cutover.testing.counter import CallCounter

    with reliability.case("locks: unlock --force during a rollback", "a rollback finishes at a chosen moment inside unlock"):
        for _ in range(2):
            assert orchestrator.advance(e2e(), approve=True, reason="test").exit_code == 0
        params = e2e().aws.params
        state.StateStore(e2e.plan, params).write(state.StateRecord(phase="canary", status="rolling_back", target="rolled_back",
                                                                   run_id="rb1", command="rollback"), e2e.clock)
        state.acquire(e2e.plan, params, e2e.clock, holder="arn:aws:iam::1:user/bob", command="advance", run_id="bob1")
        rt = e2e(counter=CallCounter())  # ports of its own: only the unlock's calls are wrapped below
        ran = []

        def rollback_now():
            if not ran:
                ran.append(orchestrator.rollback(e2e(), reason="incident"))

        real_get, real_delete, real_put = rt.aws.params.get_many, rt.aws.params.delete, rt.aws.params.put
        state_writes = []

        def get_many(names):
            got = real_get(names)
            if moment == "after it read the state" and e2e.plan.state_parameter in names:
                rollback_now()
            return got

        def delete(name):
            real_delete(name)
            if moment == "after it deleted the lock":
                rollback_now()

        def put(name, value, **kw):
            state_writes.extend([value] if name == e2e.plan.state_parameter else [])
            return real_put(name, value, **kw)

        rt.aws.params.get_many, rt.aws.params.delete, rt.aws.params.put = get_many, delete, put
        assert orchestrator.unlock(rt, force=True, reason="bob's laptop died").exit_code == 0
        rollback_now()  # (if unlock never gave it a moment: the same end state must hold)
        assert ran[0].exit_code == 0 and state_writes == []
        rec = e2e.state().record
        assert (rec.phase, rec.status, rec.command, rec.reason) == ("rolled_back", "stable", "rollback", "incident")
        assert e2e.live() == e2e.plan.rollback_values()


# --- fuzzed plans: always exit 2, one line, no traceback, no AWS call -------------------------------
YAMLISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)


def _plan_docs():
    import yaml

    base = yaml.safe_load((ROOT / "tests/plans/e2e.yaml").read_text())
    keys = ["version", "name", "region", "flags", "checks", "phases", "write_rate", "state_prefix"]
    return st.one_of(
        # random YAML documents
        YAMLISH.map(lambda v: yaml.safe_dump(v, allow_unicode=True).encode()),
        # the real plan with one key replaced by something random (wrong types, huge and unicode values)
        st.tuples(st.sampled_from(keys), YAMLISH | st.text(min_size=1000, max_size=5000)).map(
            lambda kv: yaml.safe_dump({**base, kv[0]: kv[1]}, allow_unicode=True).encode()),
        # raw bytes, non-UTF-8 included
        st.binary(max_size=300),
        # deep nesting and alias bombs
        st.integers(50, 3000).map(lambda n: ("a: " + "[" * n + "]" * n).encode()),
        st.integers(2, 9).map(lambda n: ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(n))).encode()),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=_plan_docs())
def test_fuzzed_plans_exit_2_with_one_line_and_no_aws_call(doc, tmp_path_factory, reliability):
    from typer.testing import CliRunner

    from cutover.cli.app import app

    from hypothesis import assume

    from cutover.errors import PlanError
    from cutover.plan.load import parse_plan

    try:
        parse_plan(doc)
        assume(False)  # a mutation that happens to leave a valid plan is not a bad plan
    except PlanError:
        pass
    path = tmp_path_factory.mktemp("fuzz") / "plan.yaml"
    path.write_bytes(doc)
    with reliability.case("fuzzed plans (hypothesis)", "random YAML, wrong types, huge and unicode values, deep nesting, alias bombs, non-UTF-8 bytes"):
        for args in (["validate"], ["advance", "--dry-run"], ["rollback", "--yes"]):
            # An endpoint that refuses connections: any AWS call would surface as exit 4, not 2.
            result = CliRunner().invoke(app, ["--plan", str(path), *args],
                                        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"})
            out = result.output
            assert result.exit_code == 2, (args, doc[:200], out)
            assert "Traceback" not in out
            assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
            error_lines = [line for line in out.splitlines() if line.startswith("error:")]
            assert len(error_lines) == 1 and str(path) in error_lines[0], out
