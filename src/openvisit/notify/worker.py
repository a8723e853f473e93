"""The delivery worker: claims due outbox rows, sends them, and records what happened to each.

How a row moves:

1. **Claim** (one short write transaction): due pending rows are selected — on PostgreSQL with
   `FOR UPDATE SKIP LOCKED`, so concurrent workers take different rows and never wait for each other; on
   SQLite the write transaction holds the database's single write lock (BEGIN IMMEDIATE), so claims run
   one at a time. Each claimed row gets `attempts + 1` and a *lease*: its `next_attempt_at` moves to
   now + `delivery_lease_seconds`, so no other worker takes it meanwhile. Station rows need no sending
   and are marked sent right there.
2. **Send**, outside any transaction (an SMTP server may take its time; no lock is held meanwhile).
3. **Record**, one short transaction per row: `sent` with `sent_at`; or, on failure, `last_error` and a
   new `next_attempt_at` backed off exponentially (`delivery_backoff_seconds` × 2^(attempts − 1), at most
   `delivery_backoff_max_seconds`); after `delivery_max_attempts`, or when the server refused the message
   for good, `failed`.

**Nothing is lost.** A row stays `pending` until the server has accepted its message. If the worker dies
anywhere — before sending, while sending, after sending but before recording — the row is still pending
with its lease, and once the lease runs out the next worker claims it again. The price is that a worker
killed between the server's acceptance and the recording of `sent` makes the message go out twice
(at-least-once delivery; both copies carry the same Message-ID). No row is ever lost, and no row is sent
twice by workers that stay alive: each stops before its lease would run out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.database import Database
from openvisit.db.models import Facility, LinkCenter, Notification, Resident, UserAccount, Visit, Visitor
from openvisit.domain.enums import NotificationChannel, NotificationStatus, VisitMode, VisitStatus
from openvisit.notify.email import SmtpMailer, build_email, mail_domain, message_id_for, sender_address
from openvisit.notify.errors import DeliveryError
from openvisit.notify.messages import VISIT_TEMPLATES, MessageFacts, render
from openvisit.notify.reminders import REMINDER_TEMPLATES
from openvisit.notify.sms import SmsGateway
from openvisit.settings import Settings

Clock = Callable[[], datetime]

SMS_TEMPLATES = VISIT_TEMPLATES
"""Messages that also go out as a text message to a visitor with a phone number, when a gateway is
configured: those about visits (the account messages carry links meant for a browser)."""

GOING_AHEAD = (VisitStatus.APPROVED, VisitStatus.IN_PROGRESS)
"""A reminder is only sent for a visit that still takes place."""


@dataclass(frozen=True)
class DeliveryPolicy:
    """How hard the worker tries; read from the settings."""

    batch_size: int = 50
    max_attempts: int = 10
    backoff: timedelta = timedelta(minutes=1)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(seconds=30)
    """A row is not started when less than this is left of its lease (one SMTP timeout)."""
    max_batches: int = 20
    """Batches one run delivers at most, so a huge backlog cannot keep one run going forever."""

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            batch_size=settings.delivery_batch_size,
            max_attempts=settings.delivery_max_attempts,
            backoff=timedelta(seconds=settings.delivery_backoff_seconds),
            backoff_max=timedelta(seconds=settings.delivery_backoff_max_seconds),
            lease=timedelta(seconds=settings.delivery_lease_seconds),
            margin=timedelta(seconds=settings.smtp_timeout_seconds),
        )

    def backoff_after(self, attempts: int) -> timedelta:
        """The wait after the `attempts`-th failed attempt: 1, 2, 4, 8 … times the base, capped."""
        # The exponent is bounded before multiplying, so a large attempt count cannot overflow timedelta.
        factor = 1 << min(max(attempts - 1, 0), 32)
        return min(self.backoff * factor, self.backoff_max)


@dataclass
class DeliveryReport:
    """What one run did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    """Failed this time; another attempt is scheduled."""
    failed: int = 0
    """Given up: refused for good, out of attempts, or a reminder for a visit no longer going ahead."""
    deferred: int = 0
    """Claimed but not tried, because the lease ran short; they are taken again when it runs out."""

    def add(self, other: DeliveryReport) -> None:
        self.claimed += other.claimed
        self.sent += other.sent
        self.retrying += other.retrying
        self.failed += other.failed
        self.deferred += other.deferred

    def describe(self) -> str:
        return f"{self.sent} sent, {self.retrying} to retry, {self.failed} failed" + (
            f", {self.deferred} deferred" if self.deferred else ""
        )


@dataclass(frozen=True)
class Claim:
    """A row this worker holds under its lease, with what it needs to write the message."""

    id: int
    channel: NotificationChannel
    address: str | None
    template: str
    language: str
    payload: dict[str, Any]
    attempts: int
    """Counting this one."""
    created_at: datetime
    lease_until: datetime
    facts: MessageFacts = field(default_factory=MessageFacts)


# --- claiming -------------------------------------------------------------------------------------


