"""Window checks (issue 16) through the gate runner, the advance and the CLI.

The schedule's own rules (parsing, DST, next change) are in tests/unit/test_schedule.py; here the
gate reads the injected clock and a fake Change Calendar port (moto implements no GetCalendarState),
the advance re-checks the window before its first write, an override is recorded, and nothing about
a window ever holds a rollback or `status`. The SSM adapter itself is tested against a local HTTP
server that answers GetCalendarState as SSM does (real boto3 over HTTP, nothing patched)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cutover.testing.clock import FakeClock
from cutover.errors import AwsError, ExitCode
from cutover.gates import run_gates
from cutover.checks.window import OVERRIDDEN
from cutover.plan.load import parse_plan
from cutover.ports import CalendarReading
from tests.gatefakes import FakeCalendars, make_ctx
from tests.integration.test_cli import Cli, cli, params, state_param  # noqa: F401 - cli and params are fixtures

ROOT = Path(__file__).resolve().parents[2]
E2E_TEXT = (ROOT / "tests" / "plans" / "e2e.yaml").read_text()
CHICAGO_HOURS = '["Mon-Thu 09:00-15:00"]'


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def window_plan(allow: str = CHICAGO_HOURS, extra: str = "", bake: str = "0s", zone: str = "America/Chicago"):
    """A one-phase plan whose only gate is a window check (in America/Chicago unless told)."""
    return parse_plan(f"""
version: 1
name: w
region: us-east-2
flags:
  kill: {{parameter: /w/kill, rollback: "off"}}
checks:
  business_hours:
    type: window
    timezone: {zone}
    allow: {allow}
{extra}
phases:
  - name: shadow
    set: {{kill: "on"}}
    gates: [business_hours]
    bake: {bake}
