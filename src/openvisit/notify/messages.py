"""An outbox row written out as a message in its reader's language: a subject, a plain-text and an HTML
body, one short line (for a text message and the station inbox), and for bookings and cancellations a
calendar invitation.

A row stores only the template's name and the facts (`services.outbox.visit_payload`); the words are
chosen here, at delivery, from English msgids that the project's catalogs translate, and every time is
shown in the facility's zone and, when it differs, in the reader's own."""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openvisit.domain.errors import N_
from openvisit.domain.live import FAILURE_REASONS, TERMINATION_REASONS
from openvisit.domain.scheduling import CANCELLATION_REASONS, REJECTION_REASONS
from openvisit.domain.vetting import LINK_CANCELLATION_REASONS, LINK_REJECTION_REASONS
from openvisit.i18n import DEFAULT_LANGUAGE, LANGUAGES, format_when, same_offset, translate
from openvisit.notify.ics import CalendarEvent, Method, calendar

VISIT_TEMPLATES = frozenset(
    {
        "visit_booked",
        "visit_requested",
        "visit_approved",
        "visit_cancelled",
        "visit_rejected",
        "visit_reminder_24h",
        "visit_reminder_15m",
        "visit_failed",
    }
)
"""Templates about one visit; their payload is `services.outbox.visit_payload`."""

INVITING_TEMPLATES = frozenset({"visit_booked", "visit_approved"})
"""Templates that carry a calendar invitation (METHOD:REQUEST): the visit is now certain."""

CANCELLING_TEMPLATES = frozenset({"visit_cancelled"})
"""Templates that withdraw the invitation (METHOD:CANCEL)."""

WITHDRAWING_TEMPLATES = frozenset({"visit_requested", "visit_rejected"})
"""Templates that withdraw the invitation of the visit's *earlier* time, when the visit was moved: a
moved visit that waits for a clerk, or that the clerk rejected, no longer holds the old time."""

# Each visit template: the subject (its %(when)s in the reader's zone), the opening sentence for a
# visitor (%(resident)s is the person they visit) and the one for the resident at the station.
_SUBJECTS: dict[str, str] = {
    "visit_booked": N_("Visit booked: %(when)s"),
    "visit_requested": N_("Visit requested: %(when)s"),
    "visit_approved": N_("Visit approved: %(when)s"),
    "visit_cancelled": N_("Visit cancelled: %(when)s"),
    "visit_rejected": N_("Visit request rejected: %(when)s"),
    "visit_reminder_24h": N_("Reminder: visit on %(when)s"),
    "visit_reminder_15m": N_("Your visit starts soon: %(when)s"),
    "visit_failed": N_("Visit cut short: %(when)s"),
}
_TO_VISITOR: dict[str, str] = {
    "visit_booked": N_("Your visit with %(resident)s is booked."),
    "visit_requested": N_(
        "Your request to visit %(resident)s has been received. Staff will review it, and we will write "
        "to you when they decide."
    ),
    "visit_approved": N_("Your visit with %(resident)s is approved."),
    "visit_cancelled": N_("Your visit with %(resident)s has been cancelled."),
    "visit_rejected": N_("Your request to visit %(resident)s was not approved."),
    "visit_reminder_24h": N_("A reminder: you have a visit with %(resident)s."),
    "visit_reminder_15m": N_(
        "Your visit with %(resident)s starts soon. You can join from %(minutes)s minutes before the start."
    ),
    "visit_failed": N_(
        "Your visit with %(resident)s was cut short by a problem on our side. It does not count toward the "
        "visits allowed, and you may book a new time with priority."
    ),
}
_TO_RESIDENT: dict[str, str] = {
    "visit_booked": N_("A visit has been booked for you."),
    "visit_requested": N_("A visit has been requested for you. Staff will review it."),
    "visit_approved": N_("A visit for you has been approved."),
    "visit_cancelled": N_("A visit for you has been cancelled."),
    "visit_rejected": N_("A visit request for you was not approved."),
    "visit_reminder_24h": N_("A reminder: you have a visit."),
    "visit_reminder_15m": N_("Your visit starts soon. Please come to the station."),
    "visit_failed": N_("A visit was cut short by a technical problem. It does not count toward your visits."),
}