class _Loader:
    """Loads what messages say beside the row (names, places, the calendar chain), once per batch."""

    def __init__(self, session: Session, domain: str) -> None:
        self.session = session
        self.domain = domain
        self._visits: dict[int, Visit | None] = {}

    def visit(self, visit_id: int | None) -> Visit | None:
        if visit_id is None:
            return None
        if visit_id not in self._visits:
            self._visits[visit_id] = self.session.get(Visit, visit_id)
        return self._visits[visit_id]

    def _chain(self, visit: Visit) -> tuple[int, int]:
        """The first visit of a chain of reschedulings and how many moves led to `visit`: the calendar
        UID is the first one's, so a moved visit updates the event its invitation created."""
        root, generation = visit, 0
        while root.replaces_visit_id is not None and generation < 100:
            earlier = self.visit(root.replaces_visit_id)
            if earlier is None:
                break
            root, generation = earlier, generation + 1
        return root.id, generation

    def facts(self, row: Notification) -> MessageFacts:
        zone: str | None = None
        if row.user_id is not None:
            user = self.session.get(UserAccount, row.user_id)
            zone = user.timezone if user is not None else str(row.payload.get("facility_timezone") or "UTC")
        visit = self.visit(row.visit_id)
        if visit is None:
            return MessageFacts(recipient_timezone=zone)
        resident = self.session.get(Resident, visit.resident_id)
        facility = self.session.get(Facility, visit.facility_id)
        center = self.session.get(LinkCenter, visit.link_center_id) if visit.link_center_id else None
        root_id, generation = self._chain(visit)
        resident_name = (
            " ".join(p for p in (resident.last_name, resident.first_name, resident.middle_name) if p)
            if resident is not None
            else ""
        )
        place = ", ".join(p for p in (center.name, center.address) if p) if center is not None else ""
        return MessageFacts(
            recipient_timezone=zone,
            resident_name=resident_name,
            facility_name=facility.name if facility is not None else "",
            link_center=place if visit.mode is VisitMode.LINK_CENTER else "",
            join_early_minutes=facility.join_early_minutes if facility is not None else 10,
            calendar_uid=f"visit-{root_id}@{self.domain}",
            calendar_generation=generation,
        )

    def phone(self, user_id: int) -> str | None:
        phone = self.session.execute(sa.select(Visitor.phone).where(Visitor.user_id == user_id)).scalar()
        return phone.strip() if phone and phone.strip() else None


def _claim(row: Notification, loader: _Loader, lease_until: datetime) -> Claim:
    return Claim(
        id=row.id,
        channel=row.channel,
        address=row.address,
        template=row.template,
        language=row.language,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
        created_at=row.created_at,
        lease_until=lease_until,
        facts=loader.facts(row),
    )


