"""Change windows (cutover.model.schedule): parsing with messages and hints, open/closed at an injected
instant, the next change and its text, calendars, stay_open_for, and both DST transitions in
America/Chicago and Europe/Dublin. Every instant is explicit; no test reads the real clock."""

from __future__ import annotations

import importlib.util
import zoneinfo
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cutover.model.schedule import (
    HORIZON, WEEKDAYS, CalendarState, ScheduleError, evaluate, format_instant, format_span, local_instant,
    parse_schedule, parse_timezone,
)

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
DUBLIN = zoneinfo.ZoneInfo("Europe/Dublin")
HOURS = "Mon-Thu 09:00-15:00"


def utc(*fields: int) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def local(zone: zoneinfo.ZoneInfo, *fields: int, fold: int = 0) -> datetime:
    """A wall time in `zone` as its UTC instant (fold=1 picks the second of a repeated hour)."""
    return datetime(*fields, tzinfo=zone, fold=fold).astimezone(UTC)


def window(allow=None, deny=None, zone: str = "America/Chicago"):
    return parse_schedule(zone, allow, deny)


def text_at(schedule, at: datetime, **kwargs) -> str:
    return evaluate(schedule, at, **kwargs).text


# --- parsing: every error names the entry and says how to write it ------------------------------------

WEEKDAY_HINT = "write Mon, Tue, Wed, Thu, Fri, Sat or Sun"
CLOCK_HINT = "write HH:MM in 24-hour time, 00:00 to 23:59 (24:00 only as the end of a weekly range)"
WEEKLY_HINT = 'write days and a time range, e.g. "Mon-Thu 09:00-15:00", "Mon,Wed 10:00-12:00" or "Fri 22:00-02:00"'
DENY_HINT = 'write a date, a date-time or a range of them, e.g. "2026-11-26", "2026-12-24 12:00" or "2026-11-26..2026-11-30"'
DATE_HINT = "write YYYY-MM-DD, e.g. 2026-11-26"


@pytest.mark.parametrize(
    "entry, message, hint",
    [
        ("Mnday 09:00-15:00", '"Mnday" is not a weekday', f"{WEEKDAY_HINT} (did you mean Mon?)"),
        ("Mon-Frx 09:00-10:00", '"Frx" is not a weekday', f"{WEEKDAY_HINT} (did you mean Fri?)"),
        ("Xyz 09:00-10:00", '"Xyz" is not a weekday', WEEKDAY_HINT),
        ("Mon,,Wed 09:00-10:00", '"" is not a weekday', WEEKDAY_HINT),
        ("Mon 25:00-26:00", '"25:00" is not a time of day', CLOCK_HINT),
        ("Mon 09:60-10:00", '"09:60" is not a time of day', CLOCK_HINT),
        ("Mon 0900-1000", '"0900" is not a time of day', CLOCK_HINT),
        ("Mon 24:00-02:00", '"24:00" is not a time of day', CLOCK_HINT),
        ("Mon 22:00-24:01", '"24:01" is not a time of day', CLOCK_HINT),
        ("Mon 09:00-09:00", '"Mon 09:00-09:00" is empty: it starts and ends at 09:00', "for a whole day write 00:00-24:00"),
        ("Mon-Thu", '"Mon-Thu" is not a weekly range', WEEKLY_HINT),
        ("Mon-Thu 09:00-15:00 daily", '"Mon-Thu 09:00-15:00 daily" is not a weekly range', WEEKLY_HINT),
        ("", '"" is not a weekly range', WEEKLY_HINT),
    ],
)
def test_a_bad_allow_entry_is_named_with_a_hint_and_its_index(entry, message, hint):
    with pytest.raises(ScheduleError) as caught:
        window(allow=["Mon 09:00-10:00", entry])
    error = caught.value
    assert (error.message, error.hint, error.field, error.index) == (message, hint, "allow", 1)
    assert isinstance(error, ValueError) and str(error) == message


@pytest.mark.parametrize(
    "entry, message, hint",
    [
        ("2026-13-01", '"2026-13-01" is not a date', DATE_HINT),
        ("2026-02-30..2026-03-02", '"2026-02-30" is not a date', DATE_HINT),
        ("tomorrow", '"tomorrow" is not a date or a date-time', DENY_HINT),
        ("26/11/2026", '"26/11/2026" is not a date or a date-time', DENY_HINT),
        ("2026-11-26...", '"." is not a date or a date-time', DENY_HINT),
        ("..2026-11-26", '"" is not a date or a date-time', DENY_HINT),
        ("2026-12-24 25:00", '"25:00" is not a time of day', CLOCK_HINT),
        ("2026-12-24 24:00", '"24:00" is not a time of day', CLOCK_HINT),
        ("2026-11-30..2026-11-26", '"2026-11-30..2026-11-26" ends before it starts',
         'write the earlier end first: "2026-11-26..2026-11-30"'),
        ("2026-12-24 12:00..2026-12-24 11:59", '"2026-12-24 12:00..2026-12-24 11:59" ends before it starts',
         'write the earlier end first: "2026-12-24 11:59..2026-12-24 12:00"'),
    ],
)
def test_a_bad_deny_entry_is_named_with_a_hint_and_its_index(entry, message, hint):
    with pytest.raises(ScheduleError) as caught:
        window(deny=["2026-11-26", "2026-12-24 12:00..2026-12-26 23:59", entry])
    error = caught.value
    assert (error.message, error.hint, error.field, error.index) == (message, hint, "deny", 2)


