"""Live visits and recordings over HTTP: the link center's check-in, the officers' actions outside the
socket (warn, pause, terminate, a failed station), the monitoring wall, and the investigators'
recordings: search, playback (HTTP ranges, one logged session per playback), flag, transparency."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse
from pydantic import Field

from openvisit.domain import live as rules
from openvisit.media.engine import Side
from openvisit.services import live, recordings
from openvisit.web.deps import CtxDep, CurrentPrincipal, IdPath, MetaDep, live_rooms_of
from openvisit.web.schemas import Input, Output, Page

router = APIRouter(tags=["live"])


# --- schemas ----------------------------------------------------------------------------------------


class CheckInCreate(Input):
    id_checked: bool
    """The operator attests that they checked every adult's ID document in person."""


class CheckInRead(Output):
    visit_id: int
    checked_in: bool


class TerminationCreate(Input):
    reason: str = Field(max_length=64)
    note: str = Field(default="", max_length=rules.NOTE_MAX_CHARS)


class FailureCreate(Input):
    note: str = Field(default="", max_length=rules.NOTE_MAX_CHARS)


class WarningCreate(Input):
    text: str = Field(min_length=1, max_length=rules.WARNING_MAX_CHARS)


class PauseCreate(Input):
    side: Literal["visitor", "resident"]
    paused: bool


class EndedRead(Output):
    visit_id: int
    status: str
    outcome: str
    reason: str
    at: datetime


class WarningRead(Output):
    visit_id: int
    text: str
    at: datetime


class WallVisitRead(Output):
    id: int
    kind: str
    mode: str
    status: str
    resident: str
    resident_number: str
    visitor: str
    station: str
    starts_at: datetime
    ends_at: datetime
    sides: list[str]


class RecordingRead(Output):
    id: int
    visit_id: int
    status: str
    resident_number: str
    resident: str
    starts_at: datetime
    started_at: datetime
    duration_seconds: float | None
    bytes: int | None
    sha256: str | None
    retain_until: datetime
    flagged_for_investigation: bool


class PlaybackRead(Output):
    recording_id: int
    url: str
    expires_at: datetime


class FlagCreate(Input):
    flagged: bool
    note: str = Field(default="", max_length=rules.NOTE_MAX_CHARS)


class FlagRead(Output):
    id: int
    flagged_for_investigation: bool


class PersonCountRead(Output):
    user_id: int | None
    name: str
    count: int


class TransparencyRead(Output):
    facility_id: int
    day_from: date
    day_to: date
    visits_held: int
    social_visits_held: int
    legal_visits_held: int
    visits_recorded: int
    legal_visits_recorded: int
    visits_watched: int
    watches: int
    watchers: list[PersonCountRead]
    privileged_watch_attempts: int
    playbacks: int
    recordings_played: int
    players: list[PersonCountRead]
    terminated: int
    failed: int


def _ended(ended: live.Ended) -> EndedRead:
    return EndedRead(
        visit_id=ended.visit_id,
        status=ended.ending.status.value,
        outcome=ended.ending.outcome.value,
        reason=ended.ending.reason,
        at=ended.at,
    )


# --- live visits ------------------------------------------------------------------------------------


