"""The live-visit service on SQLite and PostgreSQL: who joins which side and when, the check-in, the
start, every ending and what it means (suspension, credit, priority re-booking), the officers' actions,
the monitoring wall and its scope, the privilege of legal visits, and the recovery after a restart."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from openvisit.db.models import Facility, Notification, Restriction, Visit, VisitParticipant
from openvisit.domain.enums import (
    ConnectionStatus,
    NotificationChannel,
    RecordingStatus,
    RestrictionKind,
    Role,
    VisitKind,
    VisitStatus,
)
from openvisit.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.live import FailureReason
from openvisit.domain.scheduling import ALLOWANCE_STATUSES, counts_toward_allowance
from openvisit.media.engine import PrivilegedVisit, Side
from openvisit.notify.messages import MessageFacts, render
from openvisit.services import live, recordings, scheduling
from openvisit.services.context import AppContext, RequestMeta
from tests.conftest import FrozenClock
from tests.factories import connect, make_resident, make_schedule, make_visitor, principal_of
from tests.live.support import (
    Scene,
    at_link_center,
    audit_actions,
    build,
    event_kinds,
    load,
    resident_principal,
    staff,
    visit,
)

META = RequestMeta(ip="192.0.2.7", user_agent="test")


@pytest.fixture
def scene(ctx: AppContext) -> Scene:
    return build(ctx)


# --- who joins which side ---------------------------------------------------------------------------


def test_the_lead_visitor_and_the_resident_at_the_station_are_the_two_sides(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=5))
    assert live.check_join(ctx, scene.visitor, visit_id, META).side is Side.VISITOR
    grant = live.check_join(ctx, scene.resident, visit_id, META)
    assert grant.side is Side.RESIDENT
    assert grant.kind is VisitKind.SOCIAL
    assert grant.notice.value == "monitored_recorded"
    # Checking changes nothing.
    assert load(ctx, visit_id).status is VisitStatus.APPROVED


def test_the_window_is_the_facilitys_own(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    """A facility that opens visits 20 minutes early lets both sides in then, as its reminders say."""
    with ctx.db.write() as session:
        session.execute(
            sa.update(Facility).where(Facility.id == scene.place.facility_id).values(join_early_minutes=20)
        )
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=20, seconds=1))
    with pytest.raises(Conflict):
        live.check_join(ctx, scene.visitor, visit_id, META)
    clock.advance(seconds=1)
    assert live.check_join(ctx, scene.visitor, visit_id, META).side is Side.VISITOR


def test_the_window_edges(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    start = clock.now + timedelta(minutes=10, seconds=1)
    visit_id = visit(ctx, scene, starts_at=start)
    with pytest.raises(Conflict) as early:
        live.check_join(ctx, scene.visitor, visit_id, META)
    assert early.value.code == "live.too_early"
    clock.advance(seconds=1)  # exactly join_early_minutes before the start
    live.check_join(ctx, scene.visitor, visit_id, META)
    clock.now = start + timedelta(minutes=30) - timedelta(microseconds=1)
    live.check_join(ctx, scene.resident, visit_id, META)
    clock.now = start + timedelta(minutes=30)
    with pytest.raises(Conflict) as over:
        live.check_join(ctx, scene.resident, visit_id, META)
    assert over.value.code == "live.over"
    # Nobody is audited for knocking a little early or late.
    assert "visit.join_refused" not in audit_actions(ctx, "visit", visit_id)


def test_a_cancelled_visit_cannot_be_joined(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now)
    scheduling.cancel_visit(ctx, scene.admin, visit_id, META, reason="security")
    with pytest.raises(Conflict) as refused:
        live.join(ctx, scene.visitor, visit_id, META)
    assert refused.value.code == "live.not_joinable"


def test_strangers_are_refused_and_the_refusal_is_audited(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now)
    stranger_email, _ = make_visitor(ctx)
    with pytest.raises(NotFound):
        live.check_join(ctx, principal_of(ctx, stranger_email), visit_id, META)
    # Another resident's station session at this visit.
    other_id, _ = make_resident(ctx, scene.place)
    with pytest.raises(NotFound):
        live.check_join(ctx, resident_principal(ctx, other_id, scene.place.station_id), visit_id, META)
    # The right resident at another station.
    with pytest.raises(Forbidden) as elsewhere:
        live.check_join(
            ctx, resident_principal(ctx, scene.resident_id, scene.place.station_id + 999), visit_id, META
        )
    assert elsewhere.value.code == "live.wrong_station"
    # Staff are never a side.
    with pytest.raises(Forbidden) as officer:
        live.check_join(ctx, scene.officer, visit_id, META)
    assert officer.value.code == "live.not_a_side"
    assert audit_actions(ctx, "visit", visit_id).count("visit.join_refused") == 4
    with pytest.raises(NotFound):
        live.check_join(ctx, scene.visitor, 987654, META)


def test_only_the_lead_joins_for_the_party(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now)
    email, companion_id = make_visitor(ctx)
    with ctx.db.write() as s:
        s.add(VisitParticipant(visit_id=visit_id, visitor_id=companion_id, role="visitor"))
    with pytest.raises(Forbidden) as refused:
        live.check_join(ctx, principal_of(ctx, email), visit_id, META)
    assert refused.value.code == "live.lead_joins"


def test_a_link_center_visit_is_joined_by_the_booth_once_the_operator_checked_the_party_in(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=5))
    center, _booth = at_link_center(ctx, visit_id)
    operator = staff(ctx, Role.LINK_OPERATOR, link_center_id=center)
    other_operator = staff(
        ctx,
        Role.LINK_OPERATOR,
        link_center_id=at_link_center(ctx, visit(ctx, scene, starts_at=clock.now + timedelta(hours=3)))[0],
    )
    with pytest.raises(Forbidden) as from_home:
        live.check_join(ctx, scene.visitor, visit_id, META)
    assert from_home.value.code == "live.at_link_center"
    with pytest.raises(Conflict) as not_yet:
        live.check_join(ctx, operator, visit_id, META)
    assert not_yet.value.code == "live.not_checked_in"
    with pytest.raises(NotFound):
        live.check_in_party(ctx, other_operator, visit_id, META, id_checked=True)
    with pytest.raises(NotFound):
        live.check_in_party(ctx, scene.officer, visit_id, META, id_checked=True)
    with pytest.raises(InvalidInput) as unchecked:
        live.check_in_party(ctx, operator, visit_id, META, id_checked=False)
    assert unchecked.value.code == "live.id_not_checked"
    assert audit_actions(ctx, "visit", visit_id).count("visit.checked_in") == 0
    live.check_in_party(ctx, operator, visit_id, META, id_checked=True)
    live.check_in_party(
        ctx, operator, visit_id, META, id_checked=True
    )  # once is enough; again changes nothing
    with ctx.db.read() as s:
        rows = (
            s.execute(sa.select(VisitParticipant).where(VisitParticipant.visit_id == visit_id))
            .scalars()
            .all()
        )
    assert all(r.checked_in_at == clock.now and r.checked_in_by_id == operator.user_id for r in rows)
    assert audit_actions(ctx, "visit", visit_id).count("visit.checked_in") == 1
    assert live.check_join(ctx, operator, visit_id, META).side is Side.VISITOR
    with pytest.raises(NotFound):
        live.check_join(ctx, other_operator, visit_id, META)


def test_a_check_in_too_early_is_refused(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(days=1))
    center, _ = at_link_center(ctx, visit_id)
    with pytest.raises(Conflict) as early:
        live.check_in_party(
            ctx, staff(ctx, Role.LINK_OPERATOR, link_center_id=center), visit_id, META, id_checked=True
        )
    assert early.value.code == "live.too_early"


def test_the_first_join_starts_the_visit_and_records_the_rules(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=2))
    grant = live.join(ctx, scene.visitor, visit_id, META)
    assert grant.started
    row = load(ctx, visit_id)
    assert row.status is VisitStatus.IN_PROGRESS
    assert row.started_at == clock.now
    with ctx.db.read() as s:
        accepted = (
            s.execute(
                sa.select(VisitParticipant.rules_accepted_at).where(VisitParticipant.visit_id == visit_id)
            )
            .scalars()
            .all()
        )
    assert accepted == [clock.now]
    clock.advance(seconds=30)
    assert not live.join(ctx, scene.resident, visit_id, META).started
    assert audit_actions(ctx, "visit", visit_id) == ["visit.started", "visit.joined", "visit.joined"]
    assert event_kinds(ctx, visit_id) == ["rules_accepted", "started", "joined", "rules_accepted", "joined"]


# --- endings ------------------------------------------------------------------------------------------


def _running(ctx: AppContext, scene: Scene, clock: FrozenClock, *, kind: VisitKind = VisitKind.SOCIAL) -> int:
    """A visit that started five minutes ago."""
    return visit(
        ctx, scene, starts_at=clock.now - timedelta(minutes=5), status=VisitStatus.IN_PROGRESS, kind=kind
    )


def test_repeated_conduct_terminations_suspend_for_longer_each_time(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    later = visit(ctx, scene, starts_at=clock.now + timedelta(days=3))
    lengths = []
    for reason in ("conduct", "third_party", "recording_device"):
        visit_id = _running(ctx, scene, clock)
        ended = live.terminate(ctx, scene.officer, visit_id, reason, "  on camera ", META)
        assert ended.ending.outcome.value == "terminated"
        row = load(ctx, visit_id)
        assert (row.status, row.outcome, row.reason, row.reason_note) == (
            VisitStatus.TERMINATED,
            "terminated",
            reason,
            "on camera",
        )
        assert row.ended_at == clock.now
        assert row.counts_toward_allowance
        assert "visit.terminated" in audit_actions(ctx, "visit", visit_id)
        assert event_kinds(ctx, visit_id)[-1] == "ended"
        with ctx.db.read() as s:
            restriction = s.execute(
                sa.select(Restriction).where(Restriction.visit_id == visit_id)
            ).scalar_one()
        assert restriction.kind is RestrictionKind.SUSPENSION
        assert restriction.visitor_id == scene.visitor_id
        assert restriction.ends_at is not None
        lengths.append(restriction.ends_at - restriction.starts_at)
        clock.advance(hours=1)
    assert lengths == [timedelta(days=7), timedelta(days=30), timedelta(days=90)]
    # The suspension cancelled what the visitor had booked in its time.
    assert load(ctx, later).status is VisitStatus.CANCELLED


def test_a_security_termination_suspends_nobody(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    visit_id = _running(ctx, scene, clock)
    live.terminate(ctx, scene.admin, visit_id, "security", "", META)
    assert load(ctx, visit_id).status is VisitStatus.TERMINATED
    with ctx.db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(Restriction)).scalar_one() == 0


def test_terminations_are_for_the_facilitys_monitors_and_for_live_visits(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = _running(ctx, scene, clock)
    elsewhere = build(ctx)
    with pytest.raises(NotFound):
        live.terminate(ctx, elsewhere.officer, visit_id, "conduct", "", META)
    with pytest.raises(NotFound):
        live.terminate(ctx, scene.investigator, visit_id, "conduct", "", META)
    with pytest.raises(NotFound):
        live.terminate(ctx, scene.visitor, visit_id, "conduct", "", META)
    with pytest.raises(InvalidInput):
        live.terminate(ctx, scene.officer, visit_id, "rude", "", META)
    waiting = visit(ctx, scene, starts_at=clock.now + timedelta(hours=2))
    with pytest.raises(Conflict) as not_live:
        live.terminate(ctx, scene.officer, waiting, "conduct", "", META)
    assert not_live.value.code == "live.not_in_progress"
    assert load(ctx, visit_id).status is VisitStatus.IN_PROGRESS


def _allowance_used(ctx: AppContext, scene: Scene) -> int:
    """The resident's visits that use up allowance, by the rule the booking counts them with
    (domain.scheduling.ALLOWANCE_STATUSES and the visit's own flag)."""
    with ctx.db.read() as s:
        return int(
            s.execute(
                sa.select(sa.func.count()).where(
                    Visit.resident_id == scene.resident_id,
                    Visit.kind == VisitKind.SOCIAL,
                    Visit.counts_toward_allowance.is_(True),
                    Visit.status.in_(tuple(ALLOWANCE_STATUSES)),
                )
            ).scalar_one()
        )


def test_a_technical_termination_fails_the_visit_credits_it_and_offers_a_priority_rebooking(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = _running(ctx, scene, clock)
    assert _allowance_used(ctx, scene) == 1
    ended = live.terminate(ctx, scene.officer, visit_id, "technical", "frozen picture", META)
    assert ended.ending.outcome.value == "failed"
    row = load(ctx, visit_id)
    assert (row.status, row.reason, row.outcome) == (VisitStatus.FAILED, "technical", "failed")
    assert row.priority_rebooking
    assert not row.counts_toward_allowance
    assert not counts_toward_allowance(row.kind, row.status, row.counts_toward_allowance)
    assert _allowance_used(ctx, scene) == 0
    with ctx.db.read() as s:
        notes = (
            s.execute(
                sa.select(Notification).where(
                    Notification.visit_id == visit_id, Notification.template == "visit_failed"
                )
            )
            .scalars()
            .all()
        )
        restrictions = s.execute(sa.select(sa.func.count()).select_from(Restriction)).scalar_one()
    assert restrictions == 0
    assert {n.channel for n in notes} == {NotificationChannel.EMAIL, NotificationChannel.STATION}
    email = next(n for n in notes if n.channel is NotificationChannel.EMAIL)
    assert email.user_id == scene.visitor.user_id
    assert email.payload["reason"] == "technical"
    message = render(
        "visit_failed",
        "ru",
        email.payload,
        MessageFacts(recipient_timezone="Europe/Moscow"),
        base_url="https://ov.example",
    )
    assert f"https://ov.example/visits/book?resident_id={scene.resident_id}" in message.text
    assert "Техническая неполадка" in message.text
    assert "в первую очередь" in message.text
    station = next(n for n in notes if n.channel is NotificationChannel.STATION)
    line = render("visit_failed", "en", station.payload, MessageFacts(), base_url="").short
    assert line.startswith("Visit cut short") and "Technical problem" in line


def test_the_priority_rebooking_offers_sooner_times_to_the_party_once_while_it_stands(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    make_schedule(ctx, scene.place)  # 09:00-17:00 in Krasnoyarsk; it is 16:00 there now
    failed = _running(ctx, scene, clock)
    live.terminate(ctx, scene.officer, failed, "technical", "", META)
    tomorrow = datetime(2026, 3, 3, 2, 0, tzinfo=UTC)  # 09:00 there, 17 hours ahead: inside 24 hours
    ordinary = scheduling.BookingRequest(resident_id=scene.resident_id, starts_at=tomorrow)
    with pytest.raises(InvalidInput) as too_soon:
        scheduling.book_visit(ctx, scene.visitor, ordinary, META)
    assert too_soon.value.code == "visit.too_soon"
    public = scheduling.availability(ctx, scene.visitor, scene.resident_id)
    assert tomorrow not in {t.starts_at for t in public.times}
    offered = scheduling.availability(ctx, scene.visitor, scene.resident_id, rebooks_visit_id=failed)
    assert min(t.starts_at for t in offered.times) == tomorrow

    # Only the visit's own party may use it; only a visit the system cut short has one.
    stranger_email, stranger_id = make_visitor(ctx)
    connect(ctx, scene.resident_id, stranger_id, ConnectionStatus.APPROVED)
    stranger = principal_of(ctx, stranger_email)
    priority = dataclasses.replace(ordinary, rebooks_visit_id=failed)
    with pytest.raises(NotFound):
        scheduling.book_visit(ctx, stranger, priority, META)
    completed = visit(ctx, scene, starts_at=clock.now - timedelta(days=1), status=VisitStatus.COMPLETED)
    with pytest.raises(Conflict) as not_cut_short:
        scheduling.book_visit(
            ctx, scene.visitor, dataclasses.replace(ordinary, rebooks_visit_id=completed), META
        )
    assert not_cut_short.value.code == "visit.no_priority_rebooking"

    booked = scheduling.book_visit(ctx, scene.visitor, priority, META)
    assert booked.visit.replaces_visit_id == failed
    assert booked.visit.status is VisitStatus.APPROVED
    later = tomorrow + timedelta(minutes=35)
    with pytest.raises(Conflict) as used:
        scheduling.book_visit(ctx, scene.visitor, dataclasses.replace(priority, starts_at=later), META)
    assert used.value.code == "visit.priority_rebooking_used"

    # Cancelled, the re-booking gives its priority back.
    scheduling.cancel_visit(ctx, scene.visitor, booked.visit.id, META)
    again = scheduling.book_visit(ctx, scene.visitor, dataclasses.replace(priority, starts_at=later), META)
    assert again.visit.replaces_visit_id == failed


def test_the_scheduled_end_completes_unless_the_station_was_lost_and_never_came_back(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    fine = _running(ctx, scene, clock)
    live.record_side(ctx, fine, Side.RESIDENT, "connected")
    clock.advance(minutes=1)
    live.record_side(ctx, fine, Side.VISITOR, "lost")  # the visitor's own connection: not the system
    clock.advance(minutes=30)
    ended = live.end_at_schedule(ctx, fine)
    assert ended is not None
    row = load(ctx, fine)
    assert (row.status, row.outcome, row.reason) == (VisitStatus.COMPLETED, "completed", None)
    assert row.counts_toward_allowance
    assert live.end_at_schedule(ctx, fine) is None  # once

    broken = _running(ctx, scene, clock)
    live.record_side(ctx, broken, Side.RESIDENT, "connected")
    clock.advance(minutes=2)
    live.record_side(ctx, broken, Side.RESIDENT, "lost")
    clock.advance(minutes=30)
    live.end_at_schedule(ctx, broken)
    row = load(ctx, broken)
    assert (row.status, row.reason) == (VisitStatus.FAILED, "station_failure")
    assert row.priority_rebooking and not row.counts_toward_allowance


def test_staff_mark_a_completed_visit_whose_station_failed(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = _running(ctx, scene, clock)
    clock.advance(minutes=30)
    live.end_at_schedule(ctx, visit_id)
    ended_at = load(ctx, visit_id).ended_at
    clock.advance(minutes=10)
    with pytest.raises(NotFound):
        live.report_station_failure(ctx, build(ctx).officer, visit_id, "", META)
    live.report_station_failure(ctx, scene.officer, visit_id, "screen went dark", META)
    row = load(ctx, visit_id)
    assert (row.status, row.reason, row.reason_note) == (
        VisitStatus.FAILED,
        "station_failure",
        "screen went dark",
    )
    assert row.ended_at == ended_at
    assert not row.counts_toward_allowance
    with pytest.raises(Conflict):
        live.report_station_failure(ctx, scene.officer, visit_id, "", META)


# --- officers -----------------------------------------------------------------------------------------


def test_warnings_and_pauses_are_events_and_audited(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = _running(ctx, scene, clock)
    warned = live.warn(ctx, scene.officer, visit_id, " Keep your face\nin view ", META)
    assert warned.text == "Keep your face in view"
    live.pause(ctx, scene.officer, visit_id, Side.VISITOR, True, META)
    live.pause(ctx, scene.officer, visit_id, Side.VISITOR, False, META)
    assert audit_actions(ctx, "visit", visit_id) == [
        "visit.warned",
        "visit.video_paused",
        "visit.video_resumed",
    ]
    assert event_kinds(ctx, visit_id) == ["warning", "video_paused", "video_resumed"]
    with pytest.raises(NotFound):
        live.warn(ctx, build(ctx).officer, visit_id, "hello", META)
    with pytest.raises(InvalidInput):
        live.warn(ctx, scene.officer, visit_id, "   ", META)


def test_the_wall_shows_live_and_imminent_visits_to_the_facilitys_monitors_only(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    running = _running(ctx, scene, clock)
    soon = visit(ctx, scene, starts_at=clock.now + timedelta(minutes=40), kind=VisitKind.LEGAL)
    visit(ctx, scene, starts_at=clock.now + timedelta(hours=3))
    visit(ctx, scene, starts_at=clock.now - timedelta(hours=2))  # approved, but over
    clock.advance(minutes=15)
    tiles = live.live_wall(ctx, scene.officer, scene.place.facility_id)
    assert [t.id for t in tiles] == [running, soon]
    assert tiles[0].resident_number == scene.resident_number
    assert tiles[0].visitor == "Иванова Анна"
    assert tiles[1].kind is VisitKind.LEGAL
    assert tiles[0].as_message()["status"] == "in_progress"
    assert [t.id for t in live.live_wall(ctx, scene.admin, scene.place.facility_id)] == [running, soon]
    elsewhere = build(ctx)
    for outsider in (elsewhere.officer, scene.investigator, scene.visitor, elsewhere.admin):
        with pytest.raises(NotFound):
            live.live_wall(ctx, outsider, scene.place.facility_id)
    assert live.live_wall(ctx, elsewhere.officer, elsewhere.place.facility_id) == []


def test_watching_a_legal_visit_is_refused_and_audited(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    legal = _running(ctx, scene, clock, kind=VisitKind.LEGAL)
    with pytest.raises(PrivilegedVisit):
        live.check_watch(ctx, scene.officer, legal, META)
    assert audit_actions(ctx, "visit", legal) == ["visit.watch_refused"]
    social = build(ctx)
    social_visit = _running(ctx, social, clock)
    assert live.check_watch(ctx, social.officer, social_visit, META) == social.place.facility_id
    with pytest.raises(NotFound):
        live.check_watch(ctx, scene.officer, social_visit, META)


# --- the restart --------------------------------------------------------------------------------------


def test_recovery_fails_visits_past_their_end_and_keeps_the_others_open(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    over = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=40), status=VisitStatus.IN_PROGRESS)
    running = _running(ctx, scene, clock)
    untouched = visit(ctx, scene, starts_at=clock.now - timedelta(hours=3), status=VisitStatus.COMPLETED)
    start = recordings.begin(ctx, running)
    recovery = live.recover_after_restart(ctx)
    assert [e.visit_id for e in recovery.failed] == [over]
    assert [v.visit_id for v in recovery.open] == [running]
    assert recovery.recordings == [(start.recording_id, str(start.path))]
    row = load(ctx, over)
    assert (row.status, row.reason) == (VisitStatus.FAILED, "server_restart")
    assert row.priority_rebooking and not row.counts_toward_allowance
    assert "visit.failed" in audit_actions(ctx, "visit", over)
    assert load(ctx, running).status is VisitStatus.IN_PROGRESS
    assert event_kinds(ctx, running)[-1] == "recovered"
    assert load(ctx, untouched).status is VisitStatus.COMPLETED
    with ctx.db.read() as s:
        assert (
            s.execute(
                sa.select(sa.func.count()).where(
                    Notification.visit_id == over, Notification.template == "visit_failed"
                )
            ).scalar_one()
            == 2
        )
    # Recovered and nobody came back by the end: it failed because of the restart.
    clock.advance(minutes=30)
    live.end_at_schedule(ctx, running, recovered=True, rejoined=False)
    assert (load(ctx, running).status, load(ctx, running).reason) == (VisitStatus.FAILED, "server_restart")
    assert recordings.finish(ctx, start.recording_id, None) is not None
    assert recordings.visit_recordings(ctx, running)[0].status is RecordingStatus.DAMAGED


def test_visits_left_to_fail_are_only_those_in_progress(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    visit_id = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=40))
    assert live.fail(ctx, visit_id, FailureReason.TECHNICAL) is None
    assert load(ctx, visit_id).status is VisitStatus.APPROVED
    with ctx.db.read() as s:
        assert s.get(Visit, visit_id) is not None
