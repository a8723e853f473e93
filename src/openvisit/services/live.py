"""Live visits in the database: who may join which side and when, the party's check-in at a link center,
the rules accepted, the start, the end (at the scheduled time, by an officer, or by a failure of the
system), the officers' warnings and pauses, the monitoring wall and the recovery after a restart.

Each use case opens its own transaction, checks access, applies the rules of `domain.live`, writes a
VisitEvent and an audit entry beside the change, and returns plain values. The media and the sockets
are `services.live_rooms`' business; nothing here awaits.

Who is which side (docs/signalling.md):
- `visitor`: the lead visitor of a home visit; for a link-center visit, a link operator of that link
  center (the booth's browser runs under the operator's login), once an operator has checked the party in.
- `resident`: the visit's resident, logged in at the visit's own station.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    Facility,
    Recording,
    Resident,
    Station,
    Visit,
    VisitEvent,
    Visitor,
    VisitParticipant,
)
from openvisit.domain import live as rules
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    ActorKind,
    ParticipantRole,
    RecordingStatus,
    Role,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import SYSTEM, Principal
from openvisit.media.engine import PrivilegedVisit, Side
from openvisit.services import audit, outbox, vetting
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, RequestMeta

MONITOR_ROLES: tuple[Role, ...] = (Role.MONITORING_OFFICER, Role.FACILITY_ADMIN)
"""Who watches a facility's live visits, warns, pauses and terminates."""

SYSTEM_META = RequestMeta(ip="local", user_agent="openvisit")
RESTART = Principal(kind=ActorKind.SYSTEM, label="restart-recovery")
TIMER = Principal(kind=ActorKind.SYSTEM, label="live-timer")

_ENDED_ACTIONS = {
    rules.Outcome.COMPLETED: "visit.completed",
    rules.Outcome.TERMINATED: "visit.terminated",
    rules.Outcome.FAILED: "visit.failed",
}


# --- small helpers ----------------------------------------------------------------------------------


def _actor_id(p: Principal) -> int | None:
    return p.user_id if p.user_id is not None else p.resident_id


def _holds_at(
    p: Principal, roles: Sequence[Role], *, facility_id: int | None = None, link_center_id: int | None = None
) -> bool:
    """An explicit grant of one of `roles` there. A system admin does not watch, end or join visits
    merely for being one: live visits are the facility's own staff's work."""
    for grant in p.grants:
        if grant.role not in roles:
            continue
        if facility_id is not None and grant.facility_id == facility_id:
            return True
        if link_center_id is not None and grant.link_center_id == link_center_id:
            return True
    return False


def _state(visit: Visit) -> dict[str, object]:
    return {
        "status": visit.status.value,
        "reason": visit.reason,
        "outcome": visit.outcome,
        "started_at": visit.started_at,
        "ended_at": visit.ended_at,
        "counts_toward_allowance": visit.counts_toward_allowance,
        "priority_rebooking": visit.priority_rebooking,
    }


def _event(session: Session, visit_id: int, at: datetime, kind: str, p: Principal, **data: Any) -> None:
    session.add(
        VisitEvent(visit_id=visit_id, at=at, kind=kind, actor_kind=p.kind, actor_id=_actor_id(p), data=data)
    )


def _visit_for_update(session: Session, visit_id: int) -> Visit:
    visit = session.execute(
        sa.select(Visit).where(Visit.id == visit_id).with_for_update()
    ).scalar_one_or_none()
    if visit is None:
        raise NotFound("visit.not_found", N_("No such visit."))
    return visit


def _monitored_visit(session: Session, p: Principal, visit_id: int, *, lock: bool = False) -> Visit:
    """A visit of a facility where `p` monitors; NotFound otherwise (never telling the two apart)."""
    require_active(p)
    query = sa.select(Visit).where(Visit.id == visit_id)
    visit = session.execute(query.with_for_update() if lock else query).scalar_one_or_none()
    if visit is None or not _holds_at(p, MONITOR_ROLES, facility_id=visit.facility_id):
        raise NotFound("visit.not_found", N_("No such visit."))
    return visit


def _facility(session: Session, facility_id: int) -> Facility:
    facility = session.get(Facility, facility_id)
    if facility is None:  # pragma: no cover - a visit's facility always exists (foreign key)
        raise NotFound("facility.not_found", N_("No such facility."))
    return facility


