"""Pages of live visits: the call (a visitor at home, a resident at a station, a link-center booth), the
link-center check-in, the monitoring wall and the recordings of investigators.

The pages only show; the sockets (/ws/visits/{id}, /ws/monitor) and the services decide who may join,
watch or end what, and when. The browser code is plain ES modules under static/live/; each page hands
them its settings and its words (translated here) in a JSON data block."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Protocol, TypeVar
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from pydantic import BeforeValidator, Field

from openvisit.db.models import (
    Dependent,
    Facility,
    LinkCenter,
    Recording,
    Resident,
    Station,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain import live as rules
from openvisit.domain.enums import (
    ActorKind,
    ParticipantRole,
    RecordingStatus,
    Role,
    StationKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.errors import N_, DomainError, Forbidden, NotFound
from openvisit.domain.principal import Grant, Principal
from openvisit.services import live, queries, recordings
from openvisit.services.access import require_role
from openvisit.services.context import AppContext
from openvisit.services.queries import VisitDetails
from openvisit.web.deps import MAX_ID, CsrfChecked, CtxDep, CurrentPrincipal, IdPath, IdQuery, MetaDep
from openvisit.web.forms import error_status, language_of, see_other
from openvisit.web.i18n import translate, zone
from openvisit.web.labels import clock, label_of
from openvisit.web.staff_facility import no_facility_page
from openvisit.web.templating import STATION_COOKIE, ctx_of, environment, render

routes = APIRouter(include_in_schema=False)

FormId = Annotated[int, Field(ge=1, le=MAX_ID)]
SearchDay = Annotated[date | None, BeforeValidator(lambda value: value or None)]
"""A day of a search form: its date field left empty is sent as `from=`, which means any day."""


class _Place(Protocol):
    @property
    def id(self) -> int: ...


PlaceT = TypeVar("PlaceT", bound=_Place)

CALL_TEXT: dict[str, str] = {
    "checking": N_("Checking your camera and microphone…"),
    "devicesReady": N_("Your camera and microphone work."),
    "devicesPartial": N_("Only part of your equipment works: check that both camera and microphone are on."),
    "devicesMissing": N_(
        "Your camera or microphone could not be used (%(error)s). Allow them in the browser, or check "
        "that they are connected, then press “Check again”."
    ),
    "hintGood": N_("Connection to the server: good (%(ms)s ms)."),
    "hintFair": N_("Connection to the server: fair (%(ms)s ms). The picture may be less sharp."),
    "hintPoor": N_("Connection to the server: slow (%(ms)s ms). Move closer to the Wi-Fi or use a cable."),
    "hintBandwidth": N_("Your browser reports about %(mbps)s Mbit/s; a visit needs at least 1.2 Mbit/s."),
    "hintFailed": N_("The server could not be reached. Check your internet connection."),
    "acceptRules": N_("Please accept the rules to join."),
    "notOpenYet": N_("You can join from %(time)s."),
    "over": N_("The time for joining this visit is over."),
    "connecting": N_("Connecting…"),
    "waitingPeer": N_("Waiting for the other side to join."),
    "peerHere": N_("The other side is here."),
    "peerJoined": N_("The other side has joined."),
    "peerLeft": N_("The other side has left. They can come back until the end."),
    "startsIn": N_("Starts in %(time)s"),
    "timeLeft": N_("Time left: %(time)s"),
    "fiveLeft": N_("5 minutes left."),
    "oneLeft": N_("1 minute left. The visit ends at the scheduled time."),
    "minutesLeft": N_("%(n)s minutes left."),
    "mediaFailed": N_("The video connection could not be set up. Trying again…"),
    "endedCompleted": N_("The visit has ended."),
    "endedFailed": N_("The visit could not continue."),
    "timeOver": N_("The time of this visit is over."),
    "replacedTitle": N_("You joined from another device."),
    "replaced": N_("This visit is now open on another device, so this one was disconnected."),
    "refusedTitle": N_("You cannot join this visit now."),
    "leftTitle": N_("You left the visit."),
    "left": N_("You can join again until %(time)s."),
    "errorGeneric": N_("Something went wrong. Please try again."),
    "roundTrip": N_("Round trip %(ms)s ms"),
    "frameRate": N_("%(fps)s frames a second"),
}
"""The words of the call module (static/live/call.js), in the reader's language."""