""", "w.yaml")


def gate(plan, at: datetime, **ctx_kw):
    [result] = run_gates(plan, "shadow", make_ctx(clock=FakeClock(at), **ctx_kw))
    return result


# --- the gate with the injected clock ------------------------------------------------------------------


def test_open_passes_saying_until_when_in_the_zone_and_utc():
    result = gate(window_plan(), utc(2026, 1, 5, 16, 0))  # Mon 10:00 CST
    assert (result.status, result.detail) == ("PASS", "open until 15:00 CST (21:00Z)")


def test_closed_fails_saying_when_it_opens_and_in_how_long():
    result = gate(window_plan(), utc(2026, 1, 6, 0, 58))  # Mon 18:58 CST
    assert result.status == "FAIL"
    assert result.detail.startswith("closed: opens Tue 09:00 CST (15:00Z), in 14h02m")
    assert "outside the allowed hours Mon-Thu 09:00-15:00" in result.detail
    assert "advance when the window opens (Tue 09:00 CST (15:00Z), in 14h02m)" in result.next_action


def test_deny_inside_allow_closes_the_window():
    plan = window_plan(extra='    deny: ["2026-11-26..2026-11-27"]')
    result = gate(plan, utc(2026, 11, 26, 16, 0))  # Thanksgiving Thursday 10:00 CST, inside allow
    assert result.status == "FAIL"
    assert 'in deny entry "2026-11-26..2026-11-27"' in result.detail
    assert "opens Mon 09:00 CST (15:00Z)" in result.detail


def test_a_range_crossing_midnight_is_open_after_midnight():
    plan = window_plan(allow='["Fri 22:00-02:00"]')
    assert gate(plan, utc(2026, 1, 10, 7, 0)).detail == "open until 02:00 CST (08:00Z)"  # Sat 01:00 CST
    assert gate(plan, utc(2026, 1, 10, 8, 0)).status == "FAIL"  # Sat 02:00 CST


@pytest.mark.parametrize("zone, allow, at, opens", [
    # Chicago springs forward 2026-03-08 02:00 -> 03:00: a start at 02:30 does not exist, the first valid instant is 03:00 CDT.
    ("America/Chicago", "Sun 02:30-04:00", utc(2026, 3, 8, 7, 59), "opens 03:00 CDT (08:00Z), in 1m"),
    # Chicago falls back 2026-11-01 02:00 -> 01:00: 01:30 happens twice, the earlier (CDT) counts.
    ("America/Chicago", "Sun 01:30-03:00", utc(2026, 11, 1, 5, 0), "opens 01:30 CDT (06:30Z), in 1h30m"),
    # Dublin springs forward 2026-03-29 01:00 GMT -> 02:00 IST.
    ("Europe/Dublin", "Sun 01:30-03:00", utc(2026, 3, 29, 0, 0), "opens 02:00 IST (01:00Z), in 1h"),
    # Dublin falls back 2026-10-25 02:00 IST -> 01:00 GMT: the earlier 01:30 is IST.
    ("Europe/Dublin", "Sun 01:30-03:00", utc(2026, 10, 24, 22, 0), "opens Sun 01:30 IST (00:30Z), in 2h30m"),
])
def test_both_dst_transitions_in_chicago_and_dublin(zone, allow, at, opens):
    result = gate(window_plan(allow=f'["{allow}"]', zone=zone), at)
    assert result.status == "FAIL"
    assert result.detail.startswith(f"closed: {opens}")


def test_stay_open_for_bake_refuses_a_phase_whose_bake_would_cross_the_closing():
    plan = window_plan(extra="    stay_open_for: bake", bake="2h")
    result = gate(plan, utc(2026, 1, 5, 20, 0))  # Mon 14:00 CST: open, closing at 15:00, bake 2h
    assert result.status == "FAIL"
    assert result.detail.startswith("open but closes at 15:00 CST (21:00Z), in 1h, before the 2h bake ends")
    assert gate(plan, utc(2026, 1, 5, 18, 0)).status == "PASS"  # 12:00 CST: the bake ends as it closes


def test_stay_open_for_a_duration_counts_a_calendar_transition():
    plan = window_plan(allow='["Mon-Sun 00:00-24:00"]', extra="    change_calendars: [ProdFreeze]\n    stay_open_for: 3h")
    freeze = utc(2026, 1, 5, 18, 0)
    calendars = FakeCalendars({"ProdFreeze": CalendarReading("OPEN", freeze)})
    result = gate(plan, utc(2026, 1, 5, 16, 0), calendars=calendars)
    assert result.status == "FAIL"
    assert "before the 3h stay_open_for ends (then calendar ProdFreeze CLOSED)" in result.detail
    assert calendars.calls == [("ProdFreeze", utc(2026, 1, 5, 16, 0))]  # asked at the injected clock's instant


def test_a_closed_calendar_beats_allow():
    plan = window_plan(extra="    change_calendars: [ProdFreeze]")
    calendars = FakeCalendars({"ProdFreeze": CalendarReading("CLOSED", utc(2026, 1, 6, 15, 0))})
    result = gate(plan, utc(2026, 1, 5, 16, 0), calendars=calendars)
    assert result.status == "FAIL"
    assert result.detail.startswith("closed: opens Tue 09:00 CST (15:00Z)")
    assert "calendar ProdFreeze CLOSED" in result.detail


@pytest.mark.parametrize("error, named", [
    (AwsError("AWS denied ssm:GetCalendarState on change calendar ProdFreeze", code="AccessDeniedException"),
     "AccessDeniedException: AWS denied ssm:GetCalendarState"),
    (AwsError("AWS throttled ssm:GetCalendarState after 8 attempts", code="ThrottlingException", transient=True),
     "ThrottlingException: AWS throttled"),
    (None, "ResourceNotFoundException: change calendar ProdFreeze not found"),
])
def test_an_unreadable_calendar_counts_as_closed_naming_the_error(error, named):
    plan = window_plan(allow='["Mon-Sun 00:00-24:00"]', extra="    change_calendars: [ProdFreeze]")
    calendars = FakeCalendars(errors={"ProdFreeze": error} if error else {})
    result = gate(plan, utc(2026, 1, 5, 16, 0), calendars=calendars)
    assert result.status == "FAIL"
    assert f"calendar ProdFreeze counted as CLOSED: {named}" in result.detail


def test_override_passes_a_closed_window_only_with_allow_override():
    closed = utc(2026, 1, 6, 0, 58)
    allowed = gate(window_plan(extra="    allow_override: true"), closed, outside_window="hotfix")
    assert allowed.status == "PASS" and allowed.detail.startswith(OVERRIDDEN + "closed: opens Tue 09:00 CST")
    refused = gate(window_plan(), closed, outside_window="hotfix")
    assert refused.status == "FAIL" and "--outside-window does not apply" in refused.detail
    hinted = gate(window_plan(extra="    allow_override: true"), closed)
    assert hinted.status == "FAIL" and "advance --outside-window" in hinted.next_action


# --- the SSM adapter over real HTTP -----------------------------------------------------------------


class _CalendarServer:
    """Answers ssm GetCalendarState as SSM does (JSON 1.1), or an error; records each request body."""

    def __init__(self, answer: tuple[int, dict]) -> None:
        self.answer, self.requests = answer, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append((self.headers["X-Amz-Target"], json.loads(body)))
                status, doc = server.answer
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _adapter(url: str):
    from cutover.adapters.aws import SsmChangeCalendars, Clients, make_session

    return SsmChangeCalendars(Clients(make_session("us-east-2", None, True), endpoint_url=url))


def test_the_adapter_reads_state_and_next_transition_at_the_given_instant(aws_env):
    server = _CalendarServer((200, {"State": "CLOSED", "AtTime": "2026-12-24T18:00:00Z",
                                    "NextTransitionTime": "2026-12-27T06:00:00Z"}))
    try:
        reading = _adapter(server.url).state("ProdFreeze", utc(2026, 12, 24, 18, 0))
    finally:
        server.close()
    assert reading == CalendarReading("CLOSED", utc(2026, 12, 27, 6, 0))
    assert server.requests == [("AmazonSSM.GetCalendarState",
                                {"CalendarNames": ["ProdFreeze"], "AtTime": "2026-12-24T18:00:00Z"})]


def test_the_adapter_turns_an_aws_error_into_one_naming_the_calendar(aws_env, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    server = _CalendarServer((400, {"__type": "AccessDeniedException", "message": "not allowed"}))
    try:
        with pytest.raises(AwsError) as caught:
            _adapter(server.url).state("ProdFreeze", utc(2026, 12, 24, 18, 0))
    finally:
        server.close()
    assert caught.value.code == "AccessDeniedException"
    assert "ssm:GetCalendarState on change calendar ProdFreeze" in str(caught.value)


# --- the advance on the emulator -------------------------------------------------------------------------

MON_1458_CST = utc(2026, 1, 5, 20, 58)  # two minutes before Mon-Thu 09:00-15:00 closes
MON_1858_CST = utc(2026, 1, 6, 0, 58)  # closed


def e2e_window_plan(extra: str = ""):
    """The e2e plan with a Chicago business-hours window as shadow's and canary's only gate."""
    text = E2E_TEXT.replace("checks:\n", f"checks:\n  business_hours:\n    type: window\n    timezone: America/Chicago\n"
                                         f"    allow: {CHICAGO_HOURS}\n{extra}", 1)
    text = text.replace("gates: [env_ok, secrets_ok, quiet]", "gates: [business_hours]")
    text = text.replace("gates: [fresh, quiet]", "gates: [business_hours]")
    return parse_plan(text, str(ROOT / "tests" / "plans" / "e2e.yaml"))


def _state(e2e):
    return e2e.state()


def test_a_window_closing_while_the_gates_ran_stops_before_the_first_write(e2e):
    from cutover.commands import orchestrator

    clock = FakeClock(MON_1458_CST)
    before = e2e.live()

    def slow_confirmation(summary: str) -> bool:
        clock.advance(180)  # the operator read the summary for three minutes: 15:01 CST now
        return True

    out = orchestrator.advance(e2e(plan=e2e_window_plan(), clock=clock, confirm=slow_confirmation), reason="t")
    assert out.exit_code == ExitCode.GATE_FAILED
    assert out.headline == "the window closed while the gates ran: business_hours; nothing was written"
    assert any(line.startswith("business_hours FAIL closed: opens Tue 09:00 CST (15:00Z)") for line in out.lines)
    assert e2e.live() == before
    assert _state(e2e).record is None


def test_an_override_is_recorded_with_who_and_why_and_rollback_is_never_held(e2e):
    from cutover.commands import orchestrator

    plan = e2e_window_plan("    allow_override: true\n")
    clock = FakeClock(MON_1858_CST)
    refused = orchestrator.advance(e2e(plan=plan, clock=clock), reason="no override")
    assert refused.exit_code == ExitCode.GATE_FAILED and _state(e2e).record is None

    out = orchestrator.advance(e2e(plan=plan, clock=clock, outside_window="sev1 hotfix"), reason="sev1 hotfix")
    assert out.exit_code == ExitCode.OK, out.lines
    record = _state(e2e).record
    assert (record.phase, record.reason) == ("shadow", "--outside-window (business_hours): sev1 hotfix")
    assert record.actor.startswith("arn:aws:")
    note = f"outside the window of business_hours: --outside-window by {record.actor}, reason: sev1 hotfix"
    assert note in out.data["notes"]
    evidence = json.loads((Path(out.evidence_path) / "report.json").read_text())
    assert note in evidence["notes"]
    history = orchestrator.history(e2e(plan=plan, clock=clock))
    assert any("reason: --outside-window (business_hours): sev1 hotfix" in line for line in history.lines)

    status = orchestrator.status(e2e(plan=plan, clock=clock))  # closed: status still answers, and says so
    assert status.exit_code == ExitCode.OK
    assert any(line.startswith("window: closed: opens Tue 09:00 CST (15:00Z), in 14h") and
               line.endswith("(business_hours, for canary)") for line in status.lines)

    rolled = orchestrator.rollback(e2e(plan=plan, clock=clock), reason="undo")  # closed window: never held
    assert rolled.exit_code == ExitCode.OK, rolled.lines
    assert e2e.live() == {f.name: f.rollback for f in plan.flags}


def test_rollback_to_is_never_held_by_a_closed_window(e2e):
    from cutover.commands import orchestrator

    plan = e2e_window_plan("    allow_override: true\n")
    clock = FakeClock(MON_1858_CST)
    for _ in ("shadow", "canary"):
        out = orchestrator.advance(e2e(plan=plan, clock=clock, outside_window="drill"), approve=True, reason="drill")
        assert out.exit_code == ExitCode.OK, out.lines
    back = orchestrator.rollback(e2e(plan=plan, clock=clock), to="shadow", reason="undo canary")
    assert back.exit_code == ExitCode.OK, back.lines
    assert _state(e2e).record.phase == "shadow"


def test_the_guard_and_watch_never_run_gates():
    """The guard and watch's auto-rollback never call the gate runner (so no window can hold them);
    they roll back through orchestrator.rollback, tested above while a window is closed."""
    import inspect

    from cutover.compile import guard
    from cutover.commands import watch

    for source in (inspect.getsource(guard), inspect.getsource(watch)):
        assert "run_gates" not in source and "run_check" not in source and "check_window" not in source


def test_iam_policy_grants_get_calendar_state_on_the_exact_calendars():
    from cutover.compile.iam import policy

    arn = "arn:aws:ssm:us-east-1:210987654321:document/CompanyFreeze"
    plan = window_plan(extra=f"    change_calendars: [ProdFreeze, '{arn}']")
    for read_only in (False, True):
        [stmt] = [s for s in policy(plan, "123456789012", read_only)["Statement"] if "ssm:GetCalendarState" in s["Action"]]
        assert stmt["Action"] == ["ssm:GetCalendarState"]
        assert stmt["Resource"] == ["arn:aws:ssm:us-east-2:123456789012:document/ProdFreeze", arn]
    assert not [s for s in policy(window_plan())["Statement"] if "ssm:GetCalendarState" in s["Action"]]


def test_the_runbook_says_the_window_in_words():
    from cutover.compile.runbook import describe_check

    plan = window_plan(allow='["Mon-Thu 09:00-15:00", "Fri 22:00-02:00"]',
                       extra="    deny: [\"2026-11-26..2026-11-30\"]\n    change_calendars: [ProdFreeze]\n"
                             "    stay_open_for: bake\n    allow_override: true")
    assert describe_check(plan.checks["business_hours"]) == (
        "a change may start between Monday to Thursday 09:00 to 15:00; or Friday 22:00 to 02:00 the next day "
        "(`America/Chicago` time); never in `2026-11-26..2026-11-30` (inclusive); only while the SSM Change "
        "Calendar `ProdFreeze` is OPEN; and it must stay open for the phase's bake; outside it only with "
        "`cutover advance --outside-window --reason TEXT` (recorded)")


def test_the_sandbox_serves_every_calendar_as_open():
    from cutover.sandbox.emulator import serve_open_calendars

    plan = window_plan(allow='["Mon-Sun 00:00-24:00"]', extra="    change_calendars: [ProdFreeze]")
    ctx = make_ctx(clock=FakeClock(utc(2026, 1, 5, 16, 0)))
    assert serve_open_calendars(plan, ctx.aws) == [
        "sandbox: change calendars ProdFreeze read as OPEN (the emulator has no Change Calendar)"]
    [result] = run_gates(plan, "shadow", ctx)
    assert result.status == "PASS"


# --- the CLI on the emulator ----------------------------------------------------------------------------


def _cli_plan(tmp_path, extra: str = "") -> str:
    """The e2e plan with a window that is closed now (real clock): today and the days around it denied."""
    today = datetime.now(UTC).date()
    deny = f'    deny: ["{today - timedelta(days=2)}..{today + timedelta(days=2)}"]\n'
    text = E2E_TEXT.replace("checks:\n", "checks:\n  business_hours:\n    type: window\n    timezone: Europe/Dublin\n"
                                         f"{deny}{extra}", 1)
    text = text.replace("gates: [env_ok, secrets_ok, quiet]", "gates: [business_hours]")
    path = tmp_path / "phases.yaml"
    path.write_text(text)
    return str(path)


def test_cli_validate_points_at_a_bad_window_entry(tmp_path):
    path = _cli_plan(tmp_path, '    allow: ["Mon-Thu 09:00-15:00", "Mnday 09:00-10:00"]\n')
    result = Cli(tmp_path / "ev")("validate", plan=path)
    assert result.exit_code == ExitCode.USAGE
    assert f'{path}:' in result.output and 'checks.business_hours.allow[1]: "Mnday" is not a weekday' in result.output
    assert "did you mean Mon?" in result.output


def test_cli_validate_refuses_an_abbreviated_zone(tmp_path):
    path = _cli_plan(tmp_path)
    Path(path).write_text(Path(path).read_text().replace("timezone: Europe/Dublin", "timezone: EST"))
    result = Cli(tmp_path / "ev")("validate", plan=path)
    assert result.exit_code == ExitCode.USAGE
    assert 'checks.business_hours.timezone: "EST" is not an IANA time zone name' in result.output
    assert 'e.g. "America/New_York"' in result.output


def test_cli_advance_in_a_closed_window_fails_then_the_override_is_recorded(cli, tmp_path, params):
    path = _cli_plan(tmp_path, "    allow_override: true\n")
    closed = cli("advance", "--yes", plan=path)
    assert closed.exit_code == ExitCode.GATE_FAILED, closed.output
    assert "business_hours FAIL closed: opens" in closed.output and "in deny entry" in closed.output
    assert state_param(params) is None
    status = cli("status", plan=path)
    assert status.exit_code == 0 and "window: closed: opens" in status.output

    no_reason = cli("advance", "--yes", "--outside-window", plan=path)
    assert no_reason.exit_code == ExitCode.USAGE and "--outside-window needs --reason" in no_reason.output
    assert state_param(params) is None

    done = cli("advance", "--yes", "--outside-window", "--reason", "sev1 hotfix", plan=path)
    assert done.exit_code == 0, done.output
    assert "business_hours PASS overridden by --outside-window: closed: opens" in done.output
    history = cli("history", plan=path)
    assert "reason: --outside-window (business_hours): sev1 hotfix" in history.output
    rolled = cli("rollback", "--yes", "--reason", "undo", plan=path)
    assert rolled.exit_code == 0, rolled.output


def test_rehearse_runs_at_any_hour_with_calendars_read_as_open(tmp_path, monkeypatch):
    from cutover.sandbox import rehearse

    monkeypatch.setenv("E2E_READ_ONLY", "true")
    # Its own plan name: moto's state is process-wide, and earlier tests left records of plan e2e in it.
    text = Path(_cli_plan(tmp_path, "    change_calendars: [ProdFreeze]\n")).read_text().replace("name: e2e\n", "name: e2e-window\n")
    plan = parse_plan(text, str(tmp_path / "phases.yaml"))
    out = rehearse.rehearse(plan, tmp_path / "ev")
    assert out.exit_code == 0, out.lines
    notes = out.data["notes"]
    assert any(n.startswith("window checks business_hours read as open at any hour") for n in notes)
    assert "sandbox: change calendars ProdFreeze read as OPEN (the emulator has no Change Calendar)" in notes