def _participants(session: Session, visit_id: int) -> list[VisitParticipant]:
    return list(
        session.execute(
            sa.select(VisitParticipant)
            .where(VisitParticipant.visit_id == visit_id)
            .order_by(VisitParticipant.id)
        ).scalars()
    )


def _lead_visitor_id(session: Session, visit_id: int) -> int | None:
    return session.execute(
        sa.select(VisitParticipant.visitor_id).where(
            VisitParticipant.visit_id == visit_id, VisitParticipant.role == ParticipantRole.LEAD
        )
    ).scalar_one_or_none()


def _require_live(visit: Visit) -> None:
    if visit.status is not VisitStatus.IN_PROGRESS:
        raise Conflict("live.not_in_progress", N_("This visit is not in progress."))


# --- joining ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JoinGrant:
    """A side's right to be in a visit now, and what its welcome says."""

    visit_id: int
    side: Side
    kind: VisitKind
    notice: rules.Notice
    facility_id: int
    starts_at: datetime
    ends_at: datetime
    started: bool = False
    """True when this join started the visit (it was approved and is now in progress)."""


class JoinRefused(Forbidden):
    default_code = "live.not_a_side"
    default_message = N_("You are not a participant of this visit.")


def _side_of(session: Session, p: Principal, visit: Visit) -> Side:
    """Which side `p` is in `visit`, or the refusal (raised)."""
    if p.is_resident:
        if p.resident_id != visit.resident_id:
            raise NotFound("visit.not_found", N_("No such visit."))
        if p.station_id != visit.station_id:
            raise JoinRefused("live.wrong_station", N_("This visit takes place at another station."))
        return Side.RESIDENT
    if (
        visit.mode is VisitMode.LINK_CENTER
        and visit.link_center_id is not None
        and _holds_at(p, (Role.LINK_OPERATOR,), link_center_id=visit.link_center_id)
    ):
        checked_in = session.execute(
            sa.select(sa.func.count()).where(
                VisitParticipant.visit_id == visit.id, VisitParticipant.checked_in_at.is_not(None)
            )
        ).scalar_one()
        if not checked_in:
            raise Conflict(
                "live.not_checked_in",
                N_("The operator must check the visitors in before the booth joins."),
            )
        return Side.VISITOR
    if p.visitor_id is not None:
        role = session.execute(
            sa.select(VisitParticipant.role).where(
                VisitParticipant.visit_id == visit.id, VisitParticipant.visitor_id == p.visitor_id
            )
        ).scalar_one_or_none()
        if role is None:
            raise NotFound("visit.not_found", N_("No such visit."))
        if visit.mode is VisitMode.LINK_CENTER:
            raise JoinRefused("live.at_link_center", N_("This visit takes place at the link center's booth."))
        if role is not ParticipantRole.LEAD:
            raise JoinRefused("live.lead_joins", N_("The lead visitor joins for the whole party."))
        return Side.VISITOR
    if _holds_at(p, MONITOR_ROLES, facility_id=visit.facility_id) or _holds_at(
        p, (Role.LINK_OPERATOR,), link_center_id=visit.link_center_id
    ):
        raise JoinRefused()
    raise NotFound("visit.not_found", N_("No such visit."))


def _join_early(session: Session, visit: Visit) -> int:
    """The facility's join window: minutes before the start (Facility.join_early_minutes, which the
    reminders also promise)."""
    return int(
        session.execute(
            sa.select(Facility.join_early_minutes).where(Facility.id == visit.facility_id)
        ).scalar_one()
    )


def _grant(ctx: AppContext, session: Session, p: Principal, visit: Visit, now: datetime) -> JoinGrant:
    side = _side_of(session, p, visit)
    rules.check_join(visit.status, visit.starts_at, visit.ends_at, now, _join_early(session, visit))
    return JoinGrant(
        visit_id=visit.id,
        side=side,
        kind=visit.kind,
        notice=rules.notice_for(visit.kind),
        facility_id=visit.facility_id,
        starts_at=visit.starts_at,
        ends_at=visit.ends_at,
    )