WALL_TEXT: dict[str, str] = {
    "tileTitle": N_("%(resident)s with %(visitor)s"),
    "visitorConnected": N_("Visitor connected"),
    "visitorAway": N_("Visitor not connected"),
    "residentConnected": N_("Resident connected"),
    "residentAway": N_("Resident not connected"),
    "startsIn": N_("Starts in %(time)s"),
    "timeLeft": N_("%(time)s left"),
    "watch": N_("Watch"),
    "stopWatching": N_("Stop watching"),
    "listen": N_("Listen"),
    "mute": N_("Mute"),
    "paused_visitor": N_("The visitor's video is paused for the resident."),
    "paused_resident": N_("The resident's video is paused for the visitor."),
    "resumed_visitor": N_("The visitor's video is shown again."),
    "resumed_resident": N_("The resident's video is shown again."),
    "warningSent": N_("Warning sent to both sides."),
    "chooseReason": N_("Choose a reason."),
    "ending": N_("Ending the visit…"),
    "endedStatus": N_("%(outcome)s."),
    "reconnecting": N_("The connection to the server dropped. Reconnecting…"),
    "refused": N_("You may not monitor this facility."),
    "errorGeneric": N_("Something went wrong. Please try again."),
}
"""The words of the wall module (static/live/wall.js)."""

OUTCOME_LABELS: dict[str, str] = {
    rules.Outcome.COMPLETED: N_("Ended"),
    rules.Outcome.TERMINATED: N_("Terminated"),
    rules.Outcome.FAILED: N_("Failed"),
}


def _form_error(request: Request, exc: DomainError) -> dict[str, str | None]:
    return {
        "code": exc.code,
        "message": translate(language_of(request), exc.message, exc.params),
        "field": exc.field,
    }


def _words(language: str, texts: dict[str, str]) -> dict[str, str]:
    return {key: translate(language, text) for key, text in texts.items()}


def _ice_servers(request: Request) -> list[dict[str, str]]:
    return [{"urls": url} for url in ctx_of(request).settings.ice_servers]


def _join_early_minutes(request: Request, facility_id: int) -> int:
    """The facility's join window (minutes before the start), read once per request and facility."""
    known: dict[int, int] | None = getattr(request.state, "live_join_early", None)
    if known is None:
        known = {}
        request.state.live_join_early = known
    if facility_id not in known:
        with ctx_of(request).db.read() as session:
            minutes = session.execute(
                sa.select(Facility.join_early_minutes).where(Facility.id == facility_id)
            ).scalar_one_or_none()
        known[facility_id] = 10 if minutes is None else minutes
    return known[facility_id]


def _retention_days(request: Request, facility_id: int) -> int:
    """How long the facility keeps recordings, as the call's notice tells the participants."""
    with ctx_of(request).db.read() as session:
        days = session.execute(
            sa.select(Facility.recording_retention_days).where(Facility.id == facility_id)
        ).scalar_one_or_none()
    return 90 if days is None else days


def _window(request: Request, visit: Visit) -> tuple[datetime, datetime]:
    return rules.join_window(visit.starts_at, visit.ends_at, _join_early_minutes(request, visit.facility_id))


def join_open(request: Request, visit: Visit) -> bool:
    """Whether a visit may be joined now (its status and the join window); the socket checks again."""
    if visit.status not in rules.JOINABLE_STATUSES:
        return False
    opens_at, closes_at = _window(request, visit)
    return opens_at <= ctx_of(request).clock() < closes_at


@dataclass(frozen=True)
class TodayVisit:
    """A visit of the resident's day, as the station's list shows it."""

    visit: Visit
    hours: str
    open: bool
    opens_later: bool
    opens_label: str