ABBREVIATION = 'write the place, e.g. "{}"; abbreviations such as PST, EST or CST ignore daylight saving'


@pytest.mark.parametrize(
    "name, message, hint",
    [
        ("PST", '"PST" is not an IANA time zone name', ABBREVIATION.format("America/Los_Angeles")),
        ("EST", '"EST" is not an IANA time zone name', ABBREVIATION.format("America/New_York")),
        ("CST", '"CST" is not an IANA time zone name', ABBREVIATION.format("America/Chicago")),
        ("cdt", '"cdt" is not an IANA time zone name', ABBREVIATION.format("America/Chicago")),
        ("Japan", '"Japan" is not an IANA time zone name', ABBREVIATION.format("America/Chicago")),
        ("America/Chicgo", '"America/Chicgo" is not a known time zone',
         'did you mean "America/Chicago"? write an IANA name such as "America/Chicago"'),
        ("america/chicago", '"america/chicago" is not a known time zone',
         'did you mean "America/Chicago"? write an IANA name such as "America/Chicago"'),
        ("America/", '"America/" is not a known time zone', 'write an IANA name such as "America/Chicago"'),
        ("", "'' is not a time zone name", 'write an IANA name such as "America/Chicago"'),
        (42, "42 is not a time zone name", 'write an IANA name such as "America/Chicago"'),
    ],
)
def test_a_bad_time_zone_is_refused_with_a_hint(name, message, hint):
    with pytest.raises(ScheduleError) as caught:
        window(allow=[HOURS], zone=name)
    error = caught.value
    assert (error.message, error.field, error.index) == (message, "timezone", None)
    assert error.hint.endswith(hint)


@pytest.mark.parametrize("name", ["America/Chicago", "Europe/Dublin", "UTC", "Etc/UTC", "Asia/Kolkata"])
def test_iana_names_load(name):
    assert parse_timezone(name).key == name


def test_a_machine_without_a_zone_database_is_told_to_install_tzdata():
    if importlib.util.find_spec("tzdata"):
        pytest.skip("the tzdata package provides a database wherever the system has none")
    saved = zoneinfo.TZPATH
    zoneinfo.reset_tzpath(to=[])
    try:
        with pytest.raises(ScheduleError) as caught:
            parse_timezone("America/Phoenix")
    finally:
        zoneinfo.reset_tzpath(to=saved)
    assert caught.value.message == "no time zone database on this machine"
    assert caught.value.hint == "install the tzdata package (pip install tzdata)"


def test_a_non_text_entry_and_an_empty_allow_list_are_refused():
    with pytest.raises(ScheduleError) as caught:
        window(allow=[9])
    assert (caught.value.message, caught.value.field, caught.value.index) == ("9 is not text", "allow", 0)
    with pytest.raises(ScheduleError) as caught:
        window(allow=[])
    assert (caught.value.message, caught.value.hint, caught.value.field, caught.value.index) == (
        "allow is empty, so no change could ever start", "remove allow to allow any time, or add a range", "allow", None)


def test_weekday_names_full_or_short_in_any_case_lists_and_wrapping_ranges():
    assert window(allow=["monday-THURSDAY 09:00-15:00"]).allow[0].days == {0, 1, 2, 3}
    assert window(allow=["Mon,wed 09:00-15:00"]).allow[0].days == {0, 2}
    assert window(allow=["Fri-Mon 09:00-15:00"]).allow[0].days == {4, 5, 6, 0}
    assert window(allow=["Sun-Sat 09:00 - 15:00"]).allow[0].days == set(range(7))


# --- open, closed, and the next change's text (January: CST, UTC-6) ----------------------------------


def test_closed_before_the_window_says_when_it_opens_in_both_zones():
    verdict = evaluate(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 5, 18, 58))  # Monday evening
    assert not verdict.open and not verdict.passed
    assert verdict.text == "closed: opens Tue 09:00 CST (15:00Z), in 14h02m"
    assert verdict.reasons == ("outside the allowed hours Mon-Thu 09:00-15:00",)
    assert verdict.next_change == utc(2026, 1, 6, 15, 0)
    assert verdict.line == "closed: opens Tue 09:00 CST (15:00Z), in 14h02m (outside the allowed hours Mon-Thu 09:00-15:00)"


