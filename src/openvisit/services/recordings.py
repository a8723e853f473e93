"""Recordings of social visits: a row per opening of a visit's room, finalised with its size, duration and
sha256 (or marked damaged); the investigators' search; playback, each one in the access log and the audit
log; flagging for an investigation; the transparency figures of a facility.

Playback sessions. `start_playback` writes one access-log row and one audit entry and returns a signed
token (valid PLAYBACK_HOURS for that investigator and that recording). The media URL carries the token,
so a <video> element may fetch as many byte ranges as it likes while seeking: they belong to the session
already logged and are not logged again. A media request without a token starts a session of its own
(logged and audited), so no byte of a recording is ever served unlogged. Every request, with a token or
not, checks again that the person is still an investigator of the visit's facility.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openvisit.db.models import (
    AccessLog,
    AuditEntry,
    Facility,
    Recording,
    Resident,
    UserAccount,
    Visit,
)
from openvisit.domain import live as rules
from openvisit.domain.enums import ActorKind, RecordingStatus, Role, VisitKind, VisitStatus
from openvisit.domain.errors import N_, Conflict, Forbidden, InvalidInput, NotFound
from openvisit.domain.principal import Principal
from openvisit.i18n import zone
from openvisit.media.engine import PrivilegedVisit, RecordingResult
from openvisit.services import audit, tokens
from openvisit.services.access import require_active
from openvisit.services.context import AppContext, RequestMeta

RECORDING_SUFFIX = ".webm"
"""The recorder writes WebM (Matroska): a file whose writer is killed still plays up to its last cluster."""
CONTENT_TYPES = {".webm": "video/webm", ".mkv": "video/x-matroska", ".mp4": "video/mp4"}
"""What a browser is told a recording is."""

PLAYBACK_HOURS = 4
PLAYBACK_PURPOSE = "recording-playback"
INVESTIGATOR_ROLES: tuple[Role, ...] = (Role.INVESTIGATOR,)
"""Only investigators play back recordings (DOMAIN.md); a system admin is not one by default."""
REPORT_ROLES: tuple[Role, ...] = (Role.FACILITY_ADMIN, Role.INVESTIGATOR)
SYSTEM_RECORDER = Principal(kind=ActorKind.SYSTEM, label="recorder")
MAX_REPORT_DAYS = 400


def _investigator_of(p: Principal, facility_id: int, roles: Sequence[Role] = INVESTIGATOR_ROLES) -> bool:
    return any(g.role in roles and g.facility_id == facility_id for g in p.grants)


def _recording_in_scope(session: Session, p: Principal, recording_id: int) -> tuple[Recording, Visit]:
    """A recording of a facility where `p` investigates; NotFound otherwise (never telling which)."""
    require_active(p)
    row = session.execute(
        sa.select(Recording, Visit)
        .join(Visit, Visit.id == Recording.visit_id)
        .where(Recording.id == recording_id)
    ).one_or_none()
    if row is None or not _investigator_of(p, row[1].facility_id):
        raise NotFound("recording.not_found", N_("No such recording."))
    return row[0], row[1]


# --- the recorder's rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingStart:
    recording_id: int
    path: Path


def begin(ctx: AppContext, visit_id: int) -> RecordingStart:
    """A social visit's room opens: a new RECORDING row and the path its file goes to (a new file per
    opening). A legal visit never gets one: PrivilegedVisit here, and the database refuses it too."""
    now = ctx.clock()
    directory = ctx.settings.recordings_path
    with ctx.db.write() as session:
        visit = session.get(Visit, visit_id)
        if visit is None:
            raise NotFound("visit.not_found", N_("No such visit."))
        if visit.kind is not VisitKind.SOCIAL:
            raise PrivilegedVisit()
        days = session.execute(
            sa.select(Facility.recording_retention_days).where(Facility.id == visit.facility_id)
        ).scalar_one()
        name = f"visit-{visit.id}-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(4)}{RECORDING_SUFFIX}"
        path = (directory / name).resolve()
        row = Recording(
            visit_id=visit.id,
            visit_kind=visit.kind,
            status=RecordingStatus.RECORDING,
            path=str(path),
            started_at=now,
            retain_until=rules.retain_until(now, days),
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            SYSTEM_RECORDER,
            "recording.started",
            "recording",
            row.id,
            at=now,
            facility_id=visit.facility_id,
            after={"visit_id": visit.id, "path": path.name, "retain_until": row.retain_until},
        )
        recording_id = row.id
    directory.mkdir(parents=True, exist_ok=True)
    return RecordingStart(recording_id, path)


def finish(ctx: AppContext, recording_id: int, result: RecordingResult | None) -> Recording | None:
    """Finalise a recording with what the engine reports (size, duration, sha256), or mark it DAMAGED when
    its file cannot be played or was never written. None when it was not RECORDING any more."""
    now = ctx.clock()
    with ctx.db.write() as session:
        row = session.execute(
            sa.select(Recording).where(Recording.id == recording_id).with_for_update()
        ).scalar_one_or_none()
        if row is None or row.status is not RecordingStatus.RECORDING:
            return None
        if result is not None and result.playable:
            row.status = RecordingStatus.FINALISED
        else:
            row.status = RecordingStatus.DAMAGED
        if result is not None:
            row.bytes = result.bytes
            row.duration_seconds = result.duration_seconds
            row.sha256 = result.sha256
        row.finalised_at = now
        facility_id = session.execute(
            sa.select(Visit.facility_id).where(Visit.id == row.visit_id)
        ).scalar_one()
        audit.record(
            session,
            SYSTEM_RECORDER,
            f"recording.{row.status.value}",
            "recording",
            row.id,
            at=now,
            facility_id=facility_id,
            after={
                "visit_id": row.visit_id,
                "bytes": row.bytes,
                "duration_seconds": row.duration_seconds,
                "sha256": row.sha256,
            },
        )
        return row


def recover(ctx: AppContext, leftovers: Sequence[tuple[int, str]], results: Sequence[RecordingResult]) -> int:
    """After a restart: finalise each recording left RECORDING from what the engine found in its file, or
    mark it DAMAGED (unplayable, or no file at all). Returns how many were finalised."""
    by_path = {str(r.path): r for r in results}
    by_resolved = {str(Path(r.path).resolve()): r for r in results}
    finalised = 0
    for recording_id, path in leftovers:
        result = by_path.get(path) or by_resolved.get(str(Path(path).resolve()))
        row = finish(ctx, recording_id, result)
        if row is not None and row.status is RecordingStatus.FINALISED:
            finalised += 1
    return finalised


# --- investigators ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingHit:
    """One recording found by an investigator's search."""

    id: int
    visit_id: int
    status: RecordingStatus
    resident_number: str
    resident: str
    starts_at: datetime
    started_at: datetime
    duration_seconds: float | None
    bytes: int | None
    sha256: str | None
    retain_until: datetime
    flagged_for_investigation: bool
    facility_timezone: str