def today_visits(request: Request, visits: Sequence[Visit]) -> list[TodayVisit]:
    """The visits of today (in the station's time) that can still be joined, soonest first."""
    ctx = ctx_of(request)
    principal: Principal | None = getattr(request.state, "principal", None)
    tz = principal.timezone if principal else ctx.settings.default_timezone
    language = language_of(request)
    now = ctx.clock()
    today = now.astimezone(zone(tz)).date()
    rows = []
    for visit in sorted(visits, key=lambda v: v.starts_at):
        if (
            visit.starts_at.astimezone(zone(tz)).date() != today
            or visit.status not in rules.JOINABLE_STATUSES
        ):
            continue
        if visit.ends_at <= now:
            continue
        opens_at, _ = _window(request, visit)
        hours = f"{clock(visit.starts_at, language, tz)}–{clock(visit.ends_at, language, tz)}"
        rows.append(
            TodayVisit(visit, hours, join_open(request, visit), now < opens_at, clock(opens_at, language, tz))
        )
    return rows


def _install_template_helpers() -> None:
    """The lists of visits (the visitor's, the station's) show Join while a visit is open."""
    environment().globals["live_join_open"] = join_open
    environment().globals["live_today"] = today_visits


def _is_lead(ctx: AppContext, principal: Principal, visit: Visit) -> bool:
    """Whether `principal` is the visit's lead visitor: the one who joins a visit from home."""
    with ctx.db.read() as session:
        role = session.execute(
            sa.select(VisitParticipant.role).where(
                VisitParticipant.visit_id == visit.id, VisitParticipant.visitor_id == principal.visitor_id
            )
        ).scalar_one_or_none()
    return role is ParticipantRole.LEAD


# --- the call -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallPage:
    """What the call template needs besides the visit."""

    side: str
    peer_name: str
    back_url: str
    station: bool


def _call_page(request: Request, principal: Principal, details: VisitDetails, page: CallPage) -> Response:
    ctx = ctx_of(request)
    language = language_of(request)
    visit = details.visit
    opens_at, _ = _window(request, visit)
    tz = principal.timezone
    config: dict[str, Any] = {
        "visitId": visit.id,
        "side": page.side,
        "kind": visit.kind.value,
        "socket": f"/ws/visits/{visit.id}",
        "iceServers": _ice_servers(request),
        "startsAt": visit.starts_at.isoformat(),
        "endsAt": visit.ends_at.isoformat(),
        "opensAt": opens_at.isoformat(),
        "serverNow": ctx.clock().isoformat(),
        "opensAtLabel": clock(opens_at, language, tz),
        "endsAtLabel": clock(visit.ends_at, language, tz),
        "text": {
            **_words(language, CALL_TEXT),
            "statuses": {
                s.value: translate(language, label_of(s))
                for s in (VisitStatus.COMPLETED, VisitStatus.TERMINATED, VisitStatus.FAILED)
            },
        },
    }
    finished = visit.status not in rules.JOINABLE_STATUSES or ctx.clock() >= visit.ends_at
    return render(
        request,
        "live_call.html",
        {
            "details": details,
            "visit": visit,
            "notice": rules.notice_for(visit.kind).value,
            "config": config,
            "page": page,
            "finished": finished,
            "retention_days": _retention_days(request, visit.facility_id),
            "reason_text": _ending_text(language, visit),
        },
    )


def _ending_text(language: str, visit: Visit) -> str:
    """Why a visit that can no longer be joined is over, for the page that would have joined it."""
    if visit.reason and visit.reason in rules.TERMINATION_REASONS:
        return translate(language, rules.TERMINATION_REASONS[visit.reason])
    if visit.reason and visit.reason in rules.FAILURE_REASONS:
        return translate(language, rules.FAILURE_REASONS[visit.reason])
    return translate(language, label_of(visit.status))


