"""Vetting: visitors ask to be linked to a resident; clerks see the queue with documents and
restrictions and decide with a reason; links can be suspended or revoked; restrictions (bans,
suspensions, keep-apart orders, resident alerts); attorneys verified into the do-not-record registry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    AttorneyProfile,
    Connection,
    Dependent,
    Facility,
    IdentityDocument,
    KeepApart,
    Resident,
    ResidentAlert,
    Restriction,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain import vetting as rules
from openvisit.domain.enums import (
    ConnectionKind,
    ConnectionStatus,
    DocumentKind,
    Relationship,
    RestrictionKind,
    Role,
    VerificationStatus,
)
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.services import audit, auth, outbox
from openvisit.services.access import access_resident_by_id, access_staff_facility_by_id, require_active
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import cancel_future_visits

CLERK_ROLES = (Role.VETTING_CLERK, Role.FACILITY_ADMIN)
NO_MATCH = N_(
    "We could not find a person with these details. "
    "Please check the number, the last name, the date of birth and the facility."
)


def _visitor_of(p: Principal) -> int:
    require_active(p)
    if p.visitor_id is None:
        raise Forbidden("visitor.only", N_("This is for visitors."))
    return p.visitor_id


def _user_of_visitor(session: Session, visitor_id: int) -> UserAccount:
    user = session.execute(
        sa.select(UserAccount)
        .join(Visitor, Visitor.user_id == UserAccount.id)
        .where(Visitor.id == visitor_id)
    ).scalar_one()
    return user


def _resident_name(r: Resident) -> str:
    return f"{r.last_name} {r.first_name} {r.middle_name}".strip()


# --- a visitor asks ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkRequest:
    facility_id: int
    number: str
    last_name: str
    birth_date: date
    relationship: Relationship
    dependent_id: int | None = None


def request_link(ctx: AppContext, p: Principal, form: LinkRequest, meta: RequestMeta) -> Connection:
    """Ask to be linked to a resident named by number, last name, date of birth and facility. A wrong
    detail and a person who does not exist get the same answer; attempts are throttled."""
    visitor_id = _visitor_of(p)
    now = ctx.clock()
    subject = f"link:{visitor_id}"
    failure: Exception | None = None
    with ctx.db.write() as session:
        auth.check_throttle(ctx, session, subject, meta.ip, now)
        user = session.get(UserAccount, p.user_id)
        if user is None or user.email_verified_at is None:
            raise Forbidden("visitor.email_unconfirmed", N_("Please confirm your email address first."))
        resident = session.execute(
            sa.select(Resident).where(
                Resident.number == form.number.strip().upper(),
                Resident.facility_id == form.facility_id,
                Resident.birth_date == form.birth_date,
            )
        ).scalar_one_or_none()
        if resident is None or resident.last_name.casefold() != form.last_name.strip().casefold():
            auth.record_failure(ctx, session, subject, meta, now)
            failure = InvalidInput("link.no_match", NO_MATCH)
        else:
            if form.dependent_id is not None:
                child = session.get(Dependent, form.dependent_id)
                if child is None or child.visitor_id != visitor_id:
                    raise NotFound("dependent.not_found", N_("No such child."))
            existing = session.execute(
                sa.select(Connection).where(
                    Connection.resident_id == resident.id,
                    Connection.visitor_id == visitor_id,
                    Connection.dependent_id.is_(None)
                    if form.dependent_id is None
                    else Connection.dependent_id == form.dependent_id,
                )
            ).scalar_one_or_none()
            if existing is not None and existing.status is not ConnectionStatus.REJECTED:
                raise Conflict("link.exists", N_("You have already asked to be linked to this person."))
            attorney = session.execute(
                sa.select(AttorneyProfile.status).where(AttorneyProfile.visitor_id == visitor_id)
            ).scalar_one_or_none()
            if form.relationship is Relationship.ATTORNEY and attorney is None:
                raise InvalidInput(
                    "link.not_an_attorney",
                    N_("Only a registered attorney can ask for a legal link."),
                    field="relationship",
                )
            kind = (
                rules.link_kind(form.relationship, attorney)
                if form.dependent_id is None
                else ConnectionKind.SOCIAL
            )
            if existing is not None:
                # A rejected request may be asked again; the same row carries the new request.
                link = existing
                link.status, link.reason, link.note = ConnectionStatus.REQUESTED, None, ""
                link.relationship, link.kind, link.decided_by_id, link.decided_at = (
                    form.relationship,
                    kind,
                    None,
                    None,
                )
            else:
                link = Connection(
                    resident_id=resident.id,
                    visitor_id=visitor_id,
                    dependent_id=form.dependent_id,
                    relationship=form.relationship,
                    kind=kind,
                    status=ConnectionStatus.REQUESTED,
                )
                session.add(link)
            session.flush()
            audit.record(
                session,
                p,
                "link.requested",
                "connection",
                link.id,
                at=now,
                facility_id=resident.facility_id,
                after={
                    "resident_id": resident.id,
                    "visitor_id": visitor_id,
                    "dependent_id": form.dependent_id,
                    "relationship": form.relationship.value,
                    "kind": kind.value,
                },
                ip=meta.ip,
            )
            return link
    raise failure


# --- the clerk's queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    """A link request as the clerk sees it: who asks, for whom, with what proof, under what restriction."""

    connection: Connection
    resident: Resident
    visitor: Visitor
    email: str
    dependent: Dependent | None
    documents: list[IdentityDocument]
    restrictions: list[Restriction]
    attorney: AttorneyProfile | None
    other_links: int


def link_queue(
    ctx: AppContext, p: Principal, facility_id: int, *, status: ConnectionStatus = ConnectionStatus.REQUESTED
) -> list[QueueItem]:
    """Links of a facility's residents in `status` (requests by default), oldest first."""
    now = ctx.clock()
    with ctx.db.read() as session:
        access_staff_facility_by_id(session, p, facility_id, CLERK_ROLES)
        rows = session.execute(
            sa.select(Connection, Resident, Visitor, UserAccount)
            .join(Resident, Resident.id == Connection.resident_id)
            .join(Visitor, Visitor.id == Connection.visitor_id)
            .join(UserAccount, UserAccount.id == Visitor.user_id)
            .where(Resident.facility_id == facility_id, Connection.status == status)
            .order_by(Connection.created_at, Connection.id)
            .limit(200)
        ).all()
        items = []
        for link, resident, visitor, user in rows:
            items.append(
                QueueItem(
                    connection=link,
                    resident=resident,
                    visitor=visitor,
                    email=user.email,
                    dependent=session.get(Dependent, link.dependent_id) if link.dependent_id else None,
                    documents=list(
                        session.execute(
                            sa.select(IdentityDocument)
                            .where(IdentityDocument.visitor_id == visitor.id)
                            .order_by(IdentityDocument.uploaded_at.desc())
                        ).scalars()
                    ),
                    restrictions=_active_restrictions(session, visitor.id, now),
                    attorney=session.execute(
                        sa.select(AttorneyProfile).where(AttorneyProfile.visitor_id == visitor.id)
                    ).scalar_one_or_none(),
                    other_links=int(
                        session.execute(
                            sa.select(sa.func.count()).where(
                                Connection.visitor_id == visitor.id,
                                Connection.status == ConnectionStatus.APPROVED,
                            )
                        ).scalar_one()
                    ),
                )
            )
        return items