def test_open_inside_the_window_says_until_when():
    verdict = evaluate(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 5, 13, 50))
    assert verdict.open and verdict.passed and verdict.reasons == ()
    assert verdict.text == verdict.line == "open until 15:00 CST (21:00Z)"
    assert verdict.next_change == utc(2026, 1, 5, 21, 0)
    assert verdict.next_reasons == ("outside the allowed hours Mon-Thu 09:00-15:00",)


def test_a_weekly_range_includes_its_start_and_excludes_its_end():
    schedule = window(allow=[HOURS])
    assert text_at(schedule, local(CHICAGO, 2026, 1, 5, 8, 59, 59)) == "closed: opens 09:00 CST (15:00Z), in 1s"
    assert evaluate(schedule, local(CHICAGO, 2026, 1, 5, 9, 0)).open
    assert evaluate(schedule, local(CHICAGO, 2026, 1, 5, 14, 59, 59)).open
    assert not evaluate(schedule, local(CHICAGO, 2026, 1, 5, 15, 0)).open


def test_no_allow_means_always_open():
    assert text_at(window(), local(CHICAGO, 2026, 1, 5, 3, 0)) == "open, no closing within 400 days"


def test_after_thursday_the_window_opens_on_monday():
    assert text_at(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 8, 16, 0)) == "closed: opens Mon 09:00 CST (15:00Z), in 3d17h"


def test_an_opening_a_week_or_more_ahead_gives_the_date():
    verdict = evaluate(window(allow=[HOURS], deny=["2026-01-05..2026-01-16"]), local(CHICAGO, 2026, 1, 5, 10, 0))
    assert verdict.text == "closed: opens Mon 2026-01-19 09:00 CST (15:00Z), in 13d23h"
    assert verdict.reasons == ('in deny entry "2026-01-05..2026-01-16"',)


def test_a_list_of_days():
    schedule = window(allow=["Mon,Wed 10:00-12:00"])
    assert text_at(schedule, local(CHICAGO, 2026, 1, 6, 11, 0)) == "closed: opens Wed 10:00 CST (16:00Z), in 23h"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 7, 11, 0)) == "open until 12:00 CST (18:00Z)"


def test_touching_and_overlapping_ranges_make_one_window():
    assert text_at(window(allow=["Mon 00:00-24:00", "Tue 00:00-24:00"]), local(CHICAGO, 2026, 1, 5, 12, 0)) == \
        "open until Wed 00:00 CST (06:00Z)"
    assert text_at(window(allow=["Mon 09:00-12:00", "Mon 11:00-13:00"]), local(CHICAGO, 2026, 1, 5, 10, 0)) == \
        "open until 13:00 CST (19:00Z)"


# --- ranges that cross midnight, and the end of the week ----------------------------------------------


def test_a_friday_night_range_runs_into_saturday():
    schedule = window(allow=["Fri 22:00-02:00"])
    assert text_at(schedule, local(CHICAGO, 2026, 1, 9, 21, 59)) == "closed: opens 22:00 CST (Sat 04:00Z), in 1m"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 9, 23, 0)) == "open until Sat 02:00 CST (08:00Z)"
    assert evaluate(schedule, local(CHICAGO, 2026, 1, 10, 1, 59, 59)).open
    assert text_at(schedule, local(CHICAGO, 2026, 1, 10, 2, 0)) == "closed: opens Fri 22:00 CST (Sat 04:00Z), in 6d20h"


def test_a_sunday_night_range_runs_into_monday_across_the_end_of_the_week():
    schedule = window(allow=["Sun 22:00-02:00"])
    assert text_at(schedule, local(CHICAGO, 2026, 1, 12, 1, 30)) == "open until 02:00 CST (08:00Z)"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 12, 2, 0)) == "closed: opens Sun 22:00 CST (Mon 04:00Z), in 6d20h"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 11, 23, 0)) == "open until Mon 02:00 CST (08:00Z)"


def test_a_day_range_can_wrap_round_the_week():
    schedule = window(allow=["Sat-Mon 09:00-10:00"])
    assert evaluate(schedule, local(CHICAGO, 2026, 1, 11, 9, 30)).open  # Sunday
    assert evaluate(schedule, local(CHICAGO, 2026, 1, 12, 9, 30)).open  # Monday
    assert text_at(schedule, local(CHICAGO, 2026, 1, 13, 9, 30)) == "closed: opens Sat 09:00 CST (15:00Z), in 3d23h30m"


def test_a_whole_day_ends_at_midnight():
    assert text_at(window(allow=["Sun 00:00-24:00"]), local(CHICAGO, 2026, 1, 11, 23, 59)) == "open until Mon 00:00 CST (06:00Z)"


# --- deny: dates and date-times, inclusive at the end -------------------------------------------------


