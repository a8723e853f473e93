"""Demo visits: a history, a visit next week, and three visits one can join at once (home, legal and
link-center), so that a newcomer sees a live visit, the monitoring wall and the booth right after
`make run`. `openvisit demo --live` adds the three live ones again later."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    Dependent,
    Facility,
    LinkCenter,
    Resident,
    Station,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    ActorKind,
    ParticipantRole,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import Forbidden, NotFound
from openvisit.domain.principal import Principal
from openvisit.services import audit
from openvisit.services.context import AppContext

DEMO_VISITS_ACTOR = Principal(kind=ActorKind.SYSTEM, label="demo")
LIVE_MINUTES = 30


@dataclass(frozen=True)
class _Plan:
    visitor_email: str
    resident_number: str
    station_code: str
    kind: VisitKind = VisitKind.SOCIAL
    booth_code: str | None = None
    link_center_code: str | None = None
    with_child: bool = False


_LIVE: tuple[_Plan, ...] = (
    _Plan("maria.smirnova@example.org", "A-100001", "IK17-U1-K1", with_child=True),
    _Plan("irina.gavrilova@example.org", "A-100006", "IK17-U2-K1", kind=VisitKind.LEGAL),
    _Plan(
        "olga.kuznetsova@example.org",
        "A-100002",
        "IK17-U2-K2",
        booth_code="LC-KRS-B1",
        link_center_code="LC-KRS",
    ),
)


@dataclass(frozen=True)
class DemoVisit:
    """A demo visit as `openvisit demo` prints it."""

    id: int
    who: str
    resident: str
    kind: VisitKind
    mode: VisitMode
    starts_at: datetime
    ends_at: datetime
    status: VisitStatus


def _one(session: Session, stmt: sa.Select[int], what: str) -> int:
    found = session.execute(stmt).scalar_one_or_none()
    if found is None:
        raise NotFound("demo.missing", f"The demo data has no {what}; run `openvisit demo` first.")
    return found


def _add_visit(
    session: Session,
    plan: _Plan,
    starts_at: datetime,
    *,
    status: VisitStatus,
    now: datetime,
    minutes: int = LIVE_MINUTES,
) -> DemoVisit | None:
    """Adds one visit unless its resident, station or booth is already taken then; None when skipped."""
    visitor_id = _one(
        session,
        sa.select(Visitor.id)
        .join(UserAccount, UserAccount.id == Visitor.user_id)
        .where(UserAccount.email == plan.visitor_email),
        f"visitor {plan.visitor_email}",
    )
    resident = session.execute(
        sa.select(Resident).where(Resident.number == plan.resident_number)
    ).scalar_one()
    station_id = _one(
        session, sa.select(Station.id).where(Station.code == plan.station_code), plan.station_code
    )
    booth_id = link_center_id = None
    if plan.booth_code and plan.link_center_code:
        booth_id = _one(
            session, sa.select(Station.id).where(Station.code == plan.booth_code), plan.booth_code
        )
        link_center_id = _one(
            session, sa.select(LinkCenter.id).where(LinkCenter.code == plan.link_center_code), "link center"
        )
    ends_at = starts_at + timedelta(minutes=minutes)
    if status in ACTIVE_VISIT_STATUSES:
        places = [Visit.resident_id == resident.id, Visit.station_id == station_id]
        if booth_id is not None:
            places.append(Visit.booth_station_id == booth_id)
        busy = session.execute(
            sa.select(Visit.id).where(
                sa.or_(*places),
                Visit.status.in_(ACTIVE_VISIT_STATUSES),
                Visit.starts_at < ends_at,
                Visit.ends_at > starts_at,
            )
        ).first()
        if busy is not None:
            return None
    ended = status is VisitStatus.COMPLETED
    visit = Visit(
        kind=plan.kind,
        mode=VisitMode.LINK_CENTER if booth_id else VisitMode.HOME,
        status=status,
        facility_id=resident.facility_id,
        resident_id=resident.id,
        station_id=station_id,
        link_center_id=link_center_id,
        booth_station_id=booth_id,
        starts_at=starts_at,
        ends_at=ends_at,
        counts_toward_allowance=plan.kind is VisitKind.SOCIAL,
        started_at=starts_at if ended else None,
        ended_at=ends_at if ended else None,
        outcome="completed" if ended else None,
    )
    session.add(visit)
    session.flush()
    session.add(VisitParticipant(visit_id=visit.id, visitor_id=visitor_id, role=ParticipantRole.LEAD))
    if plan.with_child:
        child_id = session.execute(
            sa.select(Dependent.id).where(Dependent.visitor_id == visitor_id).order_by(Dependent.id)
        ).scalar()
        if child_id is not None:
            session.add(
                VisitParticipant(visit_id=visit.id, dependent_id=child_id, role=ParticipantRole.DEPENDENT)
            )
    audit.record(
        session,
        DEMO_VISITS_ACTOR,
        "visit.booked",
        "visit",
        visit.id,
        at=now,
        facility_id=resident.facility_id,
        after={"status": status.value, "kind": plan.kind.value, "demo": True},
    )
    return DemoVisit(
        visit.id,
        plan.visitor_email,
        plan.resident_number,
        plan.kind,
        visit.mode,
        starts_at,
        ends_at,
        status,
    )


def _live_start(now: datetime) -> datetime:
    """Now, on the last whole five minutes: the live visits are inside their join window at once."""
    return now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)


def add_live_visits(session: Session, now: datetime) -> list[DemoVisit]:
    """The three visits one can join now; each is skipped when its people or places are taken."""
    start = _live_start(now)
    made = [_add_visit(session, plan, start, status=VisitStatus.APPROVED, now=now) for plan in _LIVE]
    return [v for v in made if v is not None]


def add_history_and_plans(session: Session, now: datetime) -> list[DemoVisit]:
    """Maria's visit of a week ago (completed) and her visit next week, in the colony's morning session."""
    tz = ZoneInfo(session.execute(sa.select(Facility.timezone).where(Facility.code == "IK-17")).scalar_one())
    local_today = now.astimezone(tz).date()
    made = []
    for days, status in ((-7, VisitStatus.COMPLETED), (7, VisitStatus.APPROVED)):
        day = local_today + timedelta(days=days)
        while day.weekday() >= 5:  # the public sessions run on weekdays
            day += timedelta(days=1)
        starts_at = datetime.combine(day, time(9, 35), tz).astimezone(ZoneInfo("UTC"))
        made.append(_add_visit(session, _LIVE[0], starts_at, status=status, now=now))
    return [v for v in made if v is not None]


def load_live_visits(ctx: AppContext) -> list[DemoVisit]:
    """`openvisit demo --live`: add the three live demo visits again, starting now."""
    if ctx.settings.mode == "production":
        raise Forbidden("demo.refused_in_production", "Demo visits are never added in production.")
    with ctx.db.write() as session:
        return add_live_visits(session, ctx.clock())


def live_demo_visits(session: Session, now: datetime) -> list[DemoVisit]:
    """The demo's visits that can be joined now or soon (approved or in progress, not yet ended)."""
    rows = session.execute(
        sa.select(Visit, UserAccount.email, Resident.number)
        .join(VisitParticipant, VisitParticipant.visit_id == Visit.id)
        .join(Visitor, Visitor.id == VisitParticipant.visitor_id)
        .join(UserAccount, UserAccount.id == Visitor.user_id)
        .join(Resident, Resident.id == Visit.resident_id)
        .where(
            VisitParticipant.role == ParticipantRole.LEAD,
            Visit.status.in_((VisitStatus.APPROVED, VisitStatus.IN_PROGRESS)),
            Visit.ends_at > now,
            Visit.starts_at <= now + timedelta(minutes=10),
            UserAccount.email.in_([p.visitor_email for p in _LIVE]),
        )
        .order_by(Visit.starts_at, Visit.id)
    ).all()
    return [
        DemoVisit(v.id, email, number, v.kind, v.mode, v.starts_at, v.ends_at, v.status)
        for v, email, number in rows
    ]