def _active_restrictions(session: Session, visitor_id: int, now: datetime) -> list[Restriction]:
    return list(
        session.execute(
            sa.select(Restriction)
            .where(
                Restriction.visitor_id == visitor_id,
                Restriction.lifted_at.is_(None),
                sa.or_(Restriction.ends_at.is_(None), Restriction.ends_at > now),
            )
            .order_by(Restriction.starts_at)
        ).scalars()
    )


def _link_for_clerk(session: Session, p: Principal, connection_id: int) -> tuple[Connection, Resident]:
    link = session.get(Connection, connection_id, with_for_update=True)
    if link is None:
        raise NotFound("link.not_found", N_("No such link."))
    resident = session.get(Resident, link.resident_id)
    assert resident is not None
    if not any(p.holds(role, facility_id=resident.facility_id) for role in CLERK_ROLES):
        raise NotFound("link.not_found", N_("No such link."))
    return link, resident


def decide_link(
    ctx: AppContext,
    p: Principal,
    connection_id: int,
    meta: RequestMeta,
    *,
    approve: bool,
    reason: str | None = None,
    note: str = "",
) -> Connection:
    """Approve a request (after seeing an ID and a selfie, which also verifies the visitor), or reject
    it with a preset reason the visitor is told."""
    now = ctx.clock()
    with ctx.db.write() as session:
        link, resident = _link_for_clerk(session, p, connection_id)
        if link.status is not ConnectionStatus.REQUESTED:
            raise Conflict("link.not_requested", N_("This request has already been decided."))
        visitor = session.get(Visitor, link.visitor_id, with_for_update=True)
        assert visitor is not None
        before = {"status": link.status.value}
        if approve:
            kinds = set(
                session.execute(
                    sa.select(IdentityDocument.kind).where(IdentityDocument.visitor_id == visitor.id)
                ).scalars()
            )
            if not {DocumentKind.ID_FRONT, DocumentKind.SELFIE} <= kinds:
                raise Conflict(
                    "link.documents_missing",
                    N_("The visitor has not uploaded both an ID document and a selfie yet."),
                )
            link.status, link.reason = ConnectionStatus.APPROVED, None
            if visitor.verification is not VerificationStatus.VERIFIED:
                visitor.verification, visitor.verified_by_id, visitor.verified_at = (
                    VerificationStatus.VERIFIED,
                    p.user_id,
                    now,
                )
                audit.record(
                    session,
                    p,
                    "visitor.verified",
                    "visitor",
                    visitor.id,
                    at=now,
                    facility_id=resident.facility_id,
                    after={"verification": "verified"},
                    ip=meta.ip,
                )
        else:
            link.status, link.reason = ConnectionStatus.REJECTED, rules.check_reason(reason)
        link.note, link.decided_by_id, link.decided_at = note[:2000], p.user_id, now
        session.flush()
        audit.record(
            session,
            p,
            "link.approved" if approve else "link.rejected",
            "connection",
            link.id,
            at=now,
            facility_id=resident.facility_id,
            before=before,
            after={"status": link.status.value, "reason": link.reason, "note": link.note},
            ip=meta.ip,
        )
        outbox.enqueue_user(
            session,
            _user_of_visitor(session, visitor.id),
            "link_approved" if approve else "link_rejected",
            now,
            {"resident_name": _resident_name(resident), "reason": link.reason, "note": link.note},
        )
        return link