def test_a_date_range_denies_whole_days_inclusive():
    schedule = window(deny=["2026-11-26..2026-11-30"])
    assert text_at(schedule, local(CHICAGO, 2026, 11, 25, 23, 59, 59)) == "open until Thu 00:00 CST (06:00Z)"
    verdict = evaluate(schedule, local(CHICAGO, 2026, 11, 26, 0, 0))
    assert verdict.text == "closed: opens Tue 00:00 CST (06:00Z), in 5d"
    assert verdict.reasons == ('in deny entry "2026-11-26..2026-11-30"',)
    assert not evaluate(schedule, local(CHICAGO, 2026, 11, 30, 23, 59, 59)).open
    assert text_at(schedule, local(CHICAGO, 2026, 12, 1, 0, 0)) == "open, no closing within 400 days"


def test_a_date_time_range_is_inclusive_to_the_minute():
    schedule = window(deny=["2026-12-24 12:00..2026-12-26 23:59"])
    assert text_at(schedule, local(CHICAGO, 2026, 12, 24, 11, 59, 59)) == "open until 12:00 CST (18:00Z)"
    assert text_at(schedule, local(CHICAGO, 2026, 12, 24, 12, 0)) == "closed: opens Sun 00:00 CST (06:00Z), in 2d12h"
    assert not evaluate(schedule, local(CHICAGO, 2026, 12, 26, 23, 59, 59)).open
    assert evaluate(schedule, local(CHICAGO, 2026, 12, 27, 0, 0)).open


def test_a_single_date_time_denies_that_minute():
    schedule = window(deny=["2026-12-24 12:00"])
    assert not evaluate(schedule, local(CHICAGO, 2026, 12, 24, 12, 0, 59)).open
    assert evaluate(schedule, local(CHICAGO, 2026, 12, 24, 12, 1)).open


def test_deny_beats_allow():
    schedule = window(allow=[HOURS], deny=["2026-01-06", "2026-01-05 12:00..2026-01-05 12:59"])
    verdict = evaluate(schedule, local(CHICAGO, 2026, 1, 6, 10, 0))
    assert (verdict.open, verdict.reasons) == (False, ('in deny entry "2026-01-06"',))
    assert verdict.text == "closed: opens Wed 09:00 CST (15:00Z), in 23h"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 5, 10, 0)) == "open until 12:00 CST (18:00Z)"
    assert text_at(schedule, local(CHICAGO, 2026, 1, 5, 12, 30)) == "closed: opens 13:00 CST (19:00Z), in 30m"


def test_every_reason_is_given_strongest_first():
    schedule = window(allow=[HOURS], deny=["2026-01-06"])
    verdict = evaluate(schedule, local(CHICAGO, 2026, 1, 6, 20, 0), [("ProdFreeze", "CLOSED", None, None)])
    assert verdict.reasons == ("calendar ProdFreeze CLOSED", 'in deny entry "2026-01-06"',
                               "outside the allowed hours Mon-Thu 09:00-15:00")


# --- change calendars ---------------------------------------------------------------------------------

MONDAY_10 = local(CHICAGO, 2026, 1, 5, 10, 0)


def test_a_closed_calendar_beats_allow_and_opens_at_its_next_transition():
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, [CalendarState("ProdFreeze", "CLOSED", utc(2026, 1, 5, 18, 0))])
    assert (verdict.open, verdict.reasons) == (False, ("calendar ProdFreeze CLOSED",))
    assert verdict.text == "closed: opens 12:00 CST (18:00Z), in 2h"


def test_a_calendar_opening_outside_allow_waits_for_the_next_range():
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, [("ProdFreeze", "CLOSED", utc(2026, 1, 5, 22, 0), None)])
    assert verdict.text == "closed: opens Tue 09:00 CST (15:00Z), in 23h"


def test_a_closed_calendar_without_a_next_transition_has_no_known_opening():
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, [("ProdFreeze", "CLOSED", None, None)])
    assert verdict.text == "closed: no opening known within 400 days"
    assert verdict.next_change is None


def test_an_unreadable_calendar_counts_as_closed_naming_the_error():
    calendar = ("arn:aws:ssm:us-east-2:123456789012:document/ProdFreeze", "OPEN", None,
                "AccessDeniedException: not allowed\n  to GetCalendarState")
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, [calendar])
    assert not verdict.open
    assert verdict.reasons == ("calendar arn:aws:ssm:us-east-2:123456789012:document/ProdFreeze counted as CLOSED: "
                               "AccessDeniedException: not allowed to GetCalendarState",)


def test_a_calendar_state_other_than_open_or_closed_counts_as_closed():
    verdict = evaluate(window(), MONDAY_10, [("ProdFreeze", "PENDING", None, None)])
    assert verdict.reasons == ("calendar ProdFreeze counted as CLOSED: state 'PENDING' is neither OPEN nor CLOSED",)


def test_an_open_calendar_closes_the_window_at_its_next_transition():
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, [("ProdFreeze", "open", utc(2026, 1, 5, 18, 0), None)])
    assert verdict.text == "open until 12:00 CST (18:00Z)"
    assert verdict.next_reasons == ("calendar ProdFreeze CLOSED",)


