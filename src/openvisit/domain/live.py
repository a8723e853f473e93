"""The rules of a visit while it happens, as pure functions over plain values: the join window, who may
join in which status, the countdown, how a visit ends (completed, terminated by an officer, failed by the
system) and what each ending means for the visitor: a suspension, or the allowance back and a priority
re-booking. Times in and out are aware UTC datetimes; nothing here reads a clock."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from openvisit.domain.enums import VisitKind, VisitStatus
from openvisit.domain.errors import N_, Conflict, InvalidInput

JOINABLE_STATUSES: frozenset[VisitStatus] = frozenset({VisitStatus.APPROVED, VisitStatus.IN_PROGRESS})
"""A visit may be joined while approved (the first join starts it) or in progress (a rejoin). Held,
requested, cancelled, rejected, completed, terminated and failed visits never."""

COUNTDOWN_MINUTES: tuple[int, ...] = (5, 1)
"""Minutes before the end at which both sides are told how long is left."""

IMMINENT = timedelta(minutes=30)
"""How far ahead the monitoring wall shows approved visits that have not started yet."""

STATION_LOSS_GRACE = timedelta(minutes=1)
"""A resident side lost for less than this before the end is not called a station failure: the visit
was as good as over."""

WARNING_MAX_CHARS = 500
NOTE_MAX_CHARS = 2000


class Outcome(StrEnum):
    """How a visit ended, as both sides and the monitors are told (`ended.outcome`)."""

    COMPLETED = "completed"
    TERMINATED = "terminated"
    FAILED = "failed"


class TerminationReason(StrEnum):
    """Why a monitoring officer ended a visit."""

    THIRD_PARTY = "third_party"
    RECORDING_DEVICE = "recording_device"
    CONDUCT = "conduct"
    UNAPPROVED_VISITOR = "unapproved_visitor"
    SECURITY = "security"
    TECHNICAL = "technical"


class FailureReason(StrEnum):
    """Why the system cut a visit short. None of them is the visitor's doing."""

    TECHNICAL = "technical"
    SERVER_RESTART = "server_restart"
    STATION_FAILURE = "station_failure"


TERMINATION_REASONS: dict[str, str] = {
    TerminationReason.THIRD_PARTY: N_("A third person on screen"),
    TerminationReason.RECORDING_DEVICE: N_("A recording device"),
    TerminationReason.CONDUCT: N_("Conduct"),
    TerminationReason.UNAPPROVED_VISITOR: N_("A visitor who was not approved"),
    TerminationReason.SECURITY: N_("Security"),
    TerminationReason.TECHNICAL: N_("Technical problem"),
}
"""The reasons an officer picks from when ending a visit, with their labels."""

FAILURE_REASONS: dict[str, str] = {
    FailureReason.TECHNICAL: N_("Technical problem"),
    FailureReason.SERVER_RESTART: N_("The video service restarted"),
    FailureReason.STATION_FAILURE: N_("The station failed"),
}
"""Why a visit failed; the visitor gets the allowance back and a priority re-booking."""

CONDUCT_REASONS: frozenset[TerminationReason] = frozenset(
    {
        TerminationReason.THIRD_PARTY,
        TerminationReason.RECORDING_DEVICE,
        TerminationReason.CONDUCT,
        TerminationReason.UNAPPROVED_VISITOR,
    }
)
"""Terminations for what the visiting party did: each counts toward the escalating suspension of the
lead visitor (7, then 30, then 90 days). A security termination (an incident in the facility) ends the
visit without blaming the visitor; a technical one is the system's failure."""


class Notice(StrEnum):
    """What the join page and the welcome say about privacy."""

    MONITORED_RECORDED = "monitored_recorded"
    PRIVILEGED = "privileged"


@dataclass(frozen=True)
class Ending:
    """What ending a visit in a given way does."""

    status: VisitStatus
    outcome: Outcome
    reason: str
    suspends_visitor: bool = False
    """The lead visitor is suspended (the escalation of vetting.next_suspension)."""
    credits_allowance: bool = False
    """The visit stops counting toward the resident's allowance."""
    priority_rebooking: bool = False
    """The visitor is offered a new time with priority."""


def notice_for(kind: VisitKind) -> Notice:
    """A social visit is monitored and recorded; a legal one is privileged."""
    return Notice.PRIVILEGED if kind is VisitKind.LEGAL else Notice.MONITORED_RECORDED


def join_window(starts_at: datetime, ends_at: datetime, early_minutes: int) -> tuple[datetime, datetime]:
    """From `early_minutes` before the start until the scheduled end (a late join gets no extension)."""
    return starts_at - timedelta(minutes=early_minutes), ends_at


