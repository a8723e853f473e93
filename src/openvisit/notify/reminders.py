"""When a visit's reminders are due: one a day before, one a quarter of an hour before.

Each reminder has its own window, ending where the next begins, so a visit gets at most one of them at
a time, and a reminder whose window has passed (the server was down, or the visit was booked later) is
never sent late: the next one takes over."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Reminder:
    template: str
    before: timedelta
    """Due from this long before the start..."""
    until: timedelta
    """...until this long before the start."""

    def due(self, starts_at: datetime, now: datetime) -> bool:
        return starts_at - self.before <= now < starts_at - self.until


REMINDERS: tuple[Reminder, ...] = (
    Reminder("visit_reminder_24h", timedelta(hours=24), timedelta(minutes=15)),
    Reminder("visit_reminder_15m", timedelta(minutes=15), timedelta(0)),
)
REMINDER_TEMPLATES = frozenset(r.template for r in REMINDERS)
HORIZON = max(r.before for r in REMINDERS)
"""How far ahead a visit can need a reminder."""


def due_reminder(starts_at: datetime, now: datetime) -> str | None:
    """The template of the reminder due for a visit starting at `starts_at`, if any."""
    for reminder in REMINDERS:
        if reminder.due(starts_at, now):
            return reminder.template
    return None