def test_a_next_transition_already_past_is_ignored():
    verdict = evaluate(window(), MONDAY_10, [("ProdFreeze", "CLOSED", MONDAY_10 - timedelta(seconds=1), None)])
    assert verdict.text == "closed: no opening known within 400 days"


def test_after_an_open_calendar_turns_closed_nothing_more_is_known():
    opens_at_11 = ("A", "CLOSED", utc(2026, 1, 5, 17, 0), None)
    verdict = evaluate(window(), MONDAY_10, [opens_at_11, ("B", "OPEN", utc(2026, 1, 5, 17, 30), None)])
    assert verdict.text == "closed: opens 11:00 CST (17:00Z), in 1h"
    verdict = evaluate(window(), MONDAY_10, [opens_at_11, ("B", "OPEN", utc(2026, 1, 5, 16, 30), None)])
    assert verdict.text == "closed: no opening known within 400 days"


def test_a_naive_instant_is_a_programming_error():
    with pytest.raises(ValueError, match="at must be an aware datetime"):
        evaluate(window(), datetime(2026, 1, 5, 10, 0))
    with pytest.raises(ValueError, match="calendar C next_transition must be an aware datetime"):
        evaluate(window(), MONDAY_10, [("C", "OPEN", datetime(2026, 1, 5, 12, 0), None)])


# --- stay_open_for ------------------------------------------------------------------------------------


def test_a_bake_that_would_outlast_the_schedule_is_refused():
    verdict = evaluate(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 5, 13, 50), stay_open_for=2 * 3600)
    assert verdict.open and not verdict.passed
    assert verdict.refusal == ("closes at 15:00 CST (21:00Z), in 1h10m, before the 2h bake ends "
                               "(then outside the allowed hours Mon-Thu 09:00-15:00)")
    assert verdict.line == f"open but {verdict.refusal}"


def test_a_bake_that_ends_as_the_window_closes_is_allowed():
    assert evaluate(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 5, 13, 50), stay_open_for=70 * 60).passed


def test_a_bake_that_would_outlast_an_open_calendar_is_refused():
    calendars = [("ProdFreeze", "OPEN", utc(2026, 1, 5, 18, 0), None)]
    verdict = evaluate(window(allow=[HOURS]), MONDAY_10, calendars, stay_open_for=3 * 3600, stay_label="stay_open_for")
    assert verdict.refusal == ("closes at 12:00 CST (18:00Z), in 2h, before the 3h stay_open_for ends "
                               "(then calendar ProdFreeze CLOSED)")
    assert evaluate(window(allow=[HOURS]), MONDAY_10, calendars, stay_open_for=2 * 3600).passed


def test_a_bake_while_closed_is_not_a_refusal_but_still_does_not_pass():
    verdict = evaluate(window(allow=[HOURS]), local(CHICAGO, 2026, 1, 5, 20, 0), stay_open_for=3600)
    assert verdict.refusal is None and not verdict.passed


# --- DST: local wall times to instants ----------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, wall, instant",
    [
        # Chicago springs forward 2026-03-08 02:00 CST -> 03:00 CDT (08:00Z): the gap means 03:00 CDT.
        (CHICAGO, (2026, 3, 8, 1, 59), utc(2026, 3, 8, 7, 59)),
        (CHICAGO, (2026, 3, 8, 2, 0), utc(2026, 3, 8, 8, 0)),
        (CHICAGO, (2026, 3, 8, 2, 30), utc(2026, 3, 8, 8, 0)),
        (CHICAGO, (2026, 3, 8, 3, 0), utc(2026, 3, 8, 8, 0)),
        # Chicago falls back 2026-11-01 02:00 CDT -> 01:00 CST (07:00Z): 01:xx is the first (CDT) one.
        (CHICAGO, (2026, 11, 1, 1, 30), utc(2026, 11, 1, 6, 30)),
        (CHICAGO, (2026, 11, 1, 2, 0), utc(2026, 11, 1, 8, 0)),
        # Dublin: GMT in winter, IST (+1) in summer, whatever sign its database gives "DST".
        (DUBLIN, (2026, 1, 15, 12, 0), utc(2026, 1, 15, 12, 0)),
        (DUBLIN, (2026, 7, 15, 12, 0), utc(2026, 7, 15, 11, 0)),
        # Dublin springs forward 2026-03-29 01:00 GMT -> 02:00 IST (01:00Z).
        (DUBLIN, (2026, 3, 29, 0, 59), utc(2026, 3, 29, 0, 59)),
        (DUBLIN, (2026, 3, 29, 1, 30), utc(2026, 3, 29, 1, 0)),
        (DUBLIN, (2026, 3, 29, 2, 0), utc(2026, 3, 29, 1, 0)),
        # Dublin falls back 2026-10-25 02:00 IST -> 01:00 GMT (01:00Z).
        (DUBLIN, (2026, 10, 25, 1, 30), utc(2026, 10, 25, 0, 30)),
        (DUBLIN, (2026, 10, 25, 2, 0), utc(2026, 10, 25, 2, 0)),
        # A half-hour gap: Lord Howe Island goes from +10:30 to +11 at 02:00 local on 2026-10-04.
        (zoneinfo.ZoneInfo("Australia/Lord_Howe"), (2026, 10, 4, 2, 15), utc(2026, 10, 3, 15, 30)),
    ],
)
def test_a_wall_time_in_a_gap_is_the_gaps_end_and_one_in_a_fold_the_earlier(zone, wall, instant):
    assert local_instant(datetime(*wall), zone) == instant