def change_link(
    ctx: AppContext,
    p: Principal,
    connection_id: int,
    status: ConnectionStatus,
    meta: RequestMeta,
    *,
    reason: str | None = None,
    note: str = "",
) -> tuple[Connection, int]:
    """Suspend or revoke an approved link (its future visits are cancelled and everyone told), or
    reinstate a suspended one. Returns the link and how many visits were cancelled."""
    now = ctx.clock()
    if status not in (ConnectionStatus.SUSPENDED, ConnectionStatus.REVOKED, ConnectionStatus.APPROVED):
        raise InvalidInput(
            "link.invalid_status", N_("A link can be suspended, revoked or reinstated."), field="status"
        )
    with ctx.db.write() as session:
        link, resident = _link_for_clerk(session, p, connection_id)
        allowed_from = {
            ConnectionStatus.SUSPENDED: {ConnectionStatus.APPROVED},
            ConnectionStatus.REVOKED: {ConnectionStatus.APPROVED, ConnectionStatus.SUSPENDED},
            ConnectionStatus.APPROVED: {ConnectionStatus.SUSPENDED},
        }[status]
        if link.status not in allowed_from:
            raise Conflict("link.wrong_state", N_("This link cannot be changed that way now."))
        before = {"status": link.status.value, "reason": link.reason}
        link.status = status
        link.reason = None if status is ConnectionStatus.APPROVED else rules.check_reason(reason)
        link.note, link.decided_by_id, link.decided_at = note[:2000], p.user_id, now
        cancelled = 0
        if status is not ConnectionStatus.APPROVED:
            in_party = Visit.id.in_(
                sa.select(VisitParticipant.visit_id).where(
                    VisitParticipant.visitor_id == link.visitor_id
                    if link.dependent_id is None
                    else VisitParticipant.dependent_id == link.dependent_id
                )
            )
            why = "link_suspended" if status is ConnectionStatus.SUSPENDED else "link_revoked"
            cancelled = cancel_future_visits(
                session, p, sa.and_(Visit.resident_id == resident.id, in_party), why, now, meta, note=note
            )
        session.flush()
        audit.record(
            session,
            p,
            f"link.{status.value}",
            "connection",
            link.id,
            at=now,
            facility_id=resident.facility_id,
            before=before,
            after={"status": status.value, "reason": link.reason, "cancelled_visits": cancelled},
            ip=meta.ip,
        )
        outbox.enqueue_user(
            session,
            _user_of_visitor(session, link.visitor_id),
            f"link_{status.value}",
            now,
            {"resident_name": _resident_name(resident), "reason": link.reason, "note": link.note},
        )
        return link, cancelled


