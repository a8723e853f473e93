"""The pure rules of scheduling (domain/scheduling.py): slots in the facility's local time across DST,
every-N-weeks and validity, booking windows per kind of person and visit, allowance periods in local
time, the party, conflicts and station choice, approval and cancellation. No database, no clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from openvisit.domain import scheduling as s
from openvisit.domain.enums import (
    AllowancePeriod,
    BookableBy,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import Conflict, DomainError, Forbidden, InvalidInput

BERLIN = ZoneInfo("Europe/Berlin")  # CET/CEST: spring forward 2026-03-29 02:00, fall back 2026-10-25 03:00
NEW_YORK = ZoneInfo("America/New_York")  # spring forward 2026-03-08 02:00, fall back 2026-11-01 02:00
KRASNOYARSK = ZoneInfo("Asia/Krasnoyarsk")  # UTC+7, no DST
SUNDAY = 6


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A facility wall time (first occurrence when repeated) as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def template(
    weekday: int = 0,
    start: time = time(9, 0),
    end: time = time(12, 0),
    *,
    slot: int = 30,
    buffer: int = 5,
    valid_from: date = date(2026, 1, 1),
    valid_to: date | None = None,
    every_n_weeks: int = 1,
    template_id: int = 1,
    group_id: int = 10,
    **flags: object,
) -> s.Template:
    return s.Template(
        id=template_id,
        group_id=group_id,
        weekday=weekday,
        start_time=start,
        end_time=end,
        slot_minutes=slot,
        buffer_minutes=buffer,
        valid_from=valid_from,
        valid_to=valid_to,
        every_n_weeks=every_n_weeks,
        **flags,  # type: ignore[arg-type]
    )


def walls(slots: list[s.Slot], zone: ZoneInfo) -> list[tuple[str, str]]:
    """Each slot's start and end as the facility's wall clock shows them."""
    return [
        (x.starts_at.astimezone(zone).strftime("%H:%M"), x.ends_at.astimezone(zone).strftime("%H:%M"))
        for x in slots
    ]


def raises_code(error: type[DomainError], code: str) -> pytest.RaisesExc[DomainError]:
    return pytest.raises(error, check=lambda e: e.code == code)


# --- the facility's rules -------------------------------------------------------------------------


def test_defaults_are_those_of_the_domain() -> None:
    rules = s.Rules(timezone="Asia/Krasnoyarsk")
    assert rules.changeover_minutes == 5
    assert (rules.public_min_notice_hours, rules.public_max_days) == (24, 14)
    assert (rules.staff_min_notice_hours, rules.staff_max_days) == (1, 28)
    assert rules.legal_min_notice_hours == 2
    assert rules.hold_minutes == 10
    assert (rules.allowance_count, rules.allowance_period) == (4, AllowancePeriod.WEEK)
    assert rules.max_visitors == 3


def test_minimum_notice_per_person_and_kind() -> None:
    rules = s.Rules(timezone="Europe/Berlin")
    assert rules.min_notice(VisitKind.SOCIAL, by_staff=False) == timedelta(hours=24)
    assert rules.min_notice(VisitKind.LEGAL, by_staff=False) == timedelta(hours=2)
    assert rules.min_notice(VisitKind.SOCIAL, by_staff=True) == timedelta(hours=1)
    # Staff are never held to more notice than the public for a legal visit.
    assert rules.min_notice(VisitKind.LEGAL, by_staff=True) == timedelta(hours=1)
    assert (rules.max_days(by_staff=False), rules.max_days(by_staff=True)) == (14, 28)


def test_local_date_is_the_facility_calendar_day() -> None:
    rules = s.Rules(timezone="Asia/Krasnoyarsk")
    assert rules.local_date(utc(2026, 3, 2, 16, 59)) == date(2026, 3, 2)
    assert rules.local_date(utc(2026, 3, 2, 17, 0)) == date(2026, 3, 3)


# --- local wall times and DST ---------------------------------------------------------------------


def test_wall_time_to_utc_in_winter_and_summer() -> None:
    assert s.local_to_utc(date(2026, 3, 28), time(9, 0), BERLIN) == utc(2026, 3, 28, 8, 0)
    assert s.local_to_utc(date(2026, 3, 30), time(9, 0), BERLIN) == utc(2026, 3, 30, 7, 0)
    assert s.local_to_utc(date(2026, 3, 2), time(9, 0), KRASNOYARSK) == utc(2026, 3, 2, 2, 0)


@pytest.mark.parametrize(
    ("zone", "day", "at"),
    [
        (BERLIN, date(2026, 3, 29), time(2, 0)),
        (BERLIN, date(2026, 3, 29), time(2, 30)),
        (BERLIN, date(2026, 3, 29), time(2, 59)),
        (NEW_YORK, date(2026, 3, 8), time(2, 15)),
    ],
)
def test_a_wall_time_the_clocks_skip_does_not_exist(zone: ZoneInfo, day: date, at: time) -> None:
    assert s.local_to_utc(day, at, zone) is None
    with raises_code(InvalidInput, "visit.nonexistent_local_time") as caught:
        s.check_local_time_exists(day, at, zone)
    assert caught.value.field == "starts_at"


def test_the_edges_of_the_gap_exist() -> None:
    assert s.check_local_time_exists(date(2026, 3, 29), time(1, 59), BERLIN) == utc(2026, 3, 29, 0, 59)
    assert s.check_local_time_exists(date(2026, 3, 29), time(3, 0), BERLIN) == utc(2026, 3, 29, 1, 0)


def test_a_repeated_wall_time_is_taken_at_its_first_occurrence() -> None:
    # 02:30 happens twice in Berlin on 25 October (CEST, then CET); 01:30 twice in New York on 1 November.
    assert s.local_to_utc(date(2026, 10, 25), time(2, 30), BERLIN) == utc(2026, 10, 25, 0, 30)
    assert s.local_to_utc(date(2026, 11, 1), time(1, 30), NEW_YORK) == utc(2026, 11, 1, 5, 30)


# --- templates and slots --------------------------------------------------------------------------


def test_slots_start_every_slot_plus_buffer_and_fit_in_the_session() -> None:
    t = template(weekday=0, start=time(9, 0), end=time(11, 0), slot=30, buffer=5)
    slots = s.template_slots(t, date(2026, 3, 2), KRASNOYARSK)
    assert walls(slots, KRASNOYARSK) == [("09:00", "09:30"), ("09:35", "10:05"), ("10:10", "10:40")]
    assert slots[0].starts_at == utc(2026, 3, 2, 2, 0)
    assert all(x.local_date == date(2026, 3, 2) for x in slots)
    assert all((x.template_id, x.group_id) == (t.id, t.group_id) for x in slots)


def test_a_session_exactly_as_long_as_its_slots_is_used_to_the_end() -> None:
    t = template(start=time(9, 0), end=time(10, 0), slot=30, buffer=0)
    assert walls(s.template_slots(t, date(2026, 3, 2), KRASNOYARSK), KRASNOYARSK) == [
        ("09:00", "09:30"),
        ("09:30", "10:00"),
    ]


def test_daytime_slots_keep_their_wall_times_across_the_change_to_summer_time() -> None:
    saturday = template(weekday=5, start=time(10, 0), end=time(11, 0))
    sunday = template(weekday=SUNDAY, start=time(10, 0), end=time(11, 0))
    before = s.template_slots(saturday, date(2026, 3, 28), BERLIN)
    after = s.template_slots(sunday, date(2026, 3, 29), BERLIN)
    assert walls(before, BERLIN) == walls(after, BERLIN) == [("10:00", "10:30")]
    assert before[0].starts_at == utc(2026, 3, 28, 9, 0)
    assert after[0].starts_at == utc(2026, 3, 29, 8, 0)


def test_starts_in_the_spring_gap_are_skipped() -> None:
    t = template(weekday=SUNDAY, start=time(1, 0), end=time(4, 0), slot=20, buffer=10)
    slots = s.template_slots(t, date(2026, 3, 29), BERLIN)
    starts = [a for a, _ in walls(slots, BERLIN)]
    assert starts == ["01:00", "01:30", "03:00", "03:30"]
    # Each lasts its minutes of real time.
    assert all(x.ends_at - x.starts_at == timedelta(minutes=20) for x in slots)


def test_a_slot_never_runs_past_the_end_of_its_session_across_the_gap() -> None:
    # 01:35 + 30 minutes of real time is 03:05 on the wall after the clocks jump: past the 03:00 end.
    t = template(weekday=SUNDAY, start=time(1, 0), end=time(3, 0), slot=30, buffer=5)
    slots = s.template_slots(t, date(2026, 3, 29), BERLIN)
    assert walls(slots, BERLIN) == [("01:00", "01:30")]


def test_slots_of_one_template_never_overlap_across_the_gap() -> None:
    # Wall-clock steps of 65 minutes: 01:58 (CET) and 03:03 (CEST) are only 5 real minutes apart, so a
    # 60-minute visit at 01:58 would still run at 03:03. The later start must give way.
    t = template(weekday=SUNDAY, start=time(0, 53), end=time(6, 0), slot=60, buffer=5)
    slots = s.template_slots(t, date(2026, 3, 29), BERLIN)
    for first, second in pairwise(slots):
        assert second.starts_at >= first.ends_at + timedelta(minutes=5), walls([first, second], BERLIN)
    assert walls(slots, BERLIN)[:2] == [("00:53", "01:53"), ("01:58", "03:58")]


def test_slots_in_the_repeated_autumn_hour_are_taken_once() -> None:
    t = template(weekday=SUNDAY, start=time(1, 0), end=time(4, 0), slot=30, buffer=0)
    slots = s.template_slots(t, date(2026, 10, 25), BERLIN)
    starts = [x.starts_at for x in slots]
    assert len(starts) == len(set(starts)) == 6
    assert starts == sorted(starts)
    # 02:00 and 02:30 are the first (summer-time) occurrences: 00:00 and 00:30 UTC.
    assert utc(2026, 10, 25, 0, 0) in starts and utc(2026, 10, 25, 0, 30) in starts
    assert all(b.starts_at >= a.ends_at for a, b in pairwise(slots))


def test_runs_on_its_weekday_within_its_validity_only() -> None:
    t = template(weekday=2, valid_from=date(2026, 3, 4), valid_to=date(2026, 3, 18))
    assert not t.runs_on(date(2026, 3, 3))  # Tuesday
    assert t.runs_on(date(2026, 3, 4))  # first day, inclusive
    assert t.runs_on(date(2026, 3, 18))  # last day, inclusive
    assert not t.runs_on(date(2026, 3, 25))
    assert not t.runs_on(date(2026, 2, 25))
    assert template(weekday=2, valid_from=date(2026, 3, 4)).runs_on(date(2027, 3, 3))


def test_every_n_weeks_counts_weeks_from_the_week_it_becomes_valid() -> None:
    # Valid from Wednesday 4 March: that week is week 0, so the Monday sessions fall on 16 and 30 March.
    t = template(weekday=0, valid_from=date(2026, 3, 4), every_n_weeks=2)
    mondays = [date(2026, 3, 2) + timedelta(weeks=i) for i in range(6)]
    assert [d for d in mondays if t.runs_on(d)] == [date(2026, 3, 16), date(2026, 3, 30)]
    every_third = template(weekday=4, valid_from=date(2026, 3, 6), every_n_weeks=3)
    fridays = [date(2026, 3, 6) + timedelta(weeks=i) for i in range(7)]
    assert [d for d in fridays if every_third.runs_on(d)] == [
        date(2026, 3, 6),
        date(2026, 3, 27),
        date(2026, 4, 17),
    ]


def test_no_slots_on_a_day_the_template_does_not_run() -> None:
    t = template(weekday=0, valid_from=date(2026, 3, 9))
    assert s.template_slots(t, date(2026, 3, 2), KRASNOYARSK) == []
    assert s.template_slots(t, date(2026, 3, 10), KRASNOYARSK) == []
    assert s.template_slots(t, date(2026, 3, 9), KRASNOYARSK) != []


def test_generate_slots_covers_the_days_in_time_order() -> None:
    monday = template(0, time(14, 0), time(15, 0), buffer=0, template_id=1, group_id=1)
    tuesday = template(1, time(9, 0), time(10, 0), buffer=0, template_id=2, group_id=1)
    monday_morning = template(0, time(9, 0), time(10, 0), buffer=0, template_id=3, group_id=2)
    slots = s.generate_slots([monday, tuesday, monday_morning], BERLIN, date(2026, 3, 2), date(2026, 3, 9))
    assert [x.starts_at for x in slots] == sorted(x.starts_at for x in slots)
    assert {x.local_date for x in slots} == {date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 9)}
    assert [x.template_id for x in slots if x.local_date == date(2026, 3, 2)] == [3, 3, 1, 1]
    assert s.generate_slots([monday], BERLIN, date(2026, 3, 3), date(2026, 3, 8)) == []


def test_find_slot_accepts_only_an_offered_start() -> None:
    t = template(weekday=0, start=time(9, 0), end=time(12, 0))
    found = s.find_slot([t], KRASNOYARSK, utc(2026, 3, 9, 2, 35))  # 09:35 local
    assert (found.starts_at, found.ends_at) == (utc(2026, 3, 9, 2, 35), utc(2026, 3, 9, 3, 5))
    assert found.local_date == date(2026, 3, 9)
    for outside in (
        utc(2026, 3, 9, 2, 30),  # between two slots
        utc(2026, 3, 9, 1, 0),  # before the session
        utc(2026, 3, 9, 4, 40),  # 11:40: would end after 12:00
        utc(2026, 3, 10, 2, 0),  # a Tuesday
    ):
        with raises_code(InvalidInput, "visit.outside_template"):
            s.find_slot([t], KRASNOYARSK, outside)
    with raises_code(InvalidInput, "visit.outside_template"):
        s.find_slot([], KRASNOYARSK, utc(2026, 3, 9, 2, 0))


def test_every_group_offering_a_start_is_found_in_the_order_availability_tries_them() -> None:
    kiosks = template(0, time(10, 0), time(11, 0), slot=20, template_id=7, group_id=1)
    room = template(0, time(10, 0), time(11, 0), slot=30, template_id=3, group_id=2)
    other_room = template(0, time(9, 0), time(11, 0), slot=60, buffer=0, template_id=2, group_id=2)
    start = utc(2026, 3, 9, 3, 0)  # 10:00 local
    found = s.find_slots([room, other_room, kiosks], KRASNOYARSK, start)
    assert [(x.group_id, x.template_id, x.ends_at - x.starts_at) for x in found] == [
        (1, 7, timedelta(minutes=20)),
        (2, 2, timedelta(minutes=60)),
        (2, 3, timedelta(minutes=30)),
    ]
    assert s.find_slot([room, other_room, kiosks], KRASNOYARSK, start) == found[0]
    listed = [
        x
        for x in s.generate_slots([room, other_room, kiosks], KRASNOYARSK, date(2026, 3, 9), date(2026, 3, 9))
        if x.starts_at == start
    ]
    assert listed == found


def test_find_slot_uses_the_facility_day_not_the_utc_day() -> None:
    # 00:30 local Tuesday in Krasnoyarsk is still Monday in UTC.
    late = template(weekday=1, start=time(0, 30), end=time(1, 0))
    assert s.find_slot([late], KRASNOYARSK, utc(2026, 3, 9, 17, 30)).local_date == date(2026, 3, 10)


def test_find_slot_refuses_a_start_inside_a_changed_validity() -> None:
    t = template(weekday=0, valid_to=date(2026, 3, 8))
    with raises_code(InvalidInput, "visit.outside_template"):
        s.find_slot([t], KRASNOYARSK, utc(2026, 3, 9, 2, 0))


def test_template_allows_kinds_modes_people_and_units() -> None:
    def allows(t: s.Template, **kw: object) -> bool:
        args: dict[str, object] = {
            "kind": VisitKind.SOCIAL,
            "mode": VisitMode.HOME,
            "by_staff": False,
            "unit_id": 5,
        }
        args.update(kw)
        return t.allows(**args)  # type: ignore[arg-type]

    assert allows(template())
    assert not allows(template(allow_social=False))
    assert allows(template(allow_social=False), kind=VisitKind.LEGAL)
    assert not allows(template(allow_legal=False), kind=VisitKind.LEGAL)
    assert not allows(template(allow_home=False))
    assert allows(template(allow_home=False), mode=VisitMode.LINK_CENTER)
    assert not allows(template(allow_link_center=False), mode=VisitMode.LINK_CENTER)
    assert not allows(template(bookable_by=BookableBy.STAFF))
    assert allows(template(bookable_by=BookableBy.STAFF), by_staff=True)
    assert allows(template(unit_ids=frozenset({5, 6})))
    assert not allows(template(unit_ids=frozenset({6})))
    assert not allows(template(unit_ids=frozenset({6})), unit_id=None)


# --- the booking window ---------------------------------------------------------------------------

NOW = utc(2026, 3, 2, 9, 0)  # Monday; 16:00 in Krasnoyarsk
KRAS = s.Rules(timezone="Asia/Krasnoyarsk")


def window(starts_at: datetime, kind: VisitKind = VisitKind.SOCIAL, *, by_staff: bool = False) -> None:
    s.check_booking_window(KRAS, kind, starts_at, NOW, by_staff=by_staff)


def test_a_start_in_the_past_or_now_is_refused() -> None:
    for when in (NOW - timedelta(days=1), NOW - timedelta(seconds=1), NOW):
        with raises_code(InvalidInput, "visit.in_past"):
            window(when, by_staff=True)


@pytest.mark.parametrize(
    ("kind", "by_staff", "notice"),
    [
        (VisitKind.SOCIAL, False, timedelta(hours=24)),
        (VisitKind.LEGAL, False, timedelta(hours=2)),
        (VisitKind.SOCIAL, True, timedelta(hours=1)),
        (VisitKind.LEGAL, True, timedelta(hours=1)),
    ],
)
def test_minimum_notice_is_exact(kind: VisitKind, by_staff: bool, notice: timedelta) -> None:
    window(NOW + notice, kind, by_staff=by_staff)
    with raises_code(InvalidInput, "visit.too_soon") as caught:
        window(NOW + notice - timedelta(minutes=1), kind, by_staff=by_staff)
    assert caught.value.params == {"hours": notice.total_seconds() // 3600}


def test_the_last_bookable_day_is_counted_in_local_dates() -> None:
    # Today is 2 March in Krasnoyarsk; the public may book through 16 March local, staff through 30 March.
    last_public = local(KRASNOYARSK, 2026, 3, 16, 23, 30)
    first_too_far = local(KRASNOYARSK, 2026, 3, 17, 0, 0)
    assert last_public.date() == first_too_far.date() == date(2026, 3, 16)  # the same UTC day
    window(last_public)
    with raises_code(InvalidInput, "visit.too_far") as caught:
        window(first_too_far)
    assert caught.value.params == {"days": 14}
    window(local(KRASNOYARSK, 2026, 3, 30, 23, 30), by_staff=True)
    with raises_code(InvalidInput, "visit.too_far"):
        window(local(KRASNOYARSK, 2026, 3, 31, 0, 0), by_staff=True)


def test_booking_range_matches_the_window() -> None:
    earliest, last_day = s.booking_range(KRAS, VisitKind.SOCIAL, NOW, by_staff=False)
    assert (earliest, last_day) == (NOW + timedelta(hours=24), date(2026, 3, 16))
    earliest, last_day = s.booking_range(KRAS, VisitKind.LEGAL, NOW, by_staff=True)
    assert (earliest, last_day) == (NOW + timedelta(hours=1), date(2026, 3, 30))


# --- allowance ------------------------------------------------------------------------------------


def test_the_week_runs_from_local_monday_midnight() -> None:
    start, end = s.allowance_period(KRAS, utc(2026, 3, 8, 16, 30))  # Sunday 23:30 local
    assert (start, end) == (local(KRASNOYARSK, 2026, 3, 2), local(KRASNOYARSK, 2026, 3, 9))
    # Monday 00:30 local, still Sunday in UTC, belongs to the next week.
    assert s.allowance_period(KRAS, utc(2026, 3, 8, 17, 30))[0] == local(KRASNOYARSK, 2026, 3, 9)


def test_a_week_across_the_change_to_summer_time_is_an_hour_shorter() -> None:
    rules = s.Rules(timezone="Europe/Berlin")
    start, end = s.allowance_period(rules, utc(2026, 3, 29, 12, 0))
    assert (start, end) == (utc(2026, 3, 22, 23, 0), utc(2026, 3, 29, 22, 0))
    assert end - start == timedelta(days=7, hours=-1)


def test_the_month_runs_from_the_first_local_day() -> None:
    rules = s.Rules(timezone="Europe/Berlin", allowance_period=AllowancePeriod.MONTH)
    assert s.allowance_period(rules, utc(2026, 3, 15, 12, 0)) == (
        utc(2026, 2, 28, 23, 0),
        utc(2026, 3, 31, 22, 0),
    )
    assert s.allowance_period(rules, utc(2026, 12, 31, 22, 59)) == (
        utc(2026, 11, 30, 23, 0),
        utc(2026, 12, 31, 23, 0),
    )
    assert s.allowance_period(rules, utc(2026, 2, 28, 23, 30))[0] == utc(2026, 2, 28, 23, 0)


def test_allowance_periods_tile_time() -> None:
    for rules in (
        s.Rules(timezone="Europe/Berlin"),
        s.Rules(timezone="America/New_York", allowance_period=AllowancePeriod.MONTH),
    ):
        at = utc(2026, 1, 1)
        start, end = s.allowance_period(rules, at)
        for _ in range(60):
            assert start <= at < end
            next_start, next_end = s.allowance_period(rules, end)
            assert next_start == end
            at, start, end = end, next_start, next_end


@pytest.mark.parametrize(
    ("kind", "status", "counted", "counts"),
    [
        (VisitKind.SOCIAL, VisitStatus.HELD, True, True),
        (VisitKind.SOCIAL, VisitStatus.REQUESTED, True, True),
        (VisitKind.SOCIAL, VisitStatus.APPROVED, True, True),
        (VisitKind.SOCIAL, VisitStatus.IN_PROGRESS, True, True),
        (VisitKind.SOCIAL, VisitStatus.COMPLETED, True, True),
        (VisitKind.SOCIAL, VisitStatus.TERMINATED, True, True),
        (VisitKind.SOCIAL, VisitStatus.CANCELLED, True, False),
        (VisitKind.SOCIAL, VisitStatus.REJECTED, True, False),
        (VisitKind.SOCIAL, VisitStatus.FAILED, True, False),
        (VisitKind.SOCIAL, VisitStatus.APPROVED, False, False),  # credited after a system fault
        (VisitKind.LEGAL, VisitStatus.APPROVED, True, False),
        (VisitKind.LEGAL, VisitStatus.COMPLETED, True, False),
    ],
)
def test_what_uses_up_allowance(kind: VisitKind, status: VisitStatus, counted: bool, counts: bool) -> None:
    assert s.counts_toward_allowance(kind, status, counted) is counts


def test_allowance_is_refused_once_used_up() -> None:
    s.check_allowance(4, 3)
    with raises_code(Conflict, "visit.allowance_used") as caught:
        s.check_allowance(4, 4)
    assert caught.value.params == {"allowance": 4}
    with raises_code(Conflict, "visit.allowance_used"):
        s.check_allowance(0, 0)


# --- the party ------------------------------------------------------------------------------------

VISIT_DAY = date(2026, 3, 10)


def adult(n: int, *, approved: bool = True, born: date = date(1980, 1, 1)) -> s.Member:
    return s.Member(born, approved, visitor_id=n)


def child(n: int, *, approved: bool = True, born: date = date(2018, 1, 1)) -> s.Member:
    return s.Member(born, approved, dependent_id=n)


def party(lead: s.Member, *others: s.Member, rules: s.Rules = KRAS) -> None:
    s.check_party(rules, lead, list(others), VISIT_DAY)


def test_an_adult_alone_or_with_approved_company_may_visit() -> None:
    party(adult(1))
    party(adult(1), adult(2), child(3))
    party(adult(1), child(2), child(3))


def test_at_most_three_people_unless_the_facility_says_otherwise() -> None:
    with raises_code(InvalidInput, "visit.too_many_visitors") as caught:
        party(adult(1), adult(2), adult(3), child(4))
    assert caught.value.params == {"max": 3}
    party(adult(1), adult(2), adult(3), child(4), rules=s.Rules(timezone="UTC", max_visitors=4))
    with raises_code(InvalidInput, "visit.too_many_visitors"):
        party(adult(1), adult(2), rules=s.Rules(timezone="UTC", max_visitors=1))


def test_nobody_twice() -> None:
    with raises_code(InvalidInput, "visit.duplicate_participant"):
        party(adult(1), adult(1))
    with raises_code(InvalidInput, "visit.duplicate_participant"):
        party(adult(1), child(7), child(7))
    party(adult(7), child(7))  # a visitor and a child may share a number: they are different people


def test_everyone_must_be_approved() -> None:
    for members in (
        (adult(1, approved=False),),
        (adult(1), adult(2, approved=False)),
        (adult(1), child(2, approved=False)),
    ):
        with raises_code(Forbidden, "visit.visitor_not_approved"):
            party(*members)


def test_a_minor_only_beside_an_approved_adult() -> None:
    with raises_code(InvalidInput, "visit.minor_alone"):
        party(adult(1, born=date(2010, 1, 1)))
    with raises_code(InvalidInput, "visit.minor_alone"):
        party(adult(1, born=date(2010, 1, 1)), child(2))
    # An adult in the party who is not the lead: the lead must be the adult.
    with raises_code(InvalidInput, "visit.lead_not_adult"):
        party(adult(1, born=date(2010, 1, 1)), adult(2))


def test_eighteen_on_the_day_of_the_visit() -> None:
    party(adult(1, born=date(2008, 3, 10)))  # the 18th birthday is the visit day
    with raises_code(InvalidInput, "visit.minor_alone"):
        party(adult(1, born=date(2008, 3, 11)))


def test_age_counts_whole_years_and_leap_days() -> None:
    assert s.age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17
    assert s.age_on(date(2008, 2, 29), date(2026, 3, 1)) == 18
    assert s.age_on(date(2000, 12, 31), date(2001, 12, 30)) == 0


# --- conflicts and station choice -----------------------------------------------------------------

T = utc(2026, 3, 9, 2, 0)


def at(minutes: int) -> datetime:
    return T + timedelta(minutes=minutes)


def test_back_to_back_is_not_an_overlap() -> None:
    assert not s.overlaps(at(0), at(30), at(30), at(60))
    assert not s.overlaps(at(30), at(60), at(0), at(30))
    assert s.overlaps(at(0), at(30), at(29), at(60))
    assert s.overlaps(at(0), at(60), at(10), at(20))
    assert s.any_overlap(at(0), at(30), [s.Busy(at(40), at(50)), s.Busy(at(25), at(26))])
    assert not s.any_overlap(at(0), at(30), [])


def station(
    n: int,
    *,
    kind: StationKind = StationKind.UNIT_KIOSK,
    group: int | None = 1,
    unit: int | None = 1,
    room: str | None = None,
    in_service: bool = True,
) -> s.StationInfo:
    return s.StationInfo(n, f"S{n:02d}", kind, group, unit, room, in_service)


def test_eligible_stations_are_in_the_group_in_service_and_in_reach() -> None:
    stations = [
        station(1),
        station(2, unit=2),  # a kiosk in another unit
        station(3, group=2),  # another group
        station(4, in_service=False),
        station(5, kind=StationKind.VISITING_ROOM, unit=None, room="A"),
        station(6, group=None),
    ]
    chosen = s.eligible_stations(stations, group_id=1, resident_unit_id=1)
    assert [x.id for x in chosen] == [1, 5]
    assert [x.id for x in s.eligible_stations(stations, group_id=1, resident_unit_id=None)] == [5]


def test_pick_station_takes_the_first_free_by_code() -> None:
    candidates = [station(3), station(1), station(2)]
    busy = {1: [s.Busy(at(0), at(30))], 3: [s.Busy(at(30), at(60))]}
    assert s.pick_station(candidates, at(0), at(30), busy, []) == station(2)
    assert s.pick_station(candidates, at(30), at(60), busy, []) == station(1)
    full = {1: [s.Busy(at(0), at(60))], 2: [s.Busy(at(0), at(60))], 3: [s.Busy(at(0), at(60))]}
    assert s.pick_station(candidates, at(0), at(30), full, []) is None
    assert s.pick_station([], at(0), at(30), {}, []) is None


def test_keep_apart_residents_never_share_a_visiting_room() -> None:
    rooms = [
        station(1, kind=StationKind.VISITING_ROOM, room="A"),
        station(2, kind=StationKind.VISITING_ROOM, room="A"),
        station(3, kind=StationKind.VISITING_ROOM, room="B"),
    ]
    assert s.pick_station(rooms, at(0), at(30), {}, ["A"]) == rooms[2]
    assert s.pick_station(rooms, at(0), at(30), {}, ["A", "B"]) is None
    assert s.pick_station(rooms, at(0), at(30), {}, []) == rooms[0]


def test_pick_booth_takes_a_free_booth_in_service() -> None:
    booths = [
        station(2, kind=StationKind.LINK_BOOTH, group=None, unit=None),
        station(1, kind=StationKind.LINK_BOOTH, group=None, unit=None, in_service=False),
        station(3, kind=StationKind.LINK_BOOTH, group=None, unit=None),
    ]
    assert s.pick_booth(booths, at(0), at(30), {}) == booths[0]
    assert s.pick_booth(booths, at(0), at(30), {2: [s.Busy(at(10), at(20))]}) == booths[2]
    assert (
        s.pick_booth(booths, at(0), at(30), {2: [s.Busy(at(0), at(30))], 3: [s.Busy(at(0), at(30))]}) is None
    )


# --- approval and cancellation --------------------------------------------------------------------


def test_approval_is_automatic_unless_a_clerk_must_look() -> None:
    assert s.initial_status(needs_review=False) is VisitStatus.APPROVED
    assert s.initial_status(needs_review=True) is VisitStatus.REQUESTED


def test_an_undecided_request_is_rejected_at_the_minimum_notice() -> None:
    start = utc(2026, 3, 10, 6, 0)
    assert s.review_deadline(KRAS, VisitKind.SOCIAL, start) == start - timedelta(hours=1)
    assert s.review_deadline(KRAS, VisitKind.LEGAL, start) == start - timedelta(hours=1)
    assert s.AUTO_REJECT_REASON in s.CANCELLATION_REASONS


def test_a_clerk_rejects_only_with_a_preset_reason() -> None:
    for reason in s.REJECTION_REASONS:
        s.check_rejection_reason(reason)
    for bad in ("", "because", "visitor_cancelled"):
        with raises_code(InvalidInput, "visit.invalid_reason"):
            s.check_rejection_reason(bad)


START = utc(2026, 3, 10, 6, 0)
ACTIVE = (VisitStatus.HELD, VisitStatus.REQUESTED, VisitStatus.APPROVED)


@pytest.mark.parametrize("status", ACTIVE)
def test_a_visitor_cancels_until_the_start(status: VisitStatus) -> None:
    before = START - timedelta(seconds=1)
    assert s.check_cancellation(status, START, before, by_staff=False, reason=None) == "visitor_cancelled"
    # Whatever reason a visitor sends, the stored one says who cancelled.
    assert (
        s.check_cancellation(status, START, before, by_staff=False, reason="lockdown") == "visitor_cancelled"
    )
    for late in (START, START + timedelta(minutes=5)):
        with raises_code(Conflict, "visit.not_cancellable"):
            s.check_cancellation(status, START, late, by_staff=False, reason=None)


def test_a_visitor_cannot_cancel_a_visit_in_progress_but_staff_can() -> None:
    with raises_code(Conflict, "visit.not_cancellable"):
        s.check_cancellation(VisitStatus.IN_PROGRESS, START, START, by_staff=False, reason=None)
    stored = s.check_cancellation(VisitStatus.IN_PROGRESS, START, START, by_staff=True, reason="security")
    assert stored == "security"


@pytest.mark.parametrize("reason", s.STAFF_CANCELLATION_REASONS)
def test_staff_cancel_at_any_time_with_a_listed_reason(reason: str) -> None:
    late = START + timedelta(minutes=10)
    assert s.check_cancellation(VisitStatus.APPROVED, START, late, by_staff=True, reason=reason) == reason
    assert reason in s.CANCELLATION_REASONS


@pytest.mark.parametrize("reason", [None, "", "visitor_cancelled", "rescheduled", "bored"])
def test_staff_must_give_a_listed_reason(reason: str | None) -> None:
    with raises_code(InvalidInput, "visit.invalid_reason"):
        s.check_cancellation(VisitStatus.APPROVED, START, NOW, by_staff=True, reason=reason)


@pytest.mark.parametrize(
    "status",
    [
        VisitStatus.CANCELLED,
        VisitStatus.REJECTED,
        VisitStatus.COMPLETED,
        VisitStatus.TERMINATED,
        VisitStatus.FAILED,
    ],
)
def test_a_visit_that_is_over_cannot_be_cancelled(status: VisitStatus) -> None:
    for by_staff in (False, True):
        with raises_code(Conflict, "visit.not_cancellable"):
            s.check_cancellation(status, START, NOW, by_staff=by_staff, reason="other")


def test_every_reason_has_a_message() -> None:
    reasons = {**s.CANCELLATION_REASONS, **s.REJECTION_REASONS}
    assert all(message.strip() for message in reasons.values())
    assert set(s.STAFF_CANCELLATION_REASONS) <= set(s.CANCELLATION_REASONS)