# --- DST: America/Chicago -----------------------------------------------------------------------------


def test_chicago_spring_a_start_in_the_gap_opens_when_the_gap_ends():
    schedule = window(allow=["Sun 02:30-04:00"])
    assert text_at(schedule, utc(2026, 3, 8, 7, 59)) == "closed: opens 03:00 CDT (08:00Z), in 1m"
    assert text_at(schedule, utc(2026, 3, 8, 8, 0)) == "open until 04:00 CDT (09:00Z)"


def test_chicago_spring_an_end_in_the_gap_closes_when_the_gap_ends():
    schedule = window(allow=["Sun 01:00-02:30"])
    assert text_at(schedule, utc(2026, 3, 8, 7, 30)) == "open until 03:00 CDT (08:00Z)"
    assert text_at(schedule, utc(2026, 3, 8, 8, 0)) == "closed: opens Sun 2026-03-15 01:00 CDT (06:00Z), in 6d22h"


def test_chicago_spring_a_range_inside_the_gap_is_empty_that_day():
    assert text_at(window(allow=["Sun 02:10-02:50"]), utc(2026, 3, 8, 7, 0)) == \
        "closed: opens Sun 2026-03-15 02:10 CDT (07:10Z), in 7d00h10m"


def test_chicago_spring_a_range_spanning_the_transition_is_an_hour_shorter():
    schedule = window(allow=["Sat 22:00-06:00"])
    assert text_at(schedule, local(CHICAGO, 2026, 3, 7, 22, 30)) == "open until Sun 06:00 CDT (11:00Z)"
    assert text_at(schedule, utc(2026, 3, 8, 8, 0)) == "open until 06:00 CDT (11:00Z)"
    assert evaluate(schedule, utc(2026, 3, 8, 10, 59, 59)).open
    assert not evaluate(schedule, utc(2026, 3, 8, 11, 0)).open
    start = local(CHICAGO, 2026, 3, 7, 23, 0)  # 6 real hours before the end, 7 on the wall clock
    assert evaluate(schedule, start, stay_open_for=6 * 3600).passed
    assert evaluate(schedule, start, stay_open_for=6 * 3600 + 60).refusal == (
        "closes at Sun 06:00 CDT (11:00Z), in 6h, before the 6h01m bake ends "
        "(then outside the allowed hours Sat 22:00-06:00)")


def test_chicago_spring_the_next_opening_counts_real_hours():
    assert text_at(window(allow=["Sun 09:00-10:00"]), local(CHICAGO, 2026, 3, 7, 20, 0)) == \
        "closed: opens Sun 09:00 CDT (14:00Z), in 12h"


def test_chicago_spring_a_deny_ending_in_the_gap_ends_when_the_gap_ends():
    schedule = window(deny=["2026-03-08 01:30..2026-03-08 02:30"])
    assert text_at(schedule, utc(2026, 3, 8, 7, 59)) == "closed: opens 03:00 CDT (08:00Z), in 1m"


def test_chicago_fall_a_start_in_the_fold_is_the_first_one():
    schedule = window(allow=["Sun 01:30-03:00"])
    assert text_at(schedule, utc(2026, 11, 1, 6, 29)) == "closed: opens 01:30 CDT (06:30Z), in 1m"
    assert text_at(schedule, utc(2026, 11, 1, 6, 30)) == "open until 03:00 CST (09:00Z)"
    assert evaluate(schedule, local(CHICAGO, 2026, 11, 1, 1, 30, fold=1)).open
    assert not evaluate(schedule, utc(2026, 11, 1, 9, 0)).open


def test_chicago_fall_an_end_in_the_fold_is_the_first_one():
    schedule = window(allow=["Sun 00:00-01:30"])
    assert text_at(schedule, utc(2026, 11, 1, 6, 29)) == "open until 01:30 CDT (06:30Z)"
    assert text_at(schedule, local(CHICAGO, 2026, 11, 1, 1, 15, fold=1)) == \
        "closed: opens Sun 2026-11-08 00:00 CST (06:00Z), in 6d22h45m"


def test_chicago_fall_a_range_spanning_the_transition_is_an_hour_longer():
    schedule = window(allow=["Sat 22:00-06:00"])
    verdict = evaluate(schedule, local(CHICAGO, 2026, 10, 31, 22, 0))
    assert verdict.text == "open until Sun 06:00 CST (12:00Z)"
    assert verdict.next_change - verdict.at == timedelta(hours=9)