_SOMEONE = N_("the person you visit")
_SOCIAL = N_("Visit")
_LEGAL = N_("Legal visit")
_SOCIAL_NOTICE = N_("This visit is monitored and recorded.")
_LEGAL_NOTICE = N_("This is a privileged legal visit: it is never recorded and never watched.")
_AT_HOME = N_("From home, in your browser")
_AT_CENTER = N_("At the link center: %(place)s")
_SUMMARY_SOCIAL = N_("Visit with %(resident)s")
_SUMMARY_LEGAL = N_("Legal visit with %(resident)s")
_REBOOK = N_(
    "The person you visit has moved to another facility on OpenVisit; you can book a new visit there."
)
_CALENDAR_HINT = N_("The attached invitation adds the visit to your calendar.")
_CALENDAR_CANCEL_HINT = N_("The attached cancellation removes the visit from your calendar.")
_CALENDAR_EARLIER_HINT = N_(
    "The attached cancellation removes the earlier time of this visit from your calendar."
)
_YOUR_VISITS = N_("Your visits")
_BOOK_AGAIN = N_("Book a new time")
_SIGNATURE = N_("OpenVisit: visits to people in prison")
_MINUTES = N_("%(minutes)s minutes")
_REASON_LINE = N_("%(subject)s. Reason: %(reason)s")

_ROW_WHEN = N_("When")
_ROW_YOUR_TIME = N_("Your time")
_ROW_LENGTH = N_("Length")
_ROW_KIND = N_("Kind")
_ROW_WHERE = N_("Where")
_ROW_FACILITY = N_("Facility")
_ROW_REASON = N_("Reason")
_ROW_NOTE = N_("Note")

# Templates written by the account and vetting use cases (services/registry.py, services/vetting.py):
# (subject, opening sentence, the payload key holding the link, or a path on the site). %(resident)s is
# the payload's resident_name. A template unknown here gets a short generic message that sends the
# reader to the site, rather than nothing.
_GENERIC_SUBJECT = N_("News from OpenVisit")
_GENERIC_BODY = N_("There is news about your OpenVisit account. Please log in to read it.")
_ACCOUNT: dict[str, tuple[str, str, str]] = {
    "confirm_email": (
        N_("Confirm your email address"),
        N_("Please confirm your email address for OpenVisit by opening this link:"),
        "url",
    ),
    "password_reset": (
        N_("Reset your OpenVisit password"),
        N_(
            "Someone asked to reset the password of your OpenVisit account. If it was you, open this "
            "link to choose a new one; if not, you can ignore this message:"
        ),
        "url",
    ),
    "account_exists": (
        N_("You already have an OpenVisit account"),
        N_(
            "Someone tried to register a new OpenVisit account with your email address, which already "
            "has one. If it was you, log in here (you can reset your password there):"
        ),
        "login_url",
    ),
    "link_approved": (
        N_("You may now visit %(resident)s"),
        N_("Staff approved your request to visit %(resident)s. You can book visits now."),
        "/visits/book",
    ),
    "link_rejected": (
        N_("Your request to visit %(resident)s was not approved"),
        N_("Staff did not approve your request to visit %(resident)s."),
        "/",
    ),
    "link_suspended": (
        N_("Your visits with %(resident)s are suspended"),
        N_("Staff suspended your visits with %(resident)s. Visits already booked with them are cancelled."),
        "/",
    ),
    "link_revoked": (
        N_("You may no longer visit %(resident)s"),
        N_(
            "Staff withdrew your approval to visit %(resident)s. Visits already booked with them are "
            "cancelled."
        ),
        "/",
    ),
    "visitor_restricted": (
        N_("Your visits are restricted"),
        N_("Staff have stopped your visits for now. Visits already booked in that time are cancelled."),
        "/",
    ),
    "attorney_verified": (
        N_("You are verified as an attorney"),
        N_(
            "Staff verified you as an attorney. Your visits with your clients are privileged: they are "
            "never recorded and never watched."
        ),
        "/",
    ),
    "attorney_rejected": (
        N_("Your attorney details could not be verified"),
        N_("Staff could not verify you as an attorney. You can still visit as a private person."),
        "/",
    ),
}
_UNTIL = N_("Until")
_UNTIL_FURTHER_NOTICE = N_("until further notice")