def _audit_refusal(
    ctx: AppContext, p: Principal, visit: Visit, code: str, now: datetime, meta: RequestMeta
) -> None:
    with ctx.db.write() as session:
        audit.record(
            session,
            p,
            "visit.join_refused",
            "visit",
            visit.id,
            at=now,
            facility_id=visit.facility_id,
            after={"code": code, "station_id": p.station_id},
            ip=meta.ip,
        )


def check_join(ctx: AppContext, p: Principal, visit_id: int, meta: RequestMeta) -> JoinGrant:
    """Whether `p` may connect to the visit now, and as which side; refuses with the reason (NotFound,
    JoinRefused, or a Conflict of the window or the status). A logged-in person knocking at a visit that
    exists and is not theirs (a station at someone else's visit, a visitor at a stranger's) is audited; a
    join a little early or after the end is not."""
    require_active(p)
    now = ctx.clock()
    with ctx.db.read() as session:
        visit = session.get(Visit, visit_id)
        if visit is None:
            raise NotFound("visit.not_found", N_("No such visit."))
        try:
            return _grant(ctx, session, p, visit, now)
        except (NotFound, Forbidden) as exc:
            refusal = exc
    _audit_refusal(ctx, p, visit, refusal.code, now, meta)
    raise refusal


def join(ctx: AppContext, p: Principal, visit_id: int, meta: RequestMeta) -> JoinGrant:
    """A side joins having accepted the rules: the rules' acceptance is recorded, an approved visit
    starts (IN_PROGRESS, started_at), and the join is a VisitEvent and an audit entry."""
    require_active(p)
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _visit_for_update(session, visit_id)
        grant = _grant(ctx, session, p, visit, now)
        if grant.side is Side.VISITOR:
            for participant in _participants(session, visit.id):
                if participant.rules_accepted_at is None:
                    participant.rules_accepted_at = now
        _event(session, visit.id, now, "rules_accepted", p, side=grant.side.value)
        started = visit.status is VisitStatus.APPROVED
        if started:
            before = _state(visit)
            visit.status = VisitStatus.IN_PROGRESS
            visit.started_at = now
            _event(session, visit.id, now, "started", p, side=grant.side.value)
            audit.record(
                session,
                p,
                "visit.started",
                "visit",
                visit.id,
                at=now,
                facility_id=visit.facility_id,
                before=before,
                after=_state(visit),
                ip=meta.ip,
            )
        _event(session, visit.id, now, "joined", p, side=grant.side.value)
        audit.record(
            session,
            p,
            "visit.joined",
            "visit",
            visit.id,
            at=now,
            facility_id=visit.facility_id,
            after={"side": grant.side.value, "station_id": p.station_id},
            ip=meta.ip,
        )
        return replace(grant, started=started)


def record_side(ctx: AppContext, visit_id: int, side: Side, what: str) -> None:
    """A side's connection came up ("connected"), was closed on purpose ("left") or was lost ("lost"):
    a VisitEvent, which the end of the visit reads (a lost station that never came back failed)."""
    now = ctx.clock()
    with ctx.db.write() as session:
        if session.get(Visit, visit_id) is None:
            return
        _event(session, visit_id, now, f"side_{what}", SYSTEM, side=side.value)


# --- the link center's check-in --------------------------------------------------------------------


def check_in_party(
    ctx: AppContext, p: Principal, visit_id: int, meta: RequestMeta, *, id_checked: bool
) -> Visit:
    """A link operator of the visit's link center has checked the party's ID in person (`id_checked`, which
    the operator must attest): every participant is checked in (once; the first check-in stands), inside
    the join window. Audited."""
    require_active(p)
    if not id_checked:
        raise InvalidInput(
            "live.id_not_checked",
            N_("Check every adult's ID document in person first, then tick the box."),
            field="id_checked",
        )
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _visit_for_update(session, visit_id)
        if visit.link_center_id is None or not _holds_at(
            p, (Role.LINK_OPERATOR,), link_center_id=visit.link_center_id
        ):
            raise NotFound("visit.not_found", N_("No such visit."))
        rules.check_join(visit.status, visit.starts_at, visit.ends_at, now, _join_early(session, visit))
        participants = _participants(session, visit.id)
        fresh = [row for row in participants if row.checked_in_at is None]
        for row in fresh:
            row.checked_in_at = now
            row.checked_in_by_id = p.user_id
        if fresh:
            _event(session, visit.id, now, "checked_in", p, participants=len(fresh))
            audit.record(
                session,
                p,
                "visit.checked_in",
                "visit",
                visit.id,
                at=now,
                facility_id=visit.facility_id,
                after={"participants": [row.id for row in fresh], "link_center_id": visit.link_center_id},
                ip=meta.ip,
            )
        return visit


