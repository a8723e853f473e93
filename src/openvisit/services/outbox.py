"""The notification outbox: messages are written in the same transaction as the event they announce,
and delivered later (with retries) by the delivery worker, so a crash loses none."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import Notification, Resident, UserAccount, Visit, Visitor, VisitParticipant
from openvisit.domain.enums import NotificationChannel


def enqueue_user(
    session: Session,
    user: UserAccount,
    template: str,
    now: datetime,
    payload: Mapping[str, Any],
    *,
    visit_id: int | None = None,
) -> None:
    """An email to a user, in their language."""
    session.add(
        Notification(
            channel=NotificationChannel.EMAIL,
            user_id=user.id,
            address=user.email,
            template=template,
            language=user.language,
            payload=dict(payload),
            visit_id=visit_id,
            next_attempt_at=now,
        )
    )


def enqueue_resident(
    session: Session,
    resident: Resident,
    template: str,
    now: datetime,
    payload: Mapping[str, Any],
    *,
    visit_id: int | None = None,
) -> None:
    """A message on the resident's station inbox, in their language."""
    session.add(
        Notification(
            channel=NotificationChannel.STATION,
            resident_id=resident.id,
            template=template,
            language=resident.language,
            payload=dict(payload),
            visit_id=visit_id,
            next_attempt_at=now,
        )
    )


def visit_payload(visit: Visit, facility_timezone: str, **extra: Any) -> dict[str, Any]:
    """What every message about a visit needs to be written in any language later."""
    return {
        "visit_id": visit.id,
        "kind": visit.kind.value,
        "mode": visit.mode.value,
        "starts_at": visit.starts_at.isoformat(),
        "ends_at": visit.ends_at.isoformat(),
        "facility_timezone": facility_timezone,
        **extra,
    }


def enqueue_for_visit(
    session: Session, visit: Visit, template: str, now: datetime, facility_timezone: str, **extra: Any
) -> int:
    """Tell every adult visitor of the visit (email) and the resident (station); returns how many."""
    payload = visit_payload(visit, facility_timezone, **extra)
    users = (
        session.execute(
            sa.select(UserAccount)
            .join(Visitor, Visitor.user_id == UserAccount.id)
            .join(VisitParticipant, VisitParticipant.visitor_id == Visitor.id)
            .where(VisitParticipant.visit_id == visit.id)
            .order_by(UserAccount.id)
        )
        .scalars()
        .all()
    )
    for user in users:
        enqueue_user(session, user, template, now, payload, visit_id=visit.id)
    resident = session.get(Resident, visit.resident_id)
    if resident is not None:
        enqueue_resident(session, resident, template, now, payload, visit_id=visit.id)
    return len(users) + (resident is not None)