@dataclass(frozen=True)
class MessageFacts:
    """What the worker loads beside the row to write the message (all optional: a visit may be gone)."""

    recipient_timezone: str | None = None
    """The reader's zone; None for the resident at a station, who lives in the facility's."""
    resident_name: str = ""
    facility_name: str = ""
    link_center: str = ""
    """The link center's name and address, for a link-center visit."""
    join_early_minutes: int = 10
    calendar_uid: str = ""
    """Stays the same across a booking, its rescheduling and its cancellation."""
    calendar_generation: int = 0
    """How many times the visit was moved (rescheduled) to become this one. Generation g invites with
    SEQUENCE 2g and cancels with 2g + 1, so every later message outranks every earlier one."""


@dataclass(frozen=True)
class Rendered:
    """A message ready for any channel."""

    subject: str
    text: str
    html: str
    short: str
    calendar: str | None = None
    calendar_method: Method | None = None
    language: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class _Body:
    lead: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    link: tuple[str, str] | None = None
    where: str = ""


def reason_label(code: str | None) -> str:
    """The English label (msgid) of a reason code; the code itself when it is none of the presets (a
    restriction's reason is free text that staff wrote)."""
    if not code:
        return ""
    for labels in (
        CANCELLATION_REASONS,
        REJECTION_REASONS,
        LINK_CANCELLATION_REASONS,
        LINK_REJECTION_REASONS,
        TERMINATION_REASONS,
        FAILURE_REASONS,
    ):
        if code in labels:
            return labels[code]
    return code