# --- endings ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ended:
    """How a visit ended, for the sides, the monitors and the recording."""

    visit_id: int
    facility_id: int
    kind: VisitKind
    ending: rules.Ending
    at: datetime


def rebook_path(visit: Visit) -> str:
    """The booking page for the priority re-booking of a visit the system cut short."""
    path = f"/visits/book?resident_id={visit.resident_id}&kind={visit.kind.value}&rebook={visit.id}"
    if visit.mode is VisitMode.LINK_CENTER and visit.link_center_id is not None:
        path += f"&mode=link_center&link_center_id={visit.link_center_id}"
    return path


def _apply_ending(
    session: Session,
    p: Principal,
    visit: Visit,
    ending: rules.Ending,
    now: datetime,
    meta: RequestMeta,
    *,
    note: str = "",
) -> Ended:
    before = _state(visit)
    visit.status = ending.status
    visit.outcome = ending.outcome.value
    visit.ended_at = now
    if ending.status is not VisitStatus.COMPLETED:
        visit.reason = ending.reason
        visit.reason_note = note.strip()[: rules.NOTE_MAX_CHARS]
    if ending.credits_allowance:
        visit.counts_toward_allowance = False
    if ending.priority_rebooking:
        visit.priority_rebooking = True
    session.flush()
    _event(session, visit.id, now, "ended", p, outcome=ending.outcome.value, reason=ending.reason)
    audit.record(
        session,
        p,
        _ENDED_ACTIONS[ending.outcome],
        "visit",
        visit.id,
        at=now,
        facility_id=visit.facility_id,
        before=before,
        after={**_state(visit), "note": visit.reason_note},
        ip=meta.ip,
    )
    if ending.suspends_visitor:
        lead = _lead_visitor_id(session, visit.id)
        if lead is not None:
            vetting.suspend_after_termination(
                session, p, lead, visit.facility_id, visit.id, now, meta, reason=ending.reason
            )
    if ending.priority_rebooking:
        facility = _facility(session, visit.facility_id)
        outbox.enqueue_for_visit(
            session,
            visit,
            "visit_failed",
            now,
            facility.timezone,
            reason=ending.reason,
            note=visit.reason_note,
            rebook_path=rebook_path(visit),
        )
    return Ended(visit.id, visit.facility_id, visit.kind, ending, now)


def _resident_moments(session: Session, visit_id: int) -> list[rules.SideMoment]:
    rows = session.execute(
        sa.select(VisitEvent.at, VisitEvent.kind, VisitEvent.data)
        .where(
            VisitEvent.visit_id == visit_id,
            VisitEvent.kind.in_(("side_connected", "side_left", "side_lost", "joined")),
        )
        .order_by(VisitEvent.id)
    ).all()
    what = {"side_connected": "joined", "joined": "joined", "side_left": "left", "side_lost": "lost"}
    return [
        rules.SideMoment(at=at, what=what[kind])
        for at, kind, data in rows
        if isinstance(data, dict) and data.get("side") == Side.RESIDENT.value
    ]


