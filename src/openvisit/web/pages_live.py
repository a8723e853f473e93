"""Pages of live visits: the call (a visitor at home, a resident at a station, a link-center booth), the
link-center check-in, the monitoring wall and the recordings of investigators.

The pages only show; the sockets (/ws/visits/{id}, /ws/monitor) and the services decide who may join,
watch or end what, and when. The browser code is plain ES modules under static/live/; each page hands
them its settings and its words (translated here) in a JSON data block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import Response

from openvisit.db.models import Visit, VisitParticipant
from openvisit.domain import live as rules
from openvisit.domain.enums import ActorKind, ParticipantRole, Role, VisitMode, VisitStatus
from openvisit.domain.errors import N_, Forbidden
from openvisit.domain.principal import Principal
from openvisit.services import queries
from openvisit.services.context import AppContext
from openvisit.services.queries import VisitDetails
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath, IdQuery
from openvisit.web.forms import language_of
from openvisit.web.i18n import translate
from openvisit.web.labels import clock, label_of
from openvisit.web.staff_facility import facility_choice, no_facility_page
from openvisit.web.templating import ctx_of, environment, render

routes = APIRouter(include_in_schema=False)

MONITOR_ROLES = (Role.MONITORING_OFFICER, Role.FACILITY_ADMIN)

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
    "endedTerminated": N_("Staff ended the visit."),
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


def _words(language: str, texts: dict[str, str]) -> dict[str, str]:
    return {key: translate(language, text) for key, text in texts.items()}


def _ice_servers(request: Request) -> list[dict[str, str]]:
    return [{"urls": url} for url in ctx_of(request).settings.ice_servers]


def join_open(request: Request, visit: Visit) -> bool:
    """Whether a visit may be joined now (its status and the join window); the socket checks again."""
    ctx = ctx_of(request)
    if visit.status not in rules.JOINABLE_STATUSES:
        return False
    opens_at, closes_at = rules.join_window(visit.starts_at, visit.ends_at, ctx.settings.join_early_minutes)
    return opens_at <= ctx.clock() < closes_at


def _install_template_helpers() -> None:
    """The lists of visits (the visitor's, the station's) show Join while a visit is open."""
    environment().globals["live_join_open"] = join_open


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
    opens_at, _ = rules.join_window(visit.starts_at, visit.ends_at, ctx.settings.join_early_minutes)
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
        "text": _words(language, CALL_TEXT),
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
            "retention_days": ctx.settings.recording_retention_days,
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
    facilities, facility = facility_choice(ctx, principal, MONITOR_ROLES, facility_id)
    if facility is None:
        return no_facility_page(request, translate(language_of(request), N_("Monitoring")))
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


def router() -> APIRouter:
    """The pages of live visits; also lets the lists of visits (the visitor's, the station's) ask whether
    a visit is open to join."""
    _install_template_helpers()
    return routes