# --- restrictions -----------------------------------------------------------------------------------


def add_restriction(
    ctx: AppContext,
    p: Principal,
    visitor_id: int,
    facility_id: int,
    kind: RestrictionKind,
    meta: RequestMeta,
    *,
    reason: str,
    ends_at: datetime | None,
    visit_id: int | None = None,
) -> tuple[Restriction, int]:
    """Ban or suspend a visitor at a facility until `ends_at` (or for good); their visits there in
    that time are cancelled. Returns the restriction and how many visits were cancelled."""
    now = ctx.clock()
    if not reason.strip():
        raise InvalidInput("restriction.reason_required", N_("Please give a reason."), field="reason")
    if ends_at is not None and ends_at <= now:
        raise InvalidInput("restriction.ends_in_past", N_("The end must be in the future."), field="ends_at")
    with ctx.db.write() as session:
        access_staff_facility_by_id(session, p, facility_id, CLERK_ROLES)
        if session.get(Visitor, visitor_id) is None:
            raise NotFound("visitor.not_found", N_("No such visitor."))
        row = _restrict(
            session,
            p,
            visitor_id,
            facility_id,
            kind,
            now,
            meta,
            reason=reason,
            ends_at=ends_at,
            visit_id=visit_id,
        )
        return row, _cancel_restricted(session, p, row, now, meta)


def _restrict(
    session: Session,
    p: Principal,
    visitor_id: int,
    facility_id: int | None,
    kind: RestrictionKind,
    now: datetime,
    meta: RequestMeta,
    *,
    reason: str,
    ends_at: datetime | None,
    visit_id: int | None,
) -> Restriction:
    row = Restriction(
        kind=kind,
        visitor_id=visitor_id,
        facility_id=facility_id,
        starts_at=now,
        ends_at=ends_at,
        reason=reason.strip()[:2000],
        visit_id=visit_id,
        created_by_id=p.user_id,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        p,
        f"restriction.{kind.value}",
        "visitor",
        visitor_id,
        at=now,
        facility_id=facility_id,
        after={"restriction_id": row.id, "ends_at": ends_at, "reason": row.reason, "visit_id": visit_id},
        ip=meta.ip,
    )
    outbox.enqueue_user(
        session,
        _user_of_visitor(session, visitor_id),
        "visitor_restricted",
        now,
        {"kind": kind.value, "reason": row.reason, "ends_at": ends_at.isoformat() if ends_at else None},
    )
    return row