def end_at_schedule(
    ctx: AppContext, visit_id: int, *, recovered: bool = False, rejoined: bool = True
) -> Ended | None:
    """The scheduled end has come: a visit still in progress completes, or fails when its station was
    lost and never came back (or, recovered after a restart, when nobody came back). None when the visit
    had already ended some other way."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _visit_for_update(session, visit_id)
        if visit.status is not VisitStatus.IN_PROGRESS:
            return None
        ending = rules.end_of_recovered(rejoined) if recovered else None
        if ending is None:
            ending = rules.end_at_schedule(_resident_moments(session, visit.id), visit.ends_at)
        return _apply_ending(session, TIMER, visit, ending, now, SYSTEM_META)


def outcome_of(ctx: AppContext, visit_id: int) -> tuple[rules.Outcome, str]:
    """How a visit that is no longer in progress ended, for telling its sides (a visit staff cancelled
    while it ran counts as terminated, with the cancellation's reason)."""
    with ctx.db.read() as session:
        row = session.execute(sa.select(Visit.status, Visit.reason).where(Visit.id == visit_id)).one_or_none()
    if row is None:
        return rules.Outcome.TERMINATED, "other"
    status, reason = row
    if status is VisitStatus.COMPLETED:
        return rules.Outcome.COMPLETED, "completed"
    if status is VisitStatus.FAILED:
        return rules.Outcome.FAILED, reason or rules.FailureReason.TECHNICAL.value
    return rules.Outcome.TERMINATED, reason or "other"


def not_live(ctx: AppContext, visit_ids: list[int]) -> list[int]:
    """Those of `visit_ids` that have ended, or were cancelled, meanwhile (no longer active)."""
    with ctx.db.read() as session:
        rows = session.execute(
            sa.select(Visit.id).where(
                Visit.id.in_(visit_ids), Visit.status.not_in(tuple(ACTIVE_VISIT_STATUSES))
            )
        )
        return [visit_id for (visit_id,) in rows]


def check_may_terminate(ctx: AppContext, p: Principal, visit_id: int) -> None:
    """Refuse early (before any media is touched) unless `p` monitors the visit's facility and it is live."""
    with ctx.db.read() as session:
        _require_live(_monitored_visit(session, p, visit_id))


def terminate(
    ctx: AppContext, p: Principal, visit_id: int, reason: str | None, note: str, meta: RequestMeta
) -> Ended:
    """An officer ends a live visit with a preset reason: TERMINATED (the party's conduct also suspends
    the lead visitor: 7, then 30, then 90 days), or FAILED for a technical reason (the allowance returns,
    priority re-booking offered). Stored with the note, a VisitEvent and an audit entry."""
    chosen = rules.check_termination_reason(reason)
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _monitored_visit(session, p, visit_id, lock=True)
        _require_live(visit)
        return _apply_ending(session, p, visit, rules.termination_ending(chosen), now, meta, note=note)


def report_station_failure(
    ctx: AppContext, p: Principal, visit_id: int, note: str, meta: RequestMeta
) -> Ended:
    """Staff say the station failed: a visit in progress, or one that completed although the station had
    failed, becomes FAILED with the allowance back and a priority re-booking."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _monitored_visit(session, p, visit_id, lock=True)
        if visit.status not in (VisitStatus.IN_PROGRESS, VisitStatus.COMPLETED):
            raise Conflict(
                "live.not_failable", N_("Only a visit in progress or completed can be marked as failed.")
            )
        ending = rules.failure_ending(rules.FailureReason.STATION_FAILURE)
        ended_at = visit.ended_at or now
        result = _apply_ending(session, p, visit, ending, now, meta, note=note)
        visit.ended_at = ended_at
        return result


def fail(ctx: AppContext, visit_id: int, reason: rules.FailureReason, note: str = "") -> Ended | None:
    """The system could not carry a visit in progress any further (its media failed): FAILED, credited,
    priority re-booking. None when it was no longer in progress."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _visit_for_update(session, visit_id)
        if visit.status is not VisitStatus.IN_PROGRESS:
            return None
        return _apply_ending(
            session, SYSTEM, visit, rules.failure_ending(reason), now, SYSTEM_META, note=note
        )


# --- officers' actions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Warned:
    visit_id: int
    facility_id: int
    text: str
    at: datetime


def warn(ctx: AppContext, p: Principal, visit_id: int, text: str | None, meta: RequestMeta) -> Warned:
    """An officer's warning, which both sides see without being disconnected: a VisitEvent and an audit
    entry."""
    cleaned = rules.check_warning(text)
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _monitored_visit(session, p, visit_id)
        _require_live(visit)
        _event(session, visit.id, now, "warning", p, text=cleaned)
        audit.record(
            session,
            p,
            "visit.warned",
            "visit",
            visit.id,
            at=now,
            facility_id=visit.facility_id,
            after={"text": cleaned},
            ip=meta.ip,
        )
        return Warned(visit.id, visit.facility_id, cleaned, now)


def pause(ctx: AppContext, p: Principal, visit_id: int, side: Side, paused: bool, meta: RequestMeta) -> int:
    """An officer stops (or resumes) one side's video to the other side: a VisitEvent and an audit entry.
    Returns the visit's facility."""
    now = ctx.clock()
    with ctx.db.write() as session:
        visit = _monitored_visit(session, p, visit_id)
        _require_live(visit)
        _event(session, visit.id, now, "video_paused" if paused else "video_resumed", p, side=side.value)
        audit.record(
            session,
            p,
            "visit.video_paused" if paused else "visit.video_resumed",
            "visit",
            visit.id,
            at=now,
            facility_id=visit.facility_id,
            after={"side": side.value},
            ip=meta.ip,
        )
        return visit.facility_id


# --- monitoring -------------------------------------------------------------------------------------


def check_monitor(ctx: AppContext, p: Principal, facility_id: int) -> None:
    """Only monitoring officers and facility admins of the facility open its monitoring wall."""
    require_active(p)
    if not _holds_at(p, MONITOR_ROLES, facility_id=facility_id):
        raise NotFound("facility.not_found", N_("No such facility."))


def check_watch(ctx: AppContext, p: Principal, visit_id: int, meta: RequestMeta) -> int:
    """Whether an officer may watch this live visit; returns its facility. A legal visit is privileged:
    the attempt is written to the audit log and refused with PrivilegedVisit, whoever asks."""
    now = ctx.clock()
    with ctx.db.read() as session:
        visit = _monitored_visit(session, p, visit_id)
        kind, facility_id, status = visit.kind, visit.facility_id, visit.status
    if kind is VisitKind.LEGAL:
        record_watch_refused(ctx, p, visit_id, facility_id, meta, now=now)
        raise PrivilegedVisit()
    if status is not VisitStatus.IN_PROGRESS:
        raise Conflict("live.not_in_progress", N_("This visit is not in progress."))
    return facility_id


def record_watch_refused(
    ctx: AppContext,
    p: Principal,
    visit_id: int,
    facility_id: int | None,
    meta: RequestMeta,
    *,
    now: datetime | None = None,
) -> None:
    """An attempt to watch a privileged visit, refused (by the service or by the media engine): audited."""
    with ctx.db.write() as session:
        audit.record(
            session,
            p,
            "visit.watch_refused",
            "visit",
            visit_id,
            at=now or ctx.clock(),
            facility_id=facility_id,
            after={"code": PrivilegedVisit.default_code},
            ip=meta.ip,
        )


def record_watch(ctx: AppContext, p: Principal, visit_id: int, facility_id: int, meta: RequestMeta) -> None:
    """An officer started watching a visit: audited (for the transparency report), never shown to the
    participants."""
    with ctx.db.write() as session:
        audit.record(
            session,
            p,
            "visit.watched",
            "visit",
            visit_id,
            at=ctx.clock(),
            facility_id=facility_id,
            ip=meta.ip,
        )


@dataclass(frozen=True)
class WallVisit:
    """One tile of the monitoring wall."""

    id: int
    kind: VisitKind
    status: VisitStatus
    mode: VisitMode
    resident: str
    resident_number: str
    visitor: str
    station: str
    starts_at: datetime
    ends_at: datetime
    sides: frozenset[Side] = field(default_factory=frozenset)

    def as_message(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "mode": self.mode.value,
            "resident": self.resident,
            "resident_number": self.resident_number,
            "visitor": self.visitor,
            "station": self.station,
            "starts_at": self.starts_at.isoformat().replace("+00:00", "Z"),
            "ends_at": self.ends_at.isoformat().replace("+00:00", "Z"),
            "sides": sorted(side.value for side in self.sides),
            "status": self.status.value,
        }


def live_wall(ctx: AppContext, p: Principal, facility_id: int) -> list[WallVisit]:
    """The facility's visits in progress and those starting within domain.live.IMMINENT, by start, for
    its monitoring officers and facility admins only."""
    check_monitor(ctx, p, facility_id)
    return wall_of(ctx, facility_id)


def wall_of(ctx: AppContext, facility_id: int) -> list[WallVisit]:
    """live_wall without the access check, for refreshing walls already opened by their officers."""
    now = ctx.clock()
    with ctx.db.read() as session:
        visits = (
            session.execute(
                sa.select(Visit)
                .where(
                    Visit.facility_id == facility_id,
                    Visit.ends_at > now,
                    sa.or_(
                        Visit.status == VisitStatus.IN_PROGRESS,
                        sa.and_(
                            Visit.status == VisitStatus.APPROVED, Visit.starts_at <= now + rules.IMMINENT
                        ),
                    ),
                )
                .order_by(Visit.starts_at, Visit.id)
            )
            .scalars()
            .all()
        )
        if not visits:
            return []
        ids = [v.id for v in visits]
        residents = {
            r.id: r
            for r in session.execute(
                sa.select(Resident).where(Resident.id.in_({v.resident_id for v in visits}))
            ).scalars()
        }
        stations = {
            s.id: s.name
            for s in session.execute(
                sa.select(Station).where(Station.id.in_({v.station_id for v in visits}))
            ).scalars()
        }
        leads: dict[int, str] = {}
        for visit_id, last, first in session.execute(
            sa.select(VisitParticipant.visit_id, Visitor.last_name, Visitor.first_name)
            .join(Visitor, Visitor.id == VisitParticipant.visitor_id)
            .where(VisitParticipant.visit_id.in_(ids), VisitParticipant.role == ParticipantRole.LEAD)
        ):
            leads[visit_id] = f"{last} {first}"
        companions = dict(
            session.execute(
                sa.select(VisitParticipant.visit_id, sa.func.count())
                .where(VisitParticipant.visit_id.in_(ids), VisitParticipant.role != ParticipantRole.LEAD)
                .group_by(VisitParticipant.visit_id)
            ).all()
        )
        tiles = []
        for v in visits:
            resident = residents[v.resident_id]
            visitor = leads.get(v.id, "")
            if companions.get(v.id):
                visitor = f"{visitor} +{companions[v.id]}"
            tiles.append(
                WallVisit(
                    id=v.id,
                    kind=v.kind,
                    status=v.status,
                    mode=v.mode,
                    resident=f"{resident.last_name} {resident.first_name}",
                    resident_number=resident.number,
                    visitor=visitor,
                    station=stations.get(v.station_id, ""),
                    starts_at=v.starts_at,
                    ends_at=v.ends_at,
                )
            )
        return tiles


# --- recovery after a restart ----------------------------------------------------------------------


@dataclass(frozen=True)
class OpenVisit:
    """A visit left in progress by the restart with time left: the sides may rejoin until its end."""

    visit_id: int
    facility_id: int
    kind: VisitKind
    ends_at: datetime


@dataclass(frozen=True)
class Recovery:
    failed: list[Ended]
    open: list[OpenVisit]
    recordings: list[tuple[int, str]]
    """Recordings left RECORDING by the restart: (id, path), for the engine to examine."""


def recover_after_restart(ctx: AppContext) -> Recovery:
    """At start-up no room is open, so every visit still in progress lost its media: those whose end has
    passed failed because of the restart (FAILED, the allowance back, priority re-booking); those with
    time left stay in progress for the sides to rejoin (each gets a VisitEvent "recovered"). Recordings
    still RECORDING are listed for the engine to examine."""
    now = ctx.clock()
    failed: list[Ended] = []
    still_open: list[OpenVisit] = []
    with ctx.db.write() as session:
        visits = (
            session.execute(
                sa.select(Visit)
                .where(Visit.status == VisitStatus.IN_PROGRESS)
                .order_by(Visit.id)
                .with_for_update()
            )
            .scalars()
            .all()
        )
        for visit in visits:
            ending = rules.recovery_ending(visit.ends_at, now)
            if ending is not None:
                failed.append(_apply_ending(session, RESTART, visit, ending, now, SYSTEM_META))
            else:
                _event(session, visit.id, now, "recovered", RESTART)
                still_open.append(OpenVisit(visit.id, visit.facility_id, visit.kind, visit.ends_at))
        recordings = [
            (row.id, row.path)
            for row in session.execute(
                sa.select(Recording)
                .where(Recording.status == RecordingStatus.RECORDING)
                .order_by(Recording.id)
            ).scalars()
        ]
    return Recovery(failed=failed, open=still_open, recordings=recordings)


def visit_kind(ctx: AppContext, visit_id: int) -> tuple[VisitKind, int, datetime] | None:
    """A visit's kind, facility and end (None when it does not exist), for opening its room."""
    with ctx.db.read() as session:
        row = session.execute(
            sa.select(Visit.kind, Visit.facility_id, Visit.ends_at).where(Visit.id == visit_id)
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])