def _moment(payload: Mapping[str, Any], key: str) -> datetime | None:
    value = payload.get(key)
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _language(language: str) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def _visit_body(
    template: str, language: str, payload: Mapping[str, Any], facts: MessageFacts, base_url: str
) -> tuple[str, _Body, str]:
    def t(msgid: str, **params: Any) -> str:
        return translate(language, msgid, params or None)

    starts_at = _moment(payload, "starts_at")
    ends_at = _moment(payload, "ends_at")
    if starts_at is None:
        raise ValueError("the payload has no valid starts_at")
    facility_tz = str(payload.get("facility_timezone") or "UTC")
    reader_tz = facts.recipient_timezone or facility_tz
    at_station = facts.recipient_timezone is None
    resident = facts.resident_name or t(_SOMEONE)
    subject = t(_SUBJECTS[template], when=format_when(starts_at, language, reader_tz))
    lead = t(
        (_TO_RESIDENT if at_station else _TO_VISITOR)[template],
        resident=resident,
        minutes=facts.join_early_minutes,
    )
    legal = payload.get("kind") == "legal"
    rows = [(t(_ROW_WHEN), format_when(starts_at, language, facility_tz))]
    if not same_offset(starts_at, facility_tz, reader_tz):
        rows.append((t(_ROW_YOUR_TIME), format_when(starts_at, language, reader_tz)))
    if ends_at is not None and ends_at > starts_at:
        rows.append((t(_ROW_LENGTH), t(_MINUTES, minutes=int((ends_at - starts_at).total_seconds() // 60))))
    rows.append((t(_ROW_KIND), t(_LEGAL if legal else _SOCIAL)))
    where = ""
    if not at_station:
        where = (
            t(_AT_CENTER, place=facts.link_center) if payload.get("mode") == "link_center" else t(_AT_HOME)
        )
        rows.append((t(_ROW_WHERE), where))
        if facts.facility_name:
            rows.append((t(_ROW_FACILITY), facts.facility_name))
    reason = ""
    if template in ("visit_cancelled", "visit_rejected", "visit_failed"):
        reason = t(reason_label(str(payload.get("reason") or "other")))
        rows.append((t(_ROW_REASON), reason))
    note = str(payload.get("note") or "").strip()[:1000]
    if note:
        rows.append((t(_ROW_NOTE), note))
    paragraphs: list[str] = []
    if template not in ("visit_cancelled", "visit_rejected", "visit_failed"):
        paragraphs.append(t(_LEGAL_NOTICE if legal else _SOCIAL_NOTICE))
    if payload.get("rebook_facility_id") and not at_station:
        paragraphs.append(t(_REBOOK))
    if not at_station and template in INVITING_TEMPLATES:
        paragraphs.append(t(_CALENDAR_HINT))
    if not at_station and template in CANCELLING_TEMPLATES:
        paragraphs.append(t(_CALENDAR_CANCEL_HINT))
    if not at_station and template in WITHDRAWING_TEMPLATES and facts.calendar_generation > 0:
        paragraphs.append(t(_CALENDAR_EARLIER_HINT))
    link = None if at_station else (t(_YOUR_VISITS), f"{base_url.rstrip('/')}/visits")
    rebook = payload.get("rebook_path")
    if template == "visit_failed" and not at_station and isinstance(rebook, str) and rebook.startswith("/"):
        link = (t(_BOOK_AGAIN), f"{base_url.rstrip('/')}{rebook}")
    short = t(_REASON_LINE, subject=subject, reason=reason) if reason else subject
    return subject, _Body(lead, rows, paragraphs, link, where), short


def _account_body(
    template: str, language: str, payload: Mapping[str, Any], facts: MessageFacts, base_url: str
) -> tuple[str, _Body, str]:
    base = base_url.rstrip("/")
    spec = _ACCOUNT.get(template)
    if spec is None:
        subject = translate(language, _GENERIC_SUBJECT)
        return subject, _Body(translate(language, _GENERIC_BODY), link=(base + "/", base + "/")), subject
    subject_id, lead_id, link = spec
    params = {"resident": str(payload.get("resident_name") or translate(language, _SOMEONE))}
    subject = translate(language, subject_id, params)
    rows: list[tuple[str, str]] = []
    if template == "visitor_restricted":
        ends_at = _moment(payload, "ends_at")
        until = (
            format_when(ends_at, language, facts.recipient_timezone or "UTC")
            if ends_at is not None
            else translate(language, _UNTIL_FURTHER_NOTICE)
        )
        rows.append((translate(language, _UNTIL), until))
    if payload.get("reason"):
        rows.append(
            (translate(language, _ROW_REASON), translate(language, reason_label(str(payload["reason"]))))
        )
    note = str(payload.get("note") or "").strip()[:1000]
    if note:
        rows.append((translate(language, _ROW_NOTE), note))
    url = base + link if link.startswith("/") else str(payload.get(link) or base + "/")
    return subject, _Body(translate(language, lead_id, params), rows, link=(url, url)), subject


def _text(body: _Body, signature: str) -> str:
    parts = [body.lead]
    if body.rows:
        parts.append("\n".join(f"{label}: {value}" for label, value in body.rows))
    parts.extend(body.paragraphs)
    if body.link is not None:
        label, url = body.link
        parts.append(url if label == url else f"{label}: {url}")
    parts.append(f"-- \n{signature}")
    return "\n\n".join(parts) + "\n"


def _html(body: _Body, subject: str, signature: str, language: str) -> str:
    e = html.escape
    rows = "".join(
        f'<tr><th style="text-align:left;padding:2px 12px 2px 0;vertical-align:top">{e(label)}</th>'
        f"<td>{e(value)}</td></tr>"
        for label, value in body.rows
    )
    parts = [f"<p>{e(body.lead)}</p>"]
    if rows:
        parts.append(f"<table>{rows}</table>")
    parts.extend(f"<p>{e(p)}</p>" for p in body.paragraphs)
    if body.link is not None:
        label, url = body.link
        parts.append(f'<p><a href="{e(url)}">{e(label)}</a></p>')
    parts.append(f'<p style="color:#666">{e(signature)}</p>')
    return (
        f'<!DOCTYPE html>\n<html lang="{e(language)}"><head><meta charset="utf-8">'
        f"<title>{e(subject)}</title></head>\n<body>{''.join(parts)}</body></html>\n"
    )


def _invitation(
    template: str,
    language: str,
    payload: Mapping[str, Any],
    facts: MessageFacts,
    body: _Body,
    *,
    base_url: str,
    organizer: tuple[str, str],
    attendee: str,
    stamp: datetime,
) -> tuple[str, Method] | None:
    generation = facts.calendar_generation
    method: Method
    if template in INVITING_TEMPLATES:
        method, sequence = "REQUEST", 2 * generation
    elif template in CANCELLING_TEMPLATES:
        method, sequence = "CANCEL", 2 * generation + 1
    elif template in WITHDRAWING_TEMPLATES and generation > 0:
        # The earlier time's invitation had SEQUENCE 2(g - 1); this cancels it before the new time
        # (2g) is invited, if it ever is.
        method, sequence = "CANCEL", 2 * generation - 1
    else:
        return None
    starts_at, ends_at = _moment(payload, "starts_at"), _moment(payload, "ends_at")
    if starts_at is None or ends_at is None or not facts.calendar_uid:
        return None
    resident = facts.resident_name or translate(language, _SOMEONE)
    # The msgid is chosen first: a literal inside translate()'s arguments would be extracted as one.
    summary_id = _SUMMARY_LEGAL if payload.get("kind") == "legal" else _SUMMARY_SOCIAL
    summary = translate(language, summary_id, {"resident": resident})
    description = "\n".join(
        [body.lead, *(f"{label}: {value}" for label, value in body.rows), *body.paragraphs]
    )
    event = CalendarEvent(
        uid=facts.calendar_uid,
        sequence=sequence,
        starts_at=starts_at,
        ends_at=ends_at,
        summary=summary,
        description=description,
        location=body.where,
        url=f"{base_url.rstrip('/')}/visits",
        organizer_name=organizer[0],
        organizer_email=organizer[1],
        attendee_email=attendee,
    )
    return calendar(event, method, stamp), method


def render(
    template: str,
    language: str,
    payload: Mapping[str, Any],
    facts: MessageFacts,
    *,
    base_url: str,
    stamp: datetime | None = None,
    organizer: tuple[str, str] = ("OpenVisit", ""),
    attendee: str = "",
) -> Rendered:
    """The message of one outbox row in `language` (English when it is not one we speak), with a
    calendar invitation (DTSTAMP `stamp`) when the template has one and `stamp` is given. Raises
    ValueError when a visit template's payload lacks its start (nothing sensible can be written)."""
    language = _language(language)
    signature = translate(language, _SIGNATURE)
    if template in VISIT_TEMPLATES:
        subject, body, short = _visit_body(template, language, payload, facts, base_url)
        invitation = (
            _invitation(
                template,
                language,
                payload,
                facts,
                body,
                base_url=base_url,
                organizer=organizer,
                attendee=attendee,
                stamp=stamp,
            )
            if stamp is not None
            else None
        )
    else:
        subject, body, short = _account_body(template, language, payload, facts, base_url)
        invitation = None
    return Rendered(
        subject=subject,
        text=_text(body, signature),
        html=_html(body, subject, signature, language),
        short=short,
        calendar=invitation[0] if invitation else None,
        calendar_method=invitation[1] if invitation else None,
        language=language,
    )


def inbox_line(template: str, language: str, payload: Mapping[str, Any]) -> str:
    """One line for the resident's station inbox, its time in the facility's zone (the resident's own);
    the template's name when the payload is damaged, never an error."""
    try:
        return render(template, language, payload, MessageFacts(), base_url="").short
    except ValueError:
        return template
