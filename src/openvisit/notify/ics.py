"""Calendar invitations (iCalendar, RFC 5545, with the iTIP methods of RFC 5546): one VEVENT with times
in UTC, so no VTIMEZONE is needed and every calendar shows the visit in its owner's own zone.

A booking is sent as METHOD:REQUEST, a cancellation as METHOD:CANCEL with the same UID and a higher
SEQUENCE, so the calendar that holds the invitation removes the event instead of adding a second one."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

PRODID = "-//OpenVisit//Notifications//EN"
MAX_LINE_OCTETS = 75
"""RFC 5545 §3.1: content lines SHOULD NOT be longer than 75 octets, excluding the line break."""

Method = Literal["REQUEST", "CANCEL"]


@dataclass(frozen=True)
class CalendarEvent:
    """One visit as a calendar sees it."""

    uid: str
    sequence: int
    starts_at: datetime
    ends_at: datetime
    summary: str
    description: str = ""
    location: str = ""
    url: str = ""
    organizer_email: str = ""
    organizer_name: str = ""
    attendee_email: str = ""


def utc_stamp(value: datetime) -> str:
    """A DATE-TIME in UTC form: 20260304T090000Z (an aware datetime is required)."""
    if value.tzinfo is None:
        raise ValueError("calendar times must be aware")
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and line breaks escaped."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def _param(value: str) -> str:
    # A parameter value may not hold DQUOTE at all; quoting it allows ':', ';' and ','.
    return '"' + value.replace('"', "'").replace("\r", " ").replace("\n", " ") + '"'


def fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets, joined by CRLF and a space, never
    splitting a UTF-8 sequence (RFC 5545 §3.1)."""
    pieces: list[str] = []
    current = ""
    size = 0
    limit = MAX_LINE_OCTETS
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            pieces.append(current)
            # A continuation line starts with the space that folding inserts, which counts too.
            current, size, limit = char, width, MAX_LINE_OCTETS - 1
        else:
            current += char
            size += width
    pieces.append(current)
    return "\r\n ".join(pieces)


def _lines(event: CalendarEvent, method: Method, stamp: datetime) -> Iterator[str]:
    yield "BEGIN:VCALENDAR"
    yield f"PRODID:{PRODID}"
    yield "VERSION:2.0"
    yield "CALSCALE:GREGORIAN"
    yield f"METHOD:{method}"
    yield "BEGIN:VEVENT"
    yield f"UID:{escape_text(event.uid)}"
    yield f"DTSTAMP:{utc_stamp(stamp)}"
    yield f"DTSTART:{utc_stamp(event.starts_at)}"
    yield f"DTEND:{utc_stamp(event.ends_at)}"
    yield f"SEQUENCE:{event.sequence}"
    yield f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}"
    yield f"SUMMARY:{escape_text(event.summary)}"
    if event.description:
        yield f"DESCRIPTION:{escape_text(event.description)}"
    if event.location:
        yield f"LOCATION:{escape_text(event.location)}"
    if event.url:
        yield f"URL:{event.url}"
    if event.organizer_email:
        # iTIP (RFC 5546 §3.2.2, §3.2.5) requires the organizer on REQUEST and CANCEL.
        name = f";CN={_param(event.organizer_name)}" if event.organizer_name else ""
        yield f"ORGANIZER{name}:mailto:{event.organizer_email}"
    if event.attendee_email:
        # RSVP=FALSE: the visit is already decided; replies would go to a no-reply address.
        yield (
            "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;RSVP=FALSE"
            f":mailto:{event.attendee_email}"
        )
    yield "TRANSP:OPAQUE"
    yield "END:VEVENT"
    yield "END:VCALENDAR"


def calendar(event: CalendarEvent, method: Method, stamp: datetime) -> str:
    """The whole iCalendar object: folded content lines, each ended by CRLF."""
    return "".join(fold(line) + "\r\n" for line in _lines(event, method, stamp))