def _cancel_restricted(
    session: Session, p: Principal, row: Restriction, now: datetime, meta: RequestMeta
) -> int:
    where: list[sa.ColumnElement[bool]] = [
        Visit.id.in_(
            sa.select(VisitParticipant.visit_id).where(VisitParticipant.visitor_id == row.visitor_id)
        )
    ]
    if row.facility_id is not None:
        where.append(Visit.facility_id == row.facility_id)
    if row.ends_at is not None:
        where.append(Visit.starts_at < row.ends_at)
    return cancel_future_visits(session, p, sa.and_(*where), "visitor_banned", now, meta, note=row.reason)


def suspend_after_termination(
    session: Session,
    p: Principal,
    visitor_id: int,
    facility_id: int,
    visit_id: int | None,
    now: datetime,
    meta: RequestMeta,
    *,
    reason: str,
) -> Restriction:
    """After a visit is terminated for the visitor's conduct: 7 days, then 30, then 90 (in the caller's
    transaction; the termination use case calls it)."""
    previous = int(
        session.execute(
            sa.select(sa.func.count()).where(
                Restriction.visitor_id == visitor_id, Restriction.kind == RestrictionKind.SUSPENSION
            )
        ).scalar_one()
    )
    row = _restrict(
        session,
        p,
        visitor_id,
        facility_id,
        RestrictionKind.SUSPENSION,
        now,
        meta,
        reason=reason,
        ends_at=now + rules.next_suspension(previous),
        visit_id=visit_id,
    )
    _cancel_restricted(session, p, row, now, meta)
    return row


def lift_restriction(ctx: AppContext, p: Principal, restriction_id: int, meta: RequestMeta) -> None:
    """End a ban or suspension early."""
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.get(Restriction, restriction_id, with_for_update=True)
        if (
            row is None
            or row.facility_id is None
            or not any(p.holds(role, facility_id=row.facility_id) for role in CLERK_ROLES)
        ):
            raise NotFound("restriction.not_found", N_("No such restriction."))
        if row.lifted_at is not None:
            return
        row.lifted_at = now
        audit.record(
            session,
            p,
            "restriction.lifted",
            "visitor",
            row.visitor_id,
            at=now,
            facility_id=row.facility_id,
            after={"restriction_id": row.id},
            ip=meta.ip,
        )


def my_restrictions(ctx: AppContext, p: Principal) -> list[tuple[Restriction, str | None]]:
    """A visitor's own active restrictions with the facility's name, so they know until when."""
    visitor_id = _visitor_of(p)
    now = ctx.clock()
    with ctx.db.read() as session:
        rows = _active_restrictions(session, visitor_id, now)
        names = {f.id: f.name for f in session.execute(sa.select(Facility)).scalars()}
        return [(r, names.get(r.facility_id) if r.facility_id else None) for r in rows]


def facility_restrictions(
    ctx: AppContext, p: Principal, facility_id: int
) -> list[tuple[Restriction, Visitor]]:
    """Active restrictions at a facility, for its clerks."""
    now = ctx.clock()
    with ctx.db.read() as session:
        access_staff_facility_by_id(session, p, facility_id, CLERK_ROLES)
        return [
            (r, v)
            for r, v in session.execute(
                sa.select(Restriction, Visitor)
                .join(Visitor, Visitor.id == Restriction.visitor_id)
                .where(
                    Restriction.facility_id == facility_id,
                    Restriction.lifted_at.is_(None),
                    sa.or_(Restriction.ends_at.is_(None), Restriction.ends_at > now),
                )
                .order_by(Restriction.starts_at.desc())
            ).all()
        ]