def test_chicago_fall_the_next_opening_counts_real_hours():
    assert text_at(window(allow=["Sun 09:00-10:00"]), local(CHICAGO, 2026, 10, 31, 20, 0)) == \
        "closed: opens Sun 09:00 CST (15:00Z), in 14h"


# --- DST: Europe/Dublin -------------------------------------------------------------------------------


def test_dublin_spring_a_start_in_the_gap_opens_when_the_gap_ends():
    schedule = window(allow=["Sun 01:30-03:00"], zone="Europe/Dublin")
    assert text_at(schedule, utc(2026, 3, 29, 0, 59)) == "closed: opens 02:00 IST (01:00Z), in 1m"
    assert text_at(schedule, utc(2026, 3, 29, 1, 0)) == "open until 03:00 IST (02:00Z)"


def test_dublin_spring_a_range_spanning_the_transition_is_an_hour_shorter():
    schedule = window(allow=["Sat 22:00-06:00"], zone="Europe/Dublin")
    verdict = evaluate(schedule, utc(2026, 3, 28, 22, 0))
    assert verdict.text == "open until Sun 06:00 IST (05:00Z)"
    assert verdict.next_change - verdict.at == timedelta(hours=7)
    assert text_at(schedule, utc(2026, 3, 29, 0, 30)) == "open until 06:00 IST (05:00Z)"


def test_dublin_spring_the_next_opening_counts_real_hours():
    assert text_at(window(allow=["Sun 09:00-10:00"], zone="Europe/Dublin"), utc(2026, 3, 28, 20, 0)) == \
        "closed: opens Sun 09:00 IST (08:00Z), in 12h"


def test_dublin_fall_starts_and_ends_in_the_fold_are_the_first_ones():
    schedule = window(allow=["Sun 01:30-03:00"], zone="Europe/Dublin")
    assert text_at(schedule, utc(2026, 10, 25, 0, 29)) == "closed: opens 01:30 IST (00:30Z), in 1m"
    assert text_at(schedule, utc(2026, 10, 25, 0, 30)) == "open until 03:00 GMT (03:00Z)"
    assert evaluate(schedule, local(DUBLIN, 2026, 10, 25, 1, 30, fold=1)).open
    ends_in_fold = window(allow=["Sun 00:00-01:30"], zone="Europe/Dublin")
    assert text_at(ends_in_fold, utc(2026, 10, 25, 0, 0)) == "open until 01:30 IST (00:30Z)"
    assert not evaluate(ends_in_fold, local(DUBLIN, 2026, 10, 25, 1, 15, fold=1)).open


def test_dublin_fall_the_next_opening_counts_real_hours():
    assert text_at(window(allow=["Sun 09:00-10:00"], zone="Europe/Dublin"), local(DUBLIN, 2026, 10, 24, 20, 0)) == \
        "closed: opens Sun 09:00 GMT (09:00Z), in 14h"


def test_dublin_fall_a_denied_day_lasts_25_hours():
    schedule = window(deny=["2026-10-25"], zone="Europe/Dublin")
    assert text_at(schedule, utc(2026, 10, 24, 22, 59, 59)) == "open until Sun 00:00 IST (Sat 23:00Z)"
    assert text_at(schedule, utc(2026, 10, 24, 23, 0)) == "closed: opens Mon 00:00 GMT (00:00Z), in 1d01h"


# --- text ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0s"), (45, "45s"), (60, "1m"), (5400, "1h30m"), (50520, "14h02m"), (7200, "2h"),
     (90061, "1d01h01m01s"), (3 * 86400 + 300, "3d00h05m"), (59.9, "59s")],
)
def test_format_span(seconds, text):
    assert format_span(seconds) == text


def test_format_instant_same_day_this_week_and_later():
    at = local(CHICAGO, 2026, 1, 5, 8, 0)
    assert format_instant(utc(2026, 1, 5, 21, 0), CHICAGO, at) == "15:00 CST (21:00Z)"
    assert format_instant(utc(2026, 1, 11, 21, 0), CHICAGO, at) == "Sun 15:00 CST (21:00Z)"
    assert format_instant(utc(2026, 1, 12, 21, 0), CHICAGO, at) == "Mon 2026-01-12 15:00 CST (21:00Z)"
    assert format_instant(utc(2026, 1, 6, 4, 0), CHICAGO, at) == "22:00 CST (Tue 04:00Z)"


# --- properties ---------------------------------------------------------------------------------------

ZONES = ["America/Chicago", "Europe/Dublin", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]
TRANSITIONS = [utc(2026, 3, 8, 8), utc(2026, 11, 1, 7), utc(2026, 3, 29, 1), utc(2026, 10, 25, 1), utc(2026, 10, 3, 15, 30)]
instants = st.one_of(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)),
    st.builds(lambda t, s: t + timedelta(seconds=s), st.sampled_from(TRANSITIONS), st.integers(-4 * 3600, 4 * 3600)),
)
minutes = st.one_of(st.sampled_from([0, 60, 90, 120, 150, 180, 1320]), st.integers(0, 1439))


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