@routes.get("/visits/{visit_id}/join")
def visitor_join(visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    """The visitor's device check, rules and call. A link-center visit is joined from the booth instead."""
    if not principal.is_visitor:
        raise Forbidden("visit.visitors_only", N_("These pages are for visitors."))
    details = queries.visit_details(ctx, principal, visit_id)
    visit = details.visit
    if visit.mode is VisitMode.LINK_CENTER:
        return render(request, "live_elsewhere.html", {"details": details, "visit": visit, "at_center": True})
    if not _is_lead(ctx, principal, visit):
        return render(
            request, "live_elsewhere.html", {"details": details, "visit": visit, "at_center": False}
        )
    page = CallPage(side="visitor", peer_name=details.resident_name, back_url="/visits", station=False)
    return _call_page(request, principal, details, page)


@routes.get("/station/visits/{visit_id}")
def station_call(visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    """The resident's call, at the station, in the station's language."""
    if principal.kind is not ActorKind.RESIDENT or principal.resident_id is None:
        raise Forbidden("station.residents_only", N_("This page is for residents at a station."))
    details = queries.visit_details(ctx, principal, visit_id)
    lead = next((name for role, name in details.people if role is ParticipantRole.LEAD), "")
    page = CallPage(side="resident", peer_name=lead, back_url="/station", station=True)
    return _call_page(request, principal, details, page)


# --- the monitoring wall --------------------------------------------------------------------------


@routes.get("/staff/monitor")
def monitor_wall(
    request: Request, ctx: CtxDep, principal: CurrentPrincipal, facility_id: IdQuery = None
) -> Response:
    """The facility's live and imminent visits as tiles, fed by /ws/monitor."""
    facilities, facility = _facility_choice(ctx, principal, live.MONITOR_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Monitoring"))
    language = language_of(request)
    text: dict[str, Any] = _words(language, WALL_TEXT)
    text["states"] = {s.value: translate(language, label_of(s)) for s in VisitStatus}
    text["reasons"] = {code: translate(language, label) for code, label in rules.TERMINATION_REASONS.items()}
    text["reasons"].update(
        {code: translate(language, label) for code, label in rules.FAILURE_REASONS.items()}
    )
    text["outcomes"] = {code: translate(language, label) for code, label in OUTCOME_LABELS.items()}
    config = {
        "facilityId": facility.id,
        "socket": f"/ws/monitor?facility_id={facility.id}",
        "iceServers": _ice_servers(request),
        "serverNow": ctx.clock().isoformat(),
        "text": text,
    }
    return render(
        request,
        "live_monitor.html",
        {
            "facilities": facilities,
            "facility": facility,
            "config": config,
            "reasons": [
                (code, translate(language, label)) for code, label in rules.TERMINATION_REASONS.items()
            ],
            "warning_max": rules.WARNING_MAX_CHARS,
            "note_max": rules.NOTE_MAX_CHARS,
        },
    )


# --- the link center: check-in and the booth ------------------------------------------------------


@dataclass(frozen=True)
class Person:
    role: ParticipantRole
    name: str
    born: date
    checked_in_at: datetime | None


@dataclass(frozen=True)
class CenterVisit:
    """A visit of the day at a link center, as the operator and the booth see it."""

    visit: Visit
    resident_name: str
    facility_name: str
    facility_timezone: str
    booth: str
    people: list[Person]
    join_open: bool
    opens_at: datetime

    @property
    def checked_in(self) -> bool:
        return bool(self.people) and all(p.checked_in_at is not None for p in self.people)


def _granted_choice(
    principal: Principal,
    roles: Sequence[Role],
    places: Sequence[PlaceT],
    chosen_id: int | None,
    *,
    of_grant: Callable[[Grant], int | None],
    missing: NotFound,
) -> tuple[list[PlaceT], PlaceT | None]:
    """The places (facilities or link centers) where `principal` holds one of `roles` by an explicit
    grant, and the one asked for (or the first). Live visits are the work of the place's own staff: a
    system admin does not watch, join or play them back merely for being one (services/live.py)."""
    require_role(principal, *roles)
    granted = {of_grant(g) for g in principal.grants if g.role in roles}
    allowed = [place for place in places if place.id in granted]
    if chosen_id is None:
        return allowed, allowed[0] if allowed else None
    chosen = next((place for place in allowed if place.id == chosen_id), None)
    if chosen is None:
        raise missing
    return allowed, chosen


def _facility_choice(
    ctx: AppContext, principal: Principal, roles: Sequence[Role], facility_id: int | None
) -> tuple[list[Facility], Facility | None]:
    return _granted_choice(
        principal,
        roles,
        queries.staff_facilities(ctx, principal),
        facility_id,
        of_grant=lambda g: g.facility_id,
        missing=NotFound("facility.not_found", N_("No such facility.")),
    )


def _center_choice(
    ctx: AppContext, principal: Principal, link_center_id: int | None
) -> tuple[list[LinkCenter], LinkCenter | None]:
    return _granted_choice(
        principal,
        (Role.LINK_OPERATOR,),
        queries.link_centers(ctx, principal),
        link_center_id,
        of_grant=lambda g: g.link_center_id,
        missing=NotFound("link_center.not_found", N_("No such link center.")),
    )


def _center_day(request: Request, center: LinkCenter, *, booth_id: int | None = None) -> list[CenterVisit]:
    """The link center's visits of today (in its own time), booked or going on, with their people."""
    ctx = ctx_of(request)
    local = zone(center.timezone)
    today = ctx.clock().astimezone(local).date()
    day_start = datetime.combine(today, time(0), tzinfo=local)
    day_end = datetime.combine(today + timedelta(days=1), time(0), tzinfo=local)
    shown = (VisitStatus.APPROVED, VisitStatus.IN_PROGRESS, VisitStatus.COMPLETED, VisitStatus.TERMINATED)
    with ctx.db.read() as session:
        query = (
            sa.select(Visit, Resident, Facility, Station.name)
            .join(Resident, Resident.id == Visit.resident_id)
            .join(Facility, Facility.id == Visit.facility_id)
            .join(Station, Station.id == Visit.booth_station_id)
            .where(
                Visit.link_center_id == center.id,
                Visit.starts_at >= day_start,
                Visit.starts_at < day_end,
                Visit.status.in_(shown),
            )
            .order_by(Visit.starts_at, Visit.id)
        )
        if booth_id is not None:
            query = query.where(Visit.booth_station_id == booth_id)
        rows = session.execute(query).all()
        people: dict[int, list[Person]] = {}
        if rows:
            for visit_id, role, v_first, v_last, v_born, d_first, d_last, d_born, checked in session.execute(
                sa.select(
                    VisitParticipant.visit_id,
                    VisitParticipant.role,
                    Visitor.first_name,
                    Visitor.last_name,
                    Visitor.birth_date,
                    Dependent.first_name,
                    Dependent.last_name,
                    Dependent.birth_date,
                    VisitParticipant.checked_in_at,
                )
                .outerjoin(Visitor, Visitor.id == VisitParticipant.visitor_id)
                .outerjoin(Dependent, Dependent.id == VisitParticipant.dependent_id)
                .where(VisitParticipant.visit_id.in_([visit.id for visit, *_ in rows]))
                .order_by(VisitParticipant.id)
            ):
                name = f"{v_last or d_last or ''} {v_first or d_first or ''}".strip()
                people.setdefault(visit_id, []).append(Person(role, name, v_born or d_born, checked))
    order = {ParticipantRole.LEAD: 0, ParticipantRole.VISITOR: 1, ParticipantRole.DEPENDENT: 2}
    result = []
    for visit, resident, facility, booth in rows:
        opens_at, _ = rules.join_window(visit.starts_at, visit.ends_at, facility.join_early_minutes)
        result.append(
            CenterVisit(
                visit=visit,
                resident_name=f"{resident.last_name} {resident.first_name}",
                facility_name=facility.name,
                facility_timezone=facility.timezone,
                booth=booth,
                people=sorted(people.get(visit.id, []), key=lambda p: order[p.role]),
                join_open=join_open(request, visit),
                opens_at=opens_at,
            )
        )
    return result


CHECKIN_DONE: dict[str, str] = {
    "checked_in": N_("The party is checked in. The booth can start the visit."),
}


def _checkin_page(
    request: Request,
    ctx: AppContext,
    principal: Principal,
    link_center_id: int | None,
    *,
    done: str | None = None,
    error: DomainError | None = None,
) -> Response:
    centers, center = _center_choice(ctx, principal, link_center_id)
    if center is None:
        return render(request, "staff_no_facility.html", {"title": N_("Check-in")})
    return render(
        request,
        "live_checkin.html",
        {
            "centers": centers,
            "center": center,
            "visits": _center_day(request, center),
            "done_message": CHECKIN_DONE.get(done or ""),
            "error": _form_error(request, error) if error else None,
        },
        status=error_status(error),
    )


@routes.get("/staff/checkin")
def checkin(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    link_center_id: IdQuery = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """The operator's list of today's visits at the link center, each checked in after an ID check."""
    return _checkin_page(request, ctx, principal, link_center_id, done=done)


@routes.post("/staff/checkin/{visit_id}", dependencies=[CsrfChecked])
def checkin_party(
    visit_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    link_center_id: Annotated[FormId | None, Form()] = None,
    id_checked: Annotated[bool, Form()] = False,
) -> Response:
    try:
        visit = live.check_in_party(ctx, principal, visit_id, meta, id_checked=id_checked)
    except DomainError as exc:
        return _checkin_page(request, ctx, principal, link_center_id, error=exc)
    return see_other("/staff/checkin", link_center_id=visit.link_center_id, done="checked_in")


def _booths(ctx: AppContext, principal: Principal, center: LinkCenter) -> list[Station]:
    return [
        s
        for s in queries.stations(ctx, principal)
        if s.link_center_id == center.id and s.kind is StationKind.LINK_BOOTH
    ]


def _enrolled_station_code(request: Request) -> str | None:
    raw = request.cookies.get(STATION_COOKIE, "")
    code, sep, _key = raw.partition(":")
    return code if sep and code else None


@routes.get("/staff/booth")
def booth(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    link_center_id: IdQuery = None,
    station_id: IdQuery = None,
) -> Response:
    """A booth's visits of today; a checked-in visit inside its window is started from here. A browser
    enrolled as one of the center's booths shows that booth without being asked."""
    centers, center = _center_choice(ctx, principal, link_center_id)
    if center is None:
        return render(request, "staff_no_facility.html", {"title": N_("Booth")})
    booths = _booths(ctx, principal, center)
    chosen: Station | None = None
    if station_id is not None:
        chosen = next((b for b in booths if b.id == station_id), None)
        if chosen is None:
            raise NotFound("station.not_found", N_("No such station."))
    else:
        enrolled = _enrolled_station_code(request)
        chosen = next((b for b in booths if b.code == enrolled), None)
    return render(
        request,
        "live_booth.html",
        {
            "centers": centers,
            "center": center,
            "booths": booths,
            "booth": chosen,
            "visits": _center_day(request, center, booth_id=chosen.id) if chosen else [],
        },
    )


@routes.get("/staff/booth/visits/{visit_id}")
def booth_call(visit_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal) -> Response:
    """The visiting party's call in the booth: the visitor side, started by the center's operator."""
    require_role(principal, Role.LINK_OPERATOR)
    details = queries.visit_details(ctx, principal, visit_id)
    visit = details.visit
    if visit.mode is not VisitMode.LINK_CENTER:
        raise NotFound("visit.not_found", N_("No such visit."))
    back = f"/staff/booth?link_center_id={visit.link_center_id}&station_id={visit.booth_station_id}"
    page = CallPage(side="visitor", peer_name=details.resident_name, back_url=back, station=True)
    return _call_page(request, principal, details, page)


# --- recordings -----------------------------------------------------------------------------------

RECORDING_STATUSES: dict[str, str] = {
    RecordingStatus.RECORDING: N_("Being recorded"),
    RecordingStatus.FINALISED: N_("Ready"),
    RecordingStatus.DAMAGED: N_("Damaged"),
    RecordingStatus.PURGED: N_("Deleted"),
}

RECORDING_DONE: dict[str, str] = {
    "flagged": N_("The recording is kept for the investigation."),
    "unflagged": N_(
        "The recording is no longer kept for an investigation; it goes at the end of its retention."
    ),
}


@routes.get("/staff/recordings")
def recordings_list(
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    facility_id: IdQuery = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
    day_from: Annotated[SearchDay, Query(alias="from")] = None,
    day_to: Annotated[SearchDay, Query(alias="to")] = None,
    done: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Investigators find recordings by the resident's number or name and the visit's day."""
    facilities, facility = _facility_choice(ctx, principal, recordings.INVESTIGATOR_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, N_("Recordings"))
    hits = recordings.search(
        ctx, principal, facility.id, resident=q, day_from=day_from, day_to=day_to or day_from, limit=100
    )
    return render(
        request,
        "live_recordings.html",
        {
            "facilities": facilities,
            "facility": facility,
            "hits": hits,
            "q": q or "",
            "day_from": day_from,
            "day_to": day_to,
            "done_message": RECORDING_DONE.get(done or ""),
            "duration": _duration,
            "status_label": lambda status: translate(language_of(request), RECORDING_STATUSES[status]),
        },
    )


@dataclass(frozen=True)
class RecordingView:
    """One recording as its player page shows it."""

    recording: Recording
    visit: Visit
    resident_name: str
    resident_number: str
    facility_id: int
    facility_timezone: str
    people: list[str]


def _recording_view(ctx: AppContext, recording_id: int) -> RecordingView:
    """The recording's visit and people, read after `start_playback` has checked who is asking."""
    with ctx.db.read() as session:
        row = session.execute(
            sa.select(Recording, Visit, Resident, Facility)
            .join(Visit, Visit.id == Recording.visit_id)
            .join(Resident, Resident.id == Visit.resident_id)
            .join(Facility, Facility.id == Visit.facility_id)
            .where(Recording.id == recording_id)
        ).one()
        rec, visit, resident, facility = row
        names = session.execute(
            sa.select(Visitor.last_name, Visitor.first_name, Dependent.last_name, Dependent.first_name)
            .select_from(VisitParticipant)
            .outerjoin(Visitor, Visitor.id == VisitParticipant.visitor_id)
            .outerjoin(Dependent, Dependent.id == VisitParticipant.dependent_id)
            .where(VisitParticipant.visit_id == visit.id)
            .order_by(VisitParticipant.id)
        ).all()
    return RecordingView(
        recording=rec,
        visit=visit,
        resident_name=f"{resident.last_name} {resident.first_name}",
        resident_number=resident.number,
        facility_id=facility.id,
        facility_timezone=facility.timezone,
        people=[f"{vl or dl or ''} {vf or df or ''}".strip() for vl, vf, dl, df in names],
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


@routes.get("/staff/recordings/{recording_id}")
def recording_player(
    recording_id: IdPath, request: Request, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> Response:
    """Plays a recording: opening the page is a playback, written to the access log and the audit log;
    the <video> element's requests carry the session's token."""
    require_role(principal, *recordings.INVESTIGATOR_ROLES)
    playback = recordings.start_playback(ctx, principal, recording_id, meta)
    view = _recording_view(ctx, recording_id)
    media = f"/api/v1/recordings/{recording_id}/media?{urlencode({'playback': playback.token})}"
    return render(
        request,
        "live_recording.html",
        {"view": view, "media_url": media, "duration": _duration, "note_max": rules.NOTE_MAX_CHARS},
    )


@routes.post("/staff/recordings/{recording_id}/flag", dependencies=[CsrfChecked])
def recording_flag(
    recording_id: IdPath,
    request: Request,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    flagged: Annotated[bool, Form()],
    note: Annotated[str, Form(max_length=rules.NOTE_MAX_CHARS)] = "",
) -> Response:
    """Keep a recording for an investigation (past its retention), or release it."""
    recordings.flag(ctx, principal, recording_id, flagged, note, meta)
    return see_other("/staff/recordings", done="flagged" if flagged else "unflagged")


def router() -> APIRouter:
    """The pages of live visits; also lets the lists of visits (the visitor's, the station's) ask whether
    a visit is open to join."""
    _install_template_helpers()
    return routes