def set_keep_apart(
    ctx: AppContext, p: Principal, resident_a: int, resident_b: int, meta: RequestMeta, *, reason: str
) -> KeepApart:
    """Order that two residents of one facility never share a visiting room at the same time."""
    now = ctx.clock()
    if resident_a == resident_b:
        raise InvalidInput("keep_apart.same", N_("Choose two different residents."), field="resident_b")
    if not reason.strip():
        raise InvalidInput("keep_apart.reason_required", N_("Please give a reason."), field="reason")
    with ctx.db.write() as session:
        a = access_resident_by_id(session, p, resident_a)
        b = access_resident_by_id(session, p, resident_b)
        if not all(
            p.holds(role, facility_id=a.facility_id) for role in (Role.FACILITY_ADMIN,)
        ) and not p.holds(Role.VETTING_CLERK, facility_id=a.facility_id):
            raise Forbidden()
        low, high = sorted((a.id, b.id))
        existing = session.execute(
            sa.select(KeepApart).where(KeepApart.resident_a_id == low, KeepApart.resident_b_id == high)
        ).scalar_one_or_none()
        if existing is not None:
            return existing
        row = KeepApart(
            resident_a_id=low, resident_b_id=high, reason=reason.strip()[:2000], created_by_id=p.user_id
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            p,
            "keep_apart.ordered",
            "resident",
            low,
            at=now,
            facility_id=a.facility_id,
            after={"residents": [low, high], "reason": row.reason},
            ip=meta.ip,
        )
        return row


def set_alert(
    ctx: AppContext, p: Principal, resident_id: int, meta: RequestMeta, *, note: str | None
) -> None:
    """Put an alert on a resident (their bookings go to review) with a note, or clear it (note None)."""
    now = ctx.clock()
    with ctx.db.write() as session:
        resident = access_resident_by_id(session, p, resident_id)
        if not any(p.holds(role, facility_id=resident.facility_id) for role in CLERK_ROLES):
            raise Forbidden()
        active = (
            session.execute(
                sa.select(ResidentAlert).where(
                    ResidentAlert.resident_id == resident.id, ResidentAlert.active.is_(True)
                )
            )
            .scalars()
            .all()
        )
        if note is None:
            for alert in active:
                alert.active = False
            action, after = "alert.cleared", {"cleared": str(len(active))}
        else:
            if not note.strip():
                raise InvalidInput("alert.note_required", N_("Please say why."), field="note")
            session.add(
                ResidentAlert(resident_id=resident.id, note=note.strip()[:2000], created_by_id=p.user_id)
            )
            action, after = "alert.set", {"note": note.strip()[:2000]}
        session.flush()
        audit.record(
            session,
            p,
            action,
            "resident",
            resident.id,
            at=now,
            facility_id=resident.facility_id,
            after=after,
            ip=meta.ip,
        )


# --- attorneys --------------------------------------------------------------------------------------


def attorney_queue(ctx: AppContext, p: Principal) -> list[tuple[AttorneyProfile, Visitor, str]]:
    """Attorney claims awaiting verification, for clerks and facility admins."""
    _check_clerk_somewhere(p)
    with ctx.db.read() as session:
        return [
            (a, v, email)
            for a, v, email in session.execute(
                sa.select(AttorneyProfile, Visitor, UserAccount.email)
                .join(Visitor, Visitor.id == AttorneyProfile.visitor_id)
                .join(UserAccount, UserAccount.id == Visitor.user_id)
                .where(AttorneyProfile.status == VerificationStatus.PENDING)
                .order_by(AttorneyProfile.created_at)
            ).all()
        ]


def _check_clerk_somewhere(p: Principal) -> None:
    require_active(p)
    if not (p.is_system_admin or p.roles() & set(CLERK_ROLES)):
        raise Forbidden()