def claim_due(
    db: Database, now: datetime, policy: DeliveryPolicy, *, mail_from: str, sms: bool = False
) -> tuple[list[Claim], DeliveryReport]:
    """Claim up to a batch of due rows under a lease (see the module's docstring). Station rows are
    delivered on the spot; reminders for visits no longer going ahead are dropped as failed. With `sms`,
    the first claim of a visit email to a visitor with a phone number also writes its text message."""
    report = DeliveryReport()
    claims: list[Claim] = []
    lease_until = now + policy.lease
    with db.write() as session:
        rows = (
            session.execute(
                sa.select(Notification)
                .where(Notification.status == NotificationStatus.PENDING, Notification.next_attempt_at <= now)
                .order_by(Notification.next_attempt_at, Notification.id)
                .limit(policy.batch_size)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        report.claimed = len(rows)
        loader = _Loader(session, mail_domain(mail_from))
        for row in rows:
            if row.attempts >= policy.max_attempts:
                # Its last attempt was claimed and never recorded: the worker died during it.
                row.status = NotificationStatus.FAILED
                row.last_error = f"gave up after {row.attempts} attempts (the last one never finished)"
                report.failed += 1
                continue
            row.attempts += 1
            if row.template in REMINDER_TEMPLATES:
                visit = loader.visit(row.visit_id)
                if visit is None or visit.status not in GOING_AHEAD or visit.ends_at <= now:
                    row.status = NotificationStatus.FAILED
                    row.last_error = "not sent: the visit no longer takes place"
                    report.failed += 1
                    continue
            if row.channel is NotificationChannel.STATION:
                # The station inbox reads the row itself: being claimed is being delivered.
                row.status = NotificationStatus.SENT
                row.sent_at = now
                row.last_error = None
                report.sent += 1
                continue
            row.next_attempt_at = lease_until
            claims.append(_claim(row, loader, lease_until))
            if (
                sms
                and row.channel is NotificationChannel.EMAIL
                and row.attempts == 1
                and row.template in SMS_TEMPLATES
                and row.user_id is not None
            ):
                # Written in the claim's transaction, on the email's first claim only: exactly one
                # text message per email, and none in deployments without a gateway.
                phone = loader.phone(row.user_id)
                if phone is not None:
                    text_row = Notification(
                        channel=NotificationChannel.SMS,
                        user_id=row.user_id,
                        address=phone,
                        template=row.template,
                        language=row.language,
                        payload=dict(row.payload or {}),
                        visit_id=row.visit_id,
                        status=NotificationStatus.PENDING,
                        attempts=1,
                        next_attempt_at=lease_until,
                    )
                    session.add(text_row)
                    session.flush()
                    session.refresh(text_row, ["created_at"])
                    claims.append(_claim(text_row, loader, lease_until))
    return claims, report


# --- recording the outcome ------------------------------------------------------------------------


def mark_sent(db: Database, claim: Claim, now: datetime) -> None:
    """The message went out. Recorded even if the lease ran out meanwhile: it is true either way."""
    with db.write() as session:
        session.execute(
            sa.update(Notification)
            .where(Notification.id == claim.id, Notification.status == NotificationStatus.PENDING)
            .values(status=NotificationStatus.SENT, sent_at=now, last_error=None)
        )


def mark_failed(
    db: Database, claim: Claim, now: datetime, error: DeliveryError, policy: DeliveryPolicy
) -> bool:
    """Record a failed attempt; returns True when the row is now given up (failed for good)."""
    final = error.permanent or claim.attempts >= policy.max_attempts
    values: dict[str, Any] = {"last_error": str(error)[:2000]}
    if final:
        values["status"] = NotificationStatus.FAILED
    else:
        values["next_attempt_at"] = now + policy.backoff_after(claim.attempts)
    with db.write() as session:
        # Only while the row is still ours: if our lease ran out and another worker claimed it again
        # (attempts moved on), the outcome is theirs to record.
        session.execute(
            sa.update(Notification)
            .where(
                Notification.id == claim.id,
                Notification.status == NotificationStatus.PENDING,
                Notification.attempts == claim.attempts,
            )
            .values(**values)
        )
    return final


# --- sending --------------------------------------------------------------------------------------


def _send(
    claim: Claim,
    settings: Settings,
    now: datetime,
    mailer: SmtpMailer,
    sms: SmsGateway | None,
) -> None:
    domain = mail_domain(settings.mail_from)
    if not claim.address:
        raise DeliveryError("no address to send to", permanent=True)
    try:
        rendered = render(
            claim.template,
            claim.language,
            claim.payload,
            claim.facts,
            base_url=settings.base_url,
            stamp=now,
            organizer=sender_address(settings.mail_from),
            attendee=claim.address,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DeliveryError(f"cannot write the message: {exc}", permanent=True) from exc
    if claim.channel is NotificationChannel.EMAIL:
        mailer.send(
            build_email(
                rendered,
                to=claim.address,
                mail_from=settings.mail_from,
                message_id=message_id_for(claim.id, claim.created_at, domain),
                date=now,
            )
        )
    elif claim.channel is NotificationChannel.SMS:
        if sms is None:
            raise DeliveryError("no SMS gateway is configured (OPENVISIT_SMS_GATEWAY)", permanent=True)
        sms.send(claim.address, f"OpenVisit: {rendered.short}", message_id=f"{claim.id}@{domain}", at=now)
    else:  # pragma: no cover - station rows are delivered when claimed
        raise DeliveryError(f"no sender for channel {claim.channel}", permanent=True)


def send_claims(
    db: Database,
    settings: Settings,
    clock: Clock,
    policy: DeliveryPolicy,
    claims: list[Claim],
    *,
    sms: SmsGateway | None = None,
) -> DeliveryReport:
    """Send claimed rows one by one, recording each outcome as soon as it is known."""
    report = DeliveryReport()
    broken: dict[NotificationChannel, DeliveryError] = {}
    with SmtpMailer(settings) as mailer:
        for claim in claims:
            now = clock()
            if now >= claim.lease_until - policy.margin:
                # Another worker may take it once the lease ends; starting now could send it twice.
                report.deferred += 1
                continue
            try:
                if claim.channel in broken:
                    # The channel failed to connect for an earlier row of this batch: the same wait for
                    # the same refusal would only hold up the rest.
                    raise broken[claim.channel]
                _send(claim, settings, now, mailer, sms)
            except DeliveryError as error:
                if error.connection:
                    broken[claim.channel] = error
                if mark_failed(db, claim, clock(), error, policy):
                    report.failed += 1
                else:
                    report.retrying += 1
            else:
                mark_sent(db, claim, clock())
                report.sent += 1
    return report


def deliver(
    db: Database, settings: Settings, clock: Clock, *, sms: SmsGateway | None = None
) -> DeliveryReport:
    """Claim and send batches until nothing more is due (at most `max_batches`)."""
    policy = DeliveryPolicy.from_settings(settings)
    total = DeliveryReport()
    for _batch in range(policy.max_batches):
        claims, report = claim_due(db, clock(), policy, mail_from=settings.mail_from, sms=sms is not None)
        total.add(report)
        if claims:
            total.add(send_claims(db, settings, clock, policy, claims, sms=sms))
        if report.claimed < policy.batch_size:
            break
    return total