@st.composite
def weekly_specs(draw):
    """An allow entry as (text, weekday numbers, start minute, length in minutes), the numbers worked
    out here, apart from the parser."""
    first, last = draw(st.integers(0, 6)), draw(st.integers(0, 6))
    if draw(st.booleans()):
        days, names = {(first + k) % 7 for k in range((last - first) % 7 + 1)}, f"{WEEKDAYS[first]}-{WEEKDAYS[last]}"
    else:
        days, names = {first, last}, f"{WEEKDAYS[first]},{WEEKDAYS[last].upper()}"
    start = draw(minutes)
    end = draw(st.integers(0, 1440).filter(lambda m: m != start))
    length = end - start if end > start else end + 1440 - start
    return f"{names} {_clock(start)}-{'24:00' if end == 1440 else _clock(end)}", days, start, length


@st.composite
def deny_specs(draw):
    """A deny entry as (text, first wall time, wall time just after its end)."""
    first = datetime.combine(draw(st.dates(date(2026, 1, 1), date(2026, 12, 31))), datetime.min.time())
    days = draw(st.integers(0, 20))
    if draw(st.booleans()):
        last = first + timedelta(days=days)
        return f"{first:%Y-%m-%d}..{last:%Y-%m-%d}", first, last + timedelta(days=1)
    first += timedelta(minutes=draw(minutes))
    last = first + timedelta(days=days, minutes=draw(st.integers(0, 1439)))
    return f"{first:%Y-%m-%d %H:%M}..{last:%Y-%m-%d %H:%M}", first, last + timedelta(minutes=1)


@st.composite
def calendar_reads(draw, at: datetime):
    """Calendars as read at `at`: a state, maybe a next transition within 30 days, rarely an error."""
    reads = []
    for i in range(draw(st.integers(0, 2))):
        flips = at + timedelta(seconds=draw(st.integers(1, 30 * 86400))) if draw(st.booleans()) else None
        error = "ThrottlingException: rate exceeded" if draw(st.integers(0, 9)) == 0 else None
        reads.append(CalendarState(f"Cal{i}", draw(st.sampled_from(["OPEN", "CLOSED"])), flips, error))
    return reads


def read_later(calendars, t: datetime):
    """The same calendars as read at a later instant `t`: a transition reached has flipped the state,
    and what comes after it is not known yet."""
    flipped = {"OPEN": "CLOSED", "CLOSED": "OPEN"}
    return [c._replace(state=flipped[c.state], next_transition=None) if c.next_transition and c.next_transition <= t
            else c for c in calendars]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.one_of(st.none(), st.lists(weekly_specs(), min_size=1, max_size=3)),
       st.lists(deny_specs(), max_size=2), instants, st.data())
def test_the_next_change_is_the_first_instant_the_state_differs(zone, allow, deny, at, data):
    schedule = window([spec[0] for spec in allow] if allow else None, [spec[0] for spec in deny], zone)
    calendars = data.draw(calendar_reads(at))
    verdict = evaluate(schedule, at, calendars)
    assert verdict.open == (verdict.reasons == ())
    if verdict.next_change is None:
        assert verdict.text.endswith(f"within {HORIZON.days} days")
        return
    change = verdict.next_change
    assert at < change <= at + HORIZON
    after = evaluate(schedule, change, read_later(calendars, change))
    assert after.open != verdict.open
    for fraction in data.draw(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=3)):
        between = at + (change - at) * fraction
        if between >= change:  # rounding to microseconds
            continue
        later = evaluate(schedule, between, read_later(calendars, between))
        assert (later.open, later.next_change) == (verdict.open, change)


def _oracle_open(allow, deny, zone: zoneinfo.ZoneInfo, at: datetime) -> bool:
    """Open or not, worked out on the wall clock of a zone without DST: minutes into the week against
    each range, and wall times against each deny entry."""
    wall = at.astimezone(zone).replace(tzinfo=None)
    into_week = wall.weekday() * 1440 + wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    allowed = allow is None or any((into_week - (day * 1440 + start)) % (7 * 1440) < length
                                   for _, days, start, length in allow for day in days)
    return allowed and not any(first <= wall < after for _, first, after in deny)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["UTC", "Asia/Kolkata", "Asia/Tokyo"]),
       st.one_of(st.none(), st.lists(weekly_specs(), min_size=1, max_size=3)), st.lists(deny_specs(), max_size=2), instants)
def test_open_or_closed_agrees_with_the_wall_clock_where_there_is_no_dst(zone, allow, deny, at):
    schedule = window([spec[0] for spec in allow] if allow else None, [spec[0] for spec in deny], zone)
    assert evaluate(schedule, at).open == _oracle_open(allow, deny, zoneinfo.ZoneInfo(zone), at)