@router.post("/visits/{visit_id}/check-in", response_model=CheckInRead)
def check_in(
    visit_id: IdPath, body: CheckInCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> CheckInRead:
    """A link operator checked the party's ID at the link center; the booth may then join."""
    live.check_in_party(ctx, principal, visit_id, meta, id_checked=body.id_checked)
    return CheckInRead(visit_id=visit_id, checked_in=True)


@router.post("/visits/{visit_id}/terminate", response_model=EndedRead)
async def terminate(
    visit_id: IdPath, body: TerminationCreate, request: Request, principal: CurrentPrincipal, meta: MetaDep
) -> EndedRead:
    """An officer ends a live visit with a preset reason; both sides are cut off and told why."""
    ended = await live_rooms_of(request).terminate(principal, visit_id, body.reason, body.note, meta)
    return _ended(ended)


@router.post("/visits/{visit_id}/station-failure", response_model=EndedRead)
async def station_failure(
    visit_id: IdPath, body: FailureCreate, request: Request, principal: CurrentPrincipal, meta: MetaDep
) -> EndedRead:
    """Staff mark a visit as cut short by its station: FAILED, the allowance back, priority re-booking."""
    ended = await live_rooms_of(request).report_station_failure(principal, visit_id, body.note, meta)
    return _ended(ended)


@router.post("/visits/{visit_id}/warn", response_model=WarningRead)
async def warn(
    visit_id: IdPath, body: WarningCreate, request: Request, principal: CurrentPrincipal, meta: MetaDep
) -> WarningRead:
    """A warning both sides see, without disconnecting anyone."""
    warned = await live_rooms_of(request).warn(principal, visit_id, body.text, meta)
    return WarningRead(visit_id=warned.visit_id, text=warned.text, at=warned.at)


@router.post("/visits/{visit_id}/pause", status_code=204)
async def pause(
    visit_id: IdPath, body: PauseCreate, request: Request, principal: CurrentPrincipal, meta: MetaDep
) -> None:
    """Stop (or resume) one side's video to the other side."""
    await live_rooms_of(request).pause(principal, visit_id, Side(body.side), body.paused, meta)


@router.get("/facilities/{facility_id}/live", response_model=list[WallVisitRead])
async def wall(facility_id: IdPath, request: Request, principal: CurrentPrincipal) -> list[WallVisitRead]:
    """The facility's live and imminent visits, for its monitoring officers and facility admins."""
    tiles = await live_rooms_of(request).wall(principal, facility_id)
    return [
        WallVisitRead(
            id=t.id,
            kind=t.kind.value,
            mode=t.mode.value,
            status=t.status.value,
            resident=t.resident,
            resident_number=t.resident_number,
            visitor=t.visitor,
            station=t.station,
            starts_at=t.starts_at,
            ends_at=t.ends_at,
            sides=sorted(s.value for s in t.sides),
        )
        for t in tiles
    ]


# --- recordings -------------------------------------------------------------------------------------


@router.get("/facilities/{facility_id}/recordings", response_model=Page[RecordingRead])
def search_recordings(
    facility_id: IdPath,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    resident: Annotated[str | None, Query(max_length=120)] = None,
    day_from: Annotated[date | None, Query(alias="from")] = None,
    day_to: Annotated[date | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Page[RecordingRead]:
    """Recordings of the facility by the resident's number or name and the visit's day (investigators)."""
    hits = recordings.search(
        ctx,
        principal,
        facility_id,
        resident=resident,
        day_from=day_from,
        day_to=day_to,
        limit=limit,
        offset=offset,
    )
    items = [
        RecordingRead(
            id=h.id,
            visit_id=h.visit_id,
            status=h.status.value,
            resident_number=h.resident_number,
            resident=h.resident,
            starts_at=h.starts_at,
            started_at=h.started_at,
            duration_seconds=h.duration_seconds,
            bytes=h.bytes,
            sha256=h.sha256,
            retain_until=h.retain_until,
            flagged_for_investigation=h.flagged_for_investigation,
        )
        for h in hits
    ]
    return Page[RecordingRead](items=items, limit=limit, offset=offset)


@router.post("/recordings/{recording_id}/playback", response_model=PlaybackRead)
def start_playback(
    recording_id: IdPath, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> PlaybackRead:
    """Begin watching a recording: logged (access log and audit) once; the URL serves its byte ranges."""
    playback = recordings.start_playback(ctx, principal, recording_id, meta)
    url = f"/api/v1/recordings/{recording_id}/media?playback={playback.token}"
    return PlaybackRead(recording_id=recording_id, url=url, expires_at=playback.expires_at)


@router.get("/recordings/{recording_id}/media", response_class=FileResponse)
def recording_media(
    recording_id: IdPath,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    meta: MetaDep,
    playback: Annotated[str | None, Query(max_length=2000)] = None,
) -> FileResponse:
    """The recording's file, with HTTP Range support so a <video> element can seek. With the token of a
    playback session it is not logged again; without one, the request is a logged session of its own."""
    media = recordings.media_file(ctx, principal, recording_id, playback, meta)
    return FileResponse(
        media.path,
        media_type=media.content_type,
        headers={"Cache-Control": "private, no-store"},
    )


@router.post("/recordings/{recording_id}/flag", response_model=FlagRead)
def flag_recording(
    recording_id: IdPath, body: FlagCreate, ctx: CtxDep, principal: CurrentPrincipal, meta: MetaDep
) -> FlagRead:
    """Keep a recording past its retention for an investigation, or release it."""
    row = recordings.flag(ctx, principal, recording_id, body.flagged, body.note, meta)
    return FlagRead(id=row.id, flagged_for_investigation=row.flagged_for_investigation)


@router.get("/facilities/{facility_id}/transparency", response_model=TransparencyRead)
def transparency(
    facility_id: IdPath,
    ctx: CtxDep,
    principal: CurrentPrincipal,
    day_from: Annotated[date, Query(alias="from")],
    day_to: Annotated[date, Query(alias="to")],
) -> TransparencyRead:
    """How many visits were held, recorded, watched and played back, and by whom (facility admins and
    investigators of the facility)."""
    report = recordings.transparency(ctx, principal, facility_id, day_from, day_to)
    return TransparencyRead.model_validate(report)
