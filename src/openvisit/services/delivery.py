"""Delivering notifications: the reminders that fall due, the worker's run over the outbox, and the
resident's station inbox.

The outbox rows are written by the use cases in the same transaction as their event (services/outbox.py);
here they go out (notify/worker.py says how a crash or an outage loses none). The server runs
`deliver_tick` every OPENVISIT_DELIVERY_SECONDS; `openvisit worker` runs it as a process of its own."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from openvisit.db.models import (
    Facility,
    Notification,
    Resident,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import NotificationChannel, NotificationStatus, VisitStatus
from openvisit.domain.errors import N_, NotFound
from openvisit.domain.principal import Principal
from openvisit.notify import worker
from openvisit.notify.messages import inbox_line
from openvisit.notify.reminders import HORIZON, REMINDER_TEMPLATES, due_reminder
from openvisit.notify.sms import SmsGateway, gateway_from_settings
from openvisit.notify.worker import DeliveryReport
from openvisit.services import outbox
from openvisit.services.context import AppContext


def deliver_due(ctx: AppContext, *, sms: SmsGateway | None = None) -> DeliveryReport:
    """Send every notification that is due now (email over SMTP, text messages through the configured
    gateway, station messages straight to the inbox), recording each outcome."""
    gateway = sms if sms is not None else gateway_from_settings(ctx.settings)
    return worker.deliver(ctx.db, ctx.settings, ctx.clock, sms=gateway)


def enqueue_reminders(ctx: AppContext) -> int:
    """Write the reminders now due (24 h and 15 min before approved visits) to the outbox, each at most
    once per visit and recipient, whoever else runs this at the same moment. Returns how many."""
    now = ctx.clock()
    written = 0
    with ctx.db.write() as session:
        # The visits are locked first (PostgreSQL; SQLite's write lock already serialises this), and
        # the reminders already written are read by a *later* statement: a concurrent run that locked
        # them first has committed its reminders by then, and READ COMMITTED shows them to us.
        visits = session.execute(
            sa.select(Visit, Facility.timezone)
            .join(Facility, Facility.id == Visit.facility_id)
            .where(
                Visit.status == VisitStatus.APPROVED,
                Visit.starts_at > now,
                Visit.starts_at <= now + HORIZON,
            )
            .order_by(Visit.id)
            .with_for_update(of=Visit)
        ).all()
        due = [(visit, tz, due_reminder(visit.starts_at, now)) for visit, tz in visits]
        due = [(visit, tz, template) for visit, tz, template in due if template is not None]
        if not due:
            return 0
        ids = [visit.id for visit, _tz, _template in due]
        written_before = {
            (visit_id, template, user_id, resident_id)
            for visit_id, template, user_id, resident_id in session.execute(
                sa.select(
                    Notification.visit_id,
                    Notification.template,
                    Notification.user_id,
                    Notification.resident_id,
                ).where(
                    Notification.visit_id.in_(ids),
                    Notification.template.in_(REMINDER_TEMPLATES),
                    # The text-message copies follow their email and are not reminders of their own.
                    Notification.channel != NotificationChannel.SMS,
                )
            )
        }
        users: dict[int, list[UserAccount]] = defaultdict(list)
        for visit_id, user in session.execute(
            sa.select(VisitParticipant.visit_id, UserAccount)
            .join(Visitor, Visitor.id == VisitParticipant.visitor_id)
            .join(UserAccount, UserAccount.id == Visitor.user_id)
            .where(VisitParticipant.visit_id.in_(ids))
            .order_by(UserAccount.id)
        ):
            users[visit_id].append(user)
        residents = {
            r.id: r
            for r in session.execute(
                sa.select(Resident).where(Resident.id.in_({visit.resident_id for visit, _, _ in due}))
            ).scalars()
        }
        for visit, tz, template in due:
            assert template is not None
            payload = outbox.visit_payload(visit, tz)
            for user in users[visit.id]:
                if (visit.id, template, user.id, None) not in written_before:
                    outbox.enqueue_user(session, user, template, now, payload, visit_id=visit.id)
                    written += 1
            resident = residents.get(visit.resident_id)
            if resident is not None and (visit.id, template, None, resident.id) not in written_before:
                outbox.enqueue_resident(session, resident, template, now, payload, visit_id=visit.id)
                written += 1
    return written


@dataclass(frozen=True)
class TickResult:
    reminders: int
    delivery: DeliveryReport

    def describe(self) -> str:
        return f"{self.reminders} reminders written; {self.delivery.describe()}"


def deliver_tick(ctx: AppContext, *, sms: SmsGateway | None = None) -> TickResult:
    """One round of the worker: write the reminders now due, then deliver everything due."""
    reminders = enqueue_reminders(ctx)
    return TickResult(reminders, deliver_due(ctx, sms=sms))


# --- the resident's station inbox -----------------------------------------------------------------


@dataclass(frozen=True)
class InboxMessage:
    """One delivered message on the station, written in the resident's language."""

    id: int
    text: str
    at: datetime
    read: bool
    visit_id: int | None


def station_messages(ctx: AppContext, p: Principal, *, limit: int = 20) -> list[InboxMessage]:
    """The resident's delivered station messages, newest first (nobody else has any)."""
    if p.resident_id is None:
        return []
    with ctx.db.read() as session:
        rows = (
            session.execute(
                sa.select(Notification)
                .where(
                    Notification.resident_id == p.resident_id,
                    Notification.channel == NotificationChannel.STATION,
                    Notification.status == NotificationStatus.SENT,
                )
                .order_by(Notification.sent_at.desc(), Notification.id.desc())
                .limit(limit)
            )
            .scalars()
            .all()
        )
    return [
        InboxMessage(
            id=row.id,
            text=inbox_line(row.template, row.language, row.payload or {}),
            at=row.sent_at or row.next_attempt_at,
            read=row.read_at is not None,
            visit_id=row.visit_id,
        )
        for row in rows
    ]


def mark_read(ctx: AppContext, p: Principal, notification_ids: Sequence[int] | None = None) -> int:
    """Mark the resident's station messages read (all of them when no ids are given); a message that is
    not theirs is "not found". Returns how many were unread."""
    if p.resident_id is None:
        raise NotFound("notification.not_found", N_("No such message."))
    now = ctx.clock()
    with ctx.db.write() as session:
        mine = sa.and_(
            Notification.resident_id == p.resident_id,
            Notification.channel == NotificationChannel.STATION,
            Notification.status == NotificationStatus.SENT,
        )
        if notification_ids is not None:
            wanted = set(notification_ids)
            found = set(
                session.execute(sa.select(Notification.id).where(mine, Notification.id.in_(wanted))).scalars()
            )
            if found != wanted:
                raise NotFound("notification.not_found", N_("No such message."))
            mine = sa.and_(mine, Notification.id.in_(wanted))
        result = session.execute(
            sa.update(Notification)
            .where(mine, Notification.read_at.is_(None))
            .values(read_at=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