def check_join(
    status: VisitStatus, starts_at: datetime, ends_at: datetime, now: datetime, early_minutes: int
) -> None:
    """Refuse a join in a status that cannot be joined, or outside the join window."""
    if status not in JOINABLE_STATUSES:
        raise Conflict("live.not_joinable", N_("This visit cannot be joined."))
    opens_at, closes_at = join_window(starts_at, ends_at, early_minutes)
    if now < opens_at:
        raise Conflict(
            "live.too_early",
            N_("It is too early to join. You can join from %(minutes)s minutes before the start."),
            params={"minutes": early_minutes},
        )
    if now >= closes_at:
        raise Conflict("live.over", N_("This visit is over."))


def countdown_marks(ends_at: datetime, now: datetime) -> list[tuple[int, datetime]]:
    """The countdown warnings still ahead at `now`, soonest first: (minutes left, when to say it). A mark
    already passed is not said late."""
    marks = [(minutes, ends_at - timedelta(minutes=minutes)) for minutes in COUNTDOWN_MINUTES]
    return sorted(((m, at) for m, at in marks if at > now), key=lambda mark: mark[1])


def minutes_left(ends_at: datetime, now: datetime) -> int:
    """Whole minutes until the end, rounded up (0 once it is over)."""
    seconds = (ends_at - now).total_seconds()
    return 0 if seconds <= 0 else int(-(-seconds // 60))


def check_termination_reason(reason: str | None) -> TerminationReason:
    """One of the preset termination reasons, or a clear error."""
    try:
        return TerminationReason(reason or "")
    except ValueError:
        raise InvalidInput(
            "live.invalid_reason", N_("Please choose one of the listed reasons."), field="reason"
        ) from None


def termination_ending(reason: TerminationReason) -> Ending:
    """An officer's termination: a technical one is the system failing (the visit is FAILED, the
    allowance returns, priority re-booking); every other one is TERMINATED, and those for the party's
    conduct suspend the lead visitor."""
    if reason is TerminationReason.TECHNICAL:
        return failure_ending(FailureReason.TECHNICAL)
    return Ending(
        status=VisitStatus.TERMINATED,
        outcome=Outcome.TERMINATED,
        reason=reason.value,
        suspends_visitor=reason in CONDUCT_REASONS,
    )


def failure_ending(reason: FailureReason) -> Ending:
    """The system cut the visit short: it is FAILED, the allowance returns and the visitor is offered a
    priority re-booking."""
    return Ending(
        status=VisitStatus.FAILED,
        outcome=Outcome.FAILED,
        reason=reason.value,
        credits_allowance=True,
        priority_rebooking=True,
    )


COMPLETED = Ending(status=VisitStatus.COMPLETED, outcome=Outcome.COMPLETED, reason="completed")


@dataclass(frozen=True)
class SideMoment:
    """One thing that happened to the resident's side: it connected, left on purpose, or was lost."""

    at: datetime
    what: str  # "joined", "left" or "lost"


def end_at_schedule(resident_moments: Iterable[SideMoment], ends_at: datetime) -> Ending:
    """How a visit still running at its scheduled end ends. It completes, unless the resident's station
    was lost (the socket or the media died without the resident leaving) and did not come back before the
    end, with more than STATION_LOSS_GRACE still to go when it was lost: then the station failed, which is
    not the visitor's fault."""
    ordered: Sequence[SideMoment] = sorted(resident_moments, key=lambda m: m.at)
    if not ordered:
        return COMPLETED
    last = ordered[-1]
    if last.what == "lost" and ends_at - last.at > STATION_LOSS_GRACE:
        return failure_ending(FailureReason.STATION_FAILURE)
    return COMPLETED


def recovery_ending(ends_at: datetime, now: datetime) -> Ending | None:
    """After a restart, a visit left in progress: once its end has passed it failed (the restart cut it
    and nobody could come back); with time left it stays open for the sides to rejoin (None)."""
    return failure_ending(FailureReason.SERVER_RESTART) if ends_at <= now else None


def end_of_recovered(rejoined: bool) -> Ending | None:
    """A visit recovered open after a restart that reaches its end: when nobody came back it failed
    because of the restart; when a side rejoined it ends by the usual rule (None)."""
    return None if rejoined else failure_ending(FailureReason.SERVER_RESTART)


def check_warning(text: str | None) -> str:
    """An officer's warning: one line of visible text, at most WARNING_MAX_CHARS."""
    cleaned = " ".join((text or "").split())
    if not cleaned or len(cleaned) > WARNING_MAX_CHARS:
        raise InvalidInput(
            "live.invalid_warning",
            N_("Write a warning of at most %(max)s characters."),
            params={"max": WARNING_MAX_CHARS},
            field="text",
        )
    return cleaned


def retain_until(started_at: datetime, retention_days: int) -> datetime:
    """A recording is kept for the facility's retention period from its start, unless flagged."""
    return started_at + timedelta(days=retention_days)


def may_purge(retain_until_at: datetime, flagged: bool, now: datetime) -> bool:
    """A recording may go once its retention ran out, never while flagged for an investigation."""
    return not flagged and now >= retain_until_at