def verify_attorney(
    ctx: AppContext, p: Principal, visitor_id: int, meta: RequestMeta, *, approve: bool, note: str = ""
) -> AttorneyProfile:
    """Verify (or reject) an attorney's licence; a verified attorney's links to clients become legal."""
    _check_clerk_somewhere(p)
    now = ctx.clock()
    with ctx.db.write() as session:
        profile = session.execute(
            sa.select(AttorneyProfile).where(AttorneyProfile.visitor_id == visitor_id).with_for_update()
        ).scalar_one_or_none()
        if profile is None:
            raise NotFound("attorney.not_found", N_("No such attorney."))
        before = {"status": profile.status.value}
        profile.status = VerificationStatus.VERIFIED if approve else VerificationStatus.REJECTED
        profile.verified_by_id, profile.verified_at, profile.note = p.user_id, now, note[:2000]
        kind = ConnectionKind.LEGAL if approve else ConnectionKind.SOCIAL
        changed = session.execute(
            sa.update(Connection)
            .where(Connection.visitor_id == visitor_id, Connection.relationship == Relationship.ATTORNEY)
            .values(kind=kind)
            .execution_options(synchronize_session=False)
        )
        audit.record(
            session,
            p,
            "attorney.verified" if approve else "attorney.rejected",
            "visitor",
            visitor_id,
            at=now,
            before=before,
            after={"status": profile.status.value, "links": int(changed.rowcount or 0)},  # type: ignore[attr-defined]
            ip=meta.ip,
        )
        outbox.enqueue_user(
            session,
            _user_of_visitor(session, visitor_id),
            "attorney_verified" if approve else "attorney_rejected",
            now,
            {"note": note},
        )
        return profile


@dataclass(frozen=True)
class RegistryRow:
    """One verified attorney of the do-not-record registry."""

    visitor_id: int
    name: str
    licence_number: str
    organisation: str
    verified_at: datetime | None
    clients: Sequence[str]


def do_not_record_registry(ctx: AppContext, p: Principal) -> list[RegistryRow]:
    """Verified attorneys and, for the staff's own facilities, their clients: visits with them are
    privileged, never recorded and never watched."""
    require_active(p)
    if not p.is_staff:
        raise Forbidden()
    facilities = p.facilities_for()
    with ctx.db.read() as session:
        rows = session.execute(
            sa.select(AttorneyProfile, Visitor)
            .join(Visitor, Visitor.id == AttorneyProfile.visitor_id)
            .where(AttorneyProfile.status == VerificationStatus.VERIFIED)
            .order_by(Visitor.last_name, Visitor.first_name)
        ).all()
        out = []
        for profile, visitor in rows:
            clients = (
                sa.select(Resident)
                .join(Connection, Connection.resident_id == Resident.id)
                .where(
                    Connection.visitor_id == visitor.id,
                    Connection.kind == ConnectionKind.LEGAL,
                    Connection.status == ConnectionStatus.APPROVED,
                )
            )
            if facilities is not None:
                clients = clients.where(Resident.facility_id.in_(facilities))
            out.append(
                RegistryRow(
                    visitor.id,
                    f"{visitor.last_name} {visitor.first_name} {visitor.middle_name}".strip(),
                    profile.licence_number,
                    profile.organisation,
                    profile.verified_at,
                    [
                        f"{_resident_name(r)} ({r.number})"
                        for r in session.execute(clients.order_by(Resident.last_name)).scalars()
                    ],
                )
            )
        return out


def my_links(ctx: AppContext, p: Principal) -> list[tuple[Connection, Resident, Facility, Dependent | None]]:
    """A visitor's own links (and their children's), with status and the reason when refused."""
    visitor_id = _visitor_of(p)
    with ctx.db.read() as session:
        rows = session.execute(
            sa.select(Connection, Resident, Facility)
            .join(Resident, Resident.id == Connection.resident_id)
            .join(Facility, Facility.id == Resident.facility_id)
            .where(Connection.visitor_id == visitor_id)
            .order_by(Connection.created_at.desc(), Connection.id.desc())
        ).all()
        return [
            (c, r, f, session.get(Dependent, c.dependent_id) if c.dependent_id else None) for c, r, f in rows
        ]