def _day_bounds(
    day_from: date | None, day_to: date | None, tz: str
) -> tuple[datetime | None, datetime | None]:
    place = zone(tz)
    start = datetime.combine(day_from, time(0), tzinfo=place) if day_from else None
    end = datetime.combine(day_to + timedelta(days=1), time(0), tzinfo=place) if day_to else None
    return start, end


def search(
    ctx: AppContext,
    p: Principal,
    facility_id: int,
    *,
    resident: str | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[RecordingHit]:
    """Recordings of a facility where `p` investigates, by the resident's number or name and by the
    visit's day (in the facility's time), newest first."""
    require_active(p)
    if not _investigator_of(p, facility_id):
        raise NotFound("facility.not_found", N_("No such facility."))
    limit, offset = max(1, min(limit, 200)), max(0, offset)
    with ctx.db.read() as session:
        facility = session.get(Facility, facility_id)
        if facility is None:
            raise NotFound("facility.not_found", N_("No such facility."))
        query = (
            sa.select(Recording, Visit.starts_at, Resident.number, Resident.last_name, Resident.first_name)
            .join(Visit, Visit.id == Recording.visit_id)
            .join(Resident, Resident.id == Visit.resident_id)
            .where(Visit.facility_id == facility_id, Recording.status != RecordingStatus.PURGED)
            .order_by(Visit.starts_at.desc(), Recording.started_at.desc(), Recording.id.desc())
        )
        text = " ".join((resident or "").split())[:120]
        if text:
            # SQLite's lower() folds ASCII only, and names here are mostly Cyrillic: the typed text is
            # also tried as people write names (Петров, ПЕТРОВ, петров).
            variants = {text, text.lower(), text.upper(), text.capitalize(), text.title()}
            clauses = [sa.func.lower(Resident.number).like(f"%{text.lower()}%")]
            for variant in variants:
                clauses.append(Resident.last_name.like(f"%{variant}%"))
                clauses.append(Resident.first_name.like(f"%{variant}%"))
            query = query.where(sa.or_(*clauses))
        start, end = _day_bounds(day_from, day_to, facility.timezone)
        if start is not None:
            query = query.where(Visit.starts_at >= start)
        if end is not None:
            query = query.where(Visit.starts_at < end)
        rows = session.execute(query.limit(limit).offset(offset)).all()
        return [
            RecordingHit(
                id=rec.id,
                visit_id=rec.visit_id,
                status=rec.status,
                resident_number=number,
                resident=f"{last} {first}",
                starts_at=starts_at,
                started_at=rec.started_at,
                duration_seconds=rec.duration_seconds,
                bytes=rec.bytes,
                sha256=rec.sha256,
                retain_until=rec.retain_until,
                flagged_for_investigation=rec.flagged_for_investigation,
                facility_timezone=facility.timezone,
            )
            for rec, starts_at, number, last, first in rows
        ]


@dataclass(frozen=True)
class Playback:
    """A logged playback session: the token the media URL carries, until when it works."""

    recording_id: int
    token: str
    expires_at: datetime
    access_id: int


def _playable(rec: Recording) -> Path:
    if rec.status is not RecordingStatus.FINALISED:
        raise Conflict("recording.not_playable", N_("This recording cannot be played."))
    path = Path(rec.path)
    if not path.is_file():
        raise Conflict("recording.not_playable", N_("This recording cannot be played."))
    return path


def start_playback(ctx: AppContext, p: Principal, recording_id: int, meta: RequestMeta) -> Playback:
    """An investigator begins to watch a recording: one access-log row (who, when, address, browser) and
    one audit entry, and a token for the media requests of this session."""
    now = ctx.clock()
    with ctx.db.write() as session:
        rec, visit = _recording_in_scope(session, p, recording_id)
        _playable(rec)
        assert p.user_id is not None  # investigators are staff accounts
        row = AccessLog(
            recording_id=rec.id,
            user_id=p.user_id,
            at=now,
            action="playback",
            ip=meta.ip[:64],
            user_agent=meta.user_agent[:300],
        )
        session.add(row)
        session.flush()
        audit.record(
            session,
            p,
            "recording.played",
            "recording",
            rec.id,
            at=now,
            facility_id=visit.facility_id,
            after={"access_id": row.id, "visit_id": visit.id, "user_agent": meta.user_agent[:300]},
            ip=meta.ip,
        )
        access_id = row.id
    lifetime = timedelta(hours=PLAYBACK_HOURS)
    token = tokens.sign(ctx, PLAYBACK_PURPOSE, {"r": recording_id, "u": p.user_id, "a": access_id}, lifetime)
    return Playback(recording_id, token, now + lifetime, access_id)


@dataclass(frozen=True)
class MediaFile:
    path: Path
    content_type: str
    access_id: int


def media_file(
    ctx: AppContext, p: Principal, recording_id: int, token: str | None, meta: RequestMeta
) -> MediaFile:
    """The file behind a media request. With the token of this person's playback session it is served
    without a new log row; without one, a new playback session is logged first. Access is checked anew
    either way."""
    if not token:
        access_id = start_playback(ctx, p, recording_id, meta).access_id
    with ctx.db.read() as session:
        rec, _visit = _recording_in_scope(session, p, recording_id)
        path = _playable(rec)
    if token:
        claims = tokens.verify(ctx, PLAYBACK_PURPOSE, token)
        if (
            claims.get("r") != recording_id
            or claims.get("u") != p.user_id
            or not isinstance(claims.get("a"), int)
        ):
            raise Forbidden(
                "recording.playback_invalid",
                N_("This playback link is not yours. Open the recording again."),
            )
        access_id = int(claims["a"])
    return MediaFile(path, CONTENT_TYPES.get(path.suffix, "application/octet-stream"), access_id)


def flag(
    ctx: AppContext, p: Principal, recording_id: int, flagged: bool, note: str, meta: RequestMeta
) -> Recording:
    """An investigator keeps a recording past its retention for an investigation (or releases it). Audited."""
    now = ctx.clock()
    with ctx.db.write() as session:
        rec, visit = _recording_in_scope(session, p, recording_id)
        if rec.status is RecordingStatus.PURGED:
            raise Conflict("recording.purged", N_("This recording has been deleted."))
        before = {"flagged_for_investigation": rec.flagged_for_investigation}
        rec.flagged_for_investigation = flagged
        audit.record(
            session,
            p,
            "recording.flagged" if flagged else "recording.unflagged",
            "recording",
            rec.id,
            at=now,
            facility_id=visit.facility_id,
            before=before,
            after={"flagged_for_investigation": flagged, "note": note.strip()[: rules.NOTE_MAX_CHARS]},
            ip=meta.ip,
        )
        return rec


def purge_expired(ctx: AppContext) -> int:
    """Delete the files of recordings whose retention ran out and that nobody flagged; the rows stay, marked
    PURGED (with their hash), so the record of what existed remains. Returns how many."""
    now = ctx.clock()
    purged = 0
    with ctx.db.write() as session:
        rows = session.execute(
            sa.select(Recording, Visit.facility_id)
            .join(Visit, Visit.id == Recording.visit_id)
            .where(
                Recording.status.in_((RecordingStatus.FINALISED, RecordingStatus.DAMAGED)),
                Recording.flagged_for_investigation.is_(False),
                Recording.retain_until <= now,
            )
            .with_for_update(of=Recording)
        ).all()
        for rec, facility_id in rows:
            if not rules.may_purge(rec.retain_until, rec.flagged_for_investigation, now):
                continue
            Path(rec.path).unlink(missing_ok=True)
            rec.status = RecordingStatus.PURGED
            audit.record(
                session,
                SYSTEM_RECORDER,
                "recording.purged",
                "recording",
                rec.id,
                at=now,
                facility_id=facility_id,
                after={"retain_until": rec.retain_until},
            )
            purged += 1
    return purged


# --- transparency -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonCount:
    user_id: int | None
    name: str
    count: int


@dataclass(frozen=True)
class Transparency:
    """What a facility's recording and monitoring did in a period (its local days, both included)."""

    facility_id: int
    day_from: date
    day_to: date
    visits_held: int
    social_visits_held: int
    legal_visits_held: int
    visits_recorded: int
    legal_visits_recorded: int
    """Always 0: the database refuses a recording of a legal visit. Shown so that anyone can check."""
    visits_watched: int
    watches: int
    watchers: list[PersonCount]
    privileged_watch_attempts: int
    """Attempts to watch a legal visit, every one refused and audited."""
    playbacks: int
    recordings_played: int
    players: list[PersonCount]
    terminated: int
    failed: int


HELD_STATUSES = (VisitStatus.IN_PROGRESS, VisitStatus.COMPLETED, VisitStatus.TERMINATED, VisitStatus.FAILED)


def transparency(
    ctx: AppContext, p: Principal, facility_id: int, day_from: date, day_to: date
) -> Transparency:
    """The transparency figures of a facility for facility admins and investigators there (and system
    admins): visits held, recorded, watched by monitors, played back, and by whom."""
    require_active(p)
    if not (p.is_system_admin or _investigator_of(p, facility_id, REPORT_ROLES)):
        raise NotFound("facility.not_found", N_("No such facility."))
    if day_to < day_from or (day_to - day_from).days > MAX_REPORT_DAYS:
        raise InvalidInput(
            "report.invalid_period",
            N_("Choose a period of at most %(days)s days."),
            params={"days": MAX_REPORT_DAYS},
        )
    with ctx.db.read() as session:
        facility = session.get(Facility, facility_id)
        if facility is None:
            raise NotFound("facility.not_found", N_("No such facility."))
        place = zone(facility.timezone)
        start = datetime.combine(day_from, time(0), tzinfo=place)
        end = datetime.combine(day_to + timedelta(days=1), time(0), tzinfo=place)
        in_period = sa.and_(Visit.facility_id == facility_id, Visit.starts_at >= start, Visit.starts_at < end)
        held = dict(
            session.execute(
                sa.select(Visit.kind, sa.func.count())
                .where(in_period, Visit.status.in_(HELD_STATUSES))
                .group_by(Visit.kind)
            ).all()
        )
        ended = dict(
            session.execute(
                sa.select(Visit.status, sa.func.count())
                .where(in_period, Visit.status.in_((VisitStatus.TERMINATED, VisitStatus.FAILED)))
                .group_by(Visit.status)
            ).all()
        )
        recorded = dict(
            session.execute(
                sa.select(Recording.visit_kind, sa.func.count(sa.distinct(Recording.visit_id)))
                .join(Visit, Visit.id == Recording.visit_id)
                .where(in_period)
                .group_by(Recording.visit_kind)
            ).all()
        )
        audit_in_period = sa.and_(
            AuditEntry.facility_id == facility_id, AuditEntry.at >= start, AuditEntry.at < end
        )
        watch_rows = session.execute(
            sa.select(AuditEntry.actor_id, AuditEntry.actor_label, AuditEntry.object_id).where(
                audit_in_period, AuditEntry.action == "visit.watched"
            )
        ).all()
        attempts = session.execute(
            sa.select(sa.func.count()).where(audit_in_period, AuditEntry.action == "visit.watch_refused")
        ).scalar_one()
        plays = session.execute(
            sa.select(AccessLog.user_id, UserAccount.display_name, UserAccount.email, AccessLog.recording_id)
            .join(Recording, Recording.id == AccessLog.recording_id)
            .join(Visit, Visit.id == Recording.visit_id)
            .join(UserAccount, UserAccount.id == AccessLog.user_id)
            .where(Visit.facility_id == facility_id, AccessLog.at >= start, AccessLog.at < end)
        ).all()
    watchers: dict[tuple[int | None, str], int] = {}
    for actor_id, label, _visit in watch_rows:
        watchers[(actor_id, label)] = watchers.get((actor_id, label), 0) + 1
    players: dict[tuple[int | None, str], int] = {}
    for user_id, display_name, email, _rec in plays:
        key = (user_id, f"{display_name} <{email}>")
        players[key] = players.get(key, 0) + 1

    def people(counts: dict[tuple[int | None, str], int]) -> list[PersonCount]:
        return sorted(
            (PersonCount(uid, name, n) for (uid, name), n in counts.items()),
            key=lambda pc: (-pc.count, pc.name),
        )

    return Transparency(
        facility_id=facility_id,
        day_from=day_from,
        day_to=day_to,
        visits_held=sum(held.values()),
        social_visits_held=held.get(VisitKind.SOCIAL, 0),
        legal_visits_held=held.get(VisitKind.LEGAL, 0),
        visits_recorded=sum(recorded.values()),
        legal_visits_recorded=recorded.get(VisitKind.LEGAL, 0),
        visits_watched=len({visit for _a, _l, visit in watch_rows}),
        watches=len(watch_rows),
        watchers=people(watchers),
        privileged_watch_attempts=int(attempts),
        playbacks=len(plays),
        recordings_played=len({rec for *_rest, rec in plays}),
        players=people(players),
        terminated=ended.get(VisitStatus.TERMINATED, 0),
        failed=ended.get(VisitStatus.FAILED, 0),
    )


def visit_recordings(ctx: AppContext, visit_id: int) -> list[Recording]:
    """Every recording row of a visit, oldest first (for tests and the visit's record)."""
    with ctx.db.read() as session:
        return list(
            session.execute(
                sa.select(Recording).where(Recording.visit_id == visit_id).order_by(Recording.id)
            ).scalars()
        )
