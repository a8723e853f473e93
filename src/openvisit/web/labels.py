"""Human names for the domain's stored values, as English msgids the catalogs translate; and the
sentences and short times that pages build from them in the reader's language."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from babel.dates import format_date, format_time, get_timezone_location

from openvisit.domain.errors import N_
from openvisit.notify.messages import reason_label as reason_label  # one renderer of reasons
from openvisit.web.i18n import zone

LABELS: dict[str, str] = {
    # roles
    "link_operator": N_("Link-center operator"),
    "vetting_clerk": N_("Vetting clerk"),
    "scheduler": N_("Scheduler"),
    "monitoring_officer": N_("Monitoring officer"),
    "investigator": N_("Investigator"),
    "facility_admin": N_("Facility admin"),
    "system_admin": N_("System admin"),
    # visit kinds and modes
    "social": N_("Social visit"),
    "legal": N_("Legal visit (privileged)"),
    "home": N_("From home"),
    "link_center": N_("At a link center"),
    # visit statuses
    "held": N_("Held"),
    "requested": N_("Awaiting approval"),
    "approved": N_("Approved"),
    "in_progress": N_("In progress"),
    "completed": N_("Completed"),
    "cancelled": N_("Cancelled"),
    "rejected": N_("Rejected"),
    "terminated": N_("Terminated"),
    "failed": N_("Failed"),
    # connection statuses
    "suspended": N_("Suspended"),
    "revoked": N_("Revoked"),
    # resident statuses
    "active": N_("Active"),
    "transferred": N_("Transferred"),
    "released": N_("Released"),
    # blocked periods
    "blocked": N_("Blocked period"),
    "lockdown": N_("Lockdown"),
    # who may book a session template
    "public": N_("Visitors and staff"),
    "staff": N_("Staff only"),
    # stations
    "unit_kiosk": N_("Unit kiosk"),
    "visiting_room": N_("Visiting room"),
    "link_booth": N_("Link-center booth"),
    "in_service": N_("In service"),
    "out_of_order": N_("Out of order"),
    "retired": N_("Retired"),
    # people in a visit
    "lead": N_("Lead visitor"),
    "visitor": N_("Visitor"),
    "dependent": N_("Child"),
    # a visitor's relationship to the resident
    "spouse": N_("Husband or wife"),
    "partner": N_("Partner"),
    "parent": N_("Parent"),
    "child": N_("Child"),
    "sibling": N_("Brother or sister"),
    "grandparent": N_("Grandparent"),
    "relative": N_("Other relative"),
    "friend": N_("Friend"),
    "attorney": N_("Attorney"),
    "other": N_("Other"),
    # identity verification (of visitors and of attorneys' licences)
    "unverified": N_("Not checked yet"),
    "pending": N_("Waiting for staff to check"),
    "verified": N_("Verified"),
    # identity documents
    "id_front": N_("ID document, front"),
    "id_back": N_("ID document, back"),
    "selfie": N_("Selfie"),
    "bar_card": N_("Bar or licence card"),
    # restrictions of visitors
    "ban": N_("Ban"),
    "suspension": N_("Suspension"),
}


def label_of(value: object) -> str:
    """The English label of an enum or stored value (itself when none is defined)."""
    key = str(getattr(value, "value", value))
    return LABELS.get(key, key)


# --- short times, for grids of times and calendars ---------------------------------------------------


def clock(value: datetime, language: str, tz: str) -> str:
    """The wall-clock time of a moment in `tz`: "16:00"."""
    return format_time(value.astimezone(zone(tz)), format="HH:mm", locale=language)


def short_day(value: datetime, language: str, tz: str) -> str:
    """The local date of a moment in `tz`, short: "Mar 4"."""
    return format_date(value.astimezone(zone(tz)).date(), format="d MMM", locale=language)


def zone_label(value: datetime, language: str, tz: str) -> str:
    """The zone in force at a moment, as people say it: "Krasnoyarsk, UTC+7" (the same words as the
    dates written by i18n.format_when)."""
    zone_info = zone(tz)
    delta = zone_info.utcoffset(value)
    minutes = int(delta.total_seconds() // 60) if delta is not None else 0
    hours, rest = divmod(abs(minutes), 60)
    offset = f"UTC{'+' if minutes >= 0 else '−'}{hours}" + (f":{rest:02d}" if rest else "")
    place = get_timezone_location(zone_info, locale=language, return_city=True)
    return offset if place in (offset, "UTC") else f"{place}, {offset}"


def long_day(day: date, language: str) -> str:
    """A day as a heading in the locale's own order: "Wednesday, March 4, 2026" (capitalised, as a
    heading starts: Russian writes weekdays in lower case)."""
    text = format_date(day, format="full", locale=language)
    return text[:1].upper() + text[1:]


def medium_date(day: date, language: str) -> str:
    """A date in the reader's way of writing it: "Mar 4, 2026", "4 мар. 2026 г."."""
    return format_date(day, format="medium", locale=language)


def weekday_name(weekday: int, language: str) -> str:
    """The name of a weekday (Monday is 0) in `language`, capitalised for a table cell."""
    text = format_date(date(2024, 1, 1) + timedelta(days=weekday), format="EEEE", locale=language)
    return text[:1].upper() + text[1:]
