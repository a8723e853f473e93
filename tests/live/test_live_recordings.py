"""Recordings on SQLite and PostgreSQL: a row per opening of a social visit's room (never one for a legal
visit), finalised or damaged; the investigators' search and its scope; playback logged once per session
(access log and audit) while a player fetches byte ranges; flagging, purging, the transparency figures."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openvisit import cli
from openvisit.db.models import AccessLog, Facility, Recording
from openvisit.domain.enums import RecordingStatus, Role, VisitKind, VisitStatus
from openvisit.domain.errors import Forbidden, InvalidInput, NotFound
from openvisit.media.engine import PrivilegedVisit, RecordingResult
from openvisit.services import live, recordings
from openvisit.services.context import AppContext, RequestMeta
from tests.conftest import TEST_SECRET, FrozenClock
from tests.live.support import Scene, audit_actions, build, staff, token_for, visit

META = RequestMeta(ip="198.51.100.4", user_agent="Player/1.0")
CONTENT = bytes(range(256)) * 40  # 10 240 bytes standing in for a WebM file


@pytest.fixture
def scene(ctx: AppContext) -> Scene:
    return build(ctx)


def recorded(ctx: AppContext, scene: Scene, clock: FrozenClock, *, hours_ago: float = 1) -> int:
    """A finished social visit with one finalised recording; returns the recording's id."""
    visit_id = visit(
        ctx, scene, starts_at=clock.now - timedelta(hours=hours_ago), status=VisitStatus.COMPLETED
    )
    start = recordings.begin(ctx, visit_id)
    start.path.write_bytes(CONTENT)
    result = RecordingResult(
        path=start.path,
        bytes=len(CONTENT),
        duration_seconds=1790.5,
        sha256=hashlib.sha256(CONTENT).hexdigest(),
        playable=True,
    )
    row = recordings.finish(ctx, start.recording_id, result)
    assert row is not None
    return start.recording_id


def access_rows(ctx: AppContext) -> list[AccessLog]:
    with ctx.db.read() as s:
        return list(s.execute(sa.select(AccessLog).order_by(AccessLog.id)).scalars())


def test_a_recording_is_kept_as_long_as_its_facility_says(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    with ctx.db.write() as s:
        s.execute(
            sa.update(Facility)
            .where(Facility.id == scene.place.facility_id)
            .values(recording_retention_days=30)
        )
    social = visit(ctx, scene, starts_at=clock.now, status=VisitStatus.IN_PROGRESS)
    recordings.begin(ctx, social)
    (row,) = recordings.visit_recordings(ctx, social)
    assert row.retain_until == clock.now + timedelta(days=30)


def test_a_social_visit_gets_a_row_per_opening_and_a_legal_one_none(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    social = visit(ctx, scene, starts_at=clock.now, status=VisitStatus.IN_PROGRESS)
    first = recordings.begin(ctx, social)
    clock.advance(minutes=3)
    second = recordings.begin(ctx, social)
    assert first.path != second.path
    assert first.path.parent == ctx.settings.recordings_path.resolve()
    assert first.path.suffix == ".webm"
    rows = recordings.visit_recordings(ctx, social)
    assert [r.status for r in rows] == [RecordingStatus.RECORDING, RecordingStatus.RECORDING]
    assert rows[0].retain_until == clock.now - timedelta(minutes=3) + timedelta(days=90)
    assert audit_actions(ctx, "recording", first.recording_id) == ["recording.started"]

    legal = visit(ctx, scene, starts_at=clock.now + timedelta(hours=2), kind=VisitKind.LEGAL)
    with pytest.raises(PrivilegedVisit):
        recordings.begin(ctx, legal)
    assert recordings.visit_recordings(ctx, legal) == []


def test_finishing_stores_size_duration_and_hash_or_marks_the_file_damaged(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    recording_id = recorded(ctx, scene, clock)
    with ctx.db.read() as s:
        row = s.get(Recording, recording_id)
    assert row is not None
    assert (row.status, row.bytes, row.duration_seconds) == (RecordingStatus.FINALISED, len(CONTENT), 1790.5)
    assert row.sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert row.finalised_at == clock.now
    assert audit_actions(ctx, "recording", recording_id) == ["recording.started", "recording.finalised"]
    assert recordings.finish(ctx, recording_id, None) is None  # finished once

    other = visit(ctx, scene, starts_at=clock.now + timedelta(hours=3), status=VisitStatus.IN_PROGRESS)
    broken = recordings.begin(ctx, other)
    unplayable = RecordingResult(broken.path, 300, 0.0, "0" * 64, playable=False)
    damaged = recordings.finish(ctx, broken.recording_id, unplayable)
    assert damaged is not None
    assert damaged.status is RecordingStatus.DAMAGED
    assert damaged.bytes == 300


def test_investigators_search_their_facility_only(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    today = recorded(ctx, scene, clock, hours_ago=1)
    last_week = recorded(ctx, scene, clock, hours_ago=24 * 7)
    found = recordings.search(ctx, scene.investigator, scene.place.facility_id)
    assert [h.id for h in found] == [today, last_week]
    assert [
        h.id
        for h in recordings.search(
            ctx, scene.investigator, scene.place.facility_id, resident=scene.resident_number.lower()
        )
    ] == [today, last_week]
    assert [
        h.id for h in recordings.search(ctx, scene.investigator, scene.place.facility_id, resident="петров")
    ] == [today, last_week]
    assert recordings.search(ctx, scene.investigator, scene.place.facility_id, resident="Sidorov") == []
    # Days are the facility's (Krasnoyarsk, UTC+7): 08:00 UTC on 2 March is the 2nd there.
    assert [
        h.id
        for h in recordings.search(
            ctx, scene.investigator, scene.place.facility_id, day_from=date(2026, 3, 2)
        )
    ] == [today]
    assert [
        h.id
        for h in recordings.search(ctx, scene.investigator, scene.place.facility_id, day_to=date(2026, 2, 28))
    ] == [last_week]
    elsewhere = build(ctx)
    for outsider in (elsewhere.investigator, scene.officer, scene.admin, scene.visitor):
        with pytest.raises(NotFound):
            recordings.search(ctx, outsider, scene.place.facility_id)
    assert recordings.search(ctx, elsewhere.investigator, elsewhere.place.facility_id) == []
    with pytest.raises(NotFound):
        recordings.start_playback(ctx, elsewhere.investigator, today, META)


def test_a_playback_is_logged_once_and_its_ranges_are_not(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    recording_id = recorded(ctx, scene, clock)
    playback = recordings.start_playback(ctx, scene.investigator, recording_id, META)
    assert playback.expires_at == clock.now + timedelta(hours=recordings.PLAYBACK_HOURS)
    for _ in range(3):
        media = recordings.media_file(ctx, scene.investigator, recording_id, playback.token, META)
        assert media.access_id == playback.access_id
    assert media.content_type == "video/webm"
    rows = access_rows(ctx)
    assert len(rows) == 1
    assert (rows[0].user_id, rows[0].ip, rows[0].user_agent, rows[0].action) == (
        scene.investigator.user_id,
        "198.51.100.4",
        "Player/1.0",
        "playback",
    )
    assert audit_actions(ctx, "recording", recording_id).count("recording.played") == 1
    # Without a session's token, each request is a logged session of its own.
    recordings.media_file(ctx, scene.investigator, recording_id, None, META)
    assert len(access_rows(ctx)) == 2
    # A token is worth nothing to another person or for another recording.
    colleague = staff(ctx, Role.INVESTIGATOR, facility_id=scene.place.facility_id)
    with pytest.raises(Forbidden):
        recordings.media_file(ctx, colleague, recording_id, playback.token, META)
    other_recording = recorded(ctx, scene, clock, hours_ago=5)
    with pytest.raises(Forbidden):
        recordings.media_file(ctx, scene.investigator, other_recording, playback.token, META)
    with pytest.raises(InvalidInput):
        recordings.media_file(ctx, scene.investigator, recording_id, playback.token + "x", META)
    clock.advance(hours=recordings.PLAYBACK_HOURS, seconds=1)
    with pytest.raises(InvalidInput) as expired:
        recordings.media_file(ctx, scene.investigator, recording_id, playback.token, META)
    assert expired.value.code == "token.expired"
    assert len(access_rows(ctx)) == 2


def test_flagged_recordings_outlive_their_retention(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    kept = recorded(ctx, scene, clock, hours_ago=1)
    gone = recorded(ctx, scene, clock, hours_ago=3)
    recordings.flag(ctx, scene.investigator, kept, True, "case 12", META)
    with pytest.raises(NotFound):
        recordings.flag(ctx, scene.officer, gone, True, "", META)
    clock.advance(days=91)
    assert recordings.purge_expired(ctx) == 1
    with ctx.db.read() as s:
        rows = {r.id: r for r in s.execute(sa.select(Recording)).scalars()}
    assert rows[kept].status is RecordingStatus.FINALISED
    assert Path(rows[kept].path).exists()
    assert rows[gone].status is RecordingStatus.PURGED
    assert rows[gone].sha256 is not None
    assert not Path(rows[gone].path).exists()
    assert audit_actions(ctx, "recording", kept)[-1] == "recording.flagged"
    assert audit_actions(ctx, "recording", gone)[-1] == "recording.purged"
    recordings.flag(ctx, scene.investigator, kept, False, "closed", META)
    assert recordings.purge_expired(ctx) == 1


def test_the_transparency_report_counts_recordings_watches_playbacks_and_who(
    ctx: AppContext, scene: Scene, clock: FrozenClock
) -> None:
    recording_id = recorded(ctx, scene, clock, hours_ago=2)
    live_visit = visit(ctx, scene, starts_at=clock.now - timedelta(minutes=5), status=VisitStatus.IN_PROGRESS)
    legal = visit(
        ctx,
        scene,
        starts_at=clock.now + timedelta(hours=5),
        kind=VisitKind.LEGAL,
        status=VisitStatus.COMPLETED,
    )
    live.record_watch(ctx, scene.officer, live_visit, scene.place.facility_id, META)
    live.record_watch(ctx, scene.officer, live_visit, scene.place.facility_id, META)
    with pytest.raises(PrivilegedVisit):
        live.check_watch(ctx, scene.officer, legal, META)
    recordings.start_playback(ctx, scene.investigator, recording_id, META)
    recordings.start_playback(ctx, scene.investigator, recording_id, META)
    report = recordings.transparency(
        ctx, scene.admin, scene.place.facility_id, date(2026, 3, 1), date(2026, 3, 3)
    )
    assert (report.visits_held, report.social_visits_held, report.legal_visits_held) == (3, 2, 1)
    assert (report.visits_recorded, report.legal_visits_recorded) == (1, 0)
    assert (report.visits_watched, report.watches) == (1, 2)
    assert [(w.user_id, w.count) for w in report.watchers] == [(scene.officer.user_id, 2)]
    assert report.privileged_watch_attempts == 1
    assert (report.playbacks, report.recordings_played) == (2, 1)
    assert [(p.user_id, p.count) for p in report.players] == [(scene.investigator.user_id, 2)]
    assert (
        recordings.transparency(
            ctx, scene.investigator, scene.place.facility_id, date(2026, 3, 1), date(2026, 3, 3)
        )
        == report
    )
    empty = recordings.transparency(
        ctx, scene.admin, scene.place.facility_id, date(2026, 1, 1), date(2026, 1, 31)
    )
    assert (empty.visits_held, empty.watches, empty.playbacks) == (0, 0, 0)
    for outsider in (scene.officer, build(ctx).admin):
        with pytest.raises(NotFound):
            recordings.transparency(
                ctx, outsider, scene.place.facility_id, date(2026, 3, 1), date(2026, 3, 3)
            )
    with pytest.raises(InvalidInput):
        recordings.transparency(ctx, scene.admin, scene.place.facility_id, date(2026, 3, 3), date(2026, 3, 1))


def test_a_player_seeks_through_http_ranges_within_one_logged_session(
    ctx: AppContext, scene: Scene, clock: FrozenClock, client: TestClient
) -> None:
    recording_id = recorded(ctx, scene, clock)
    headers = {"Authorization": f"Bearer {token_for(ctx, scene.investigator)}"}
    found = client.get(
        f"/api/v1/facilities/{scene.place.facility_id}/recordings",
        headers=headers,
        params={"resident": scene.resident_number},
    )
    assert found.status_code == 200, found.text
    assert [item["id"] for item in found.json()["items"]] == [recording_id]
    started = client.post(f"/api/v1/recordings/{recording_id}/playback", headers=headers)
    assert started.status_code == 200, started.text
    url = started.json()["url"]
    whole = client.get(url, headers=headers)
    assert whole.status_code == 200
    assert whole.content == CONTENT
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "video/webm"
    assert "no-store" in whole.headers["cache-control"]
    part = client.get(url, headers={**headers, "Range": "bytes=1000-1099"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-1099/{len(CONTENT)}"
    assert part.content == CONTENT[1000:1100]
    tail = client.get(url, headers={**headers, "Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == CONTENT[-10:]
    beyond = client.get(url, headers={**headers, "Range": f"bytes={len(CONTENT) + 5}-"})
    assert beyond.status_code == 416
    assert len(access_rows(ctx)) == 1
    # No token: served, and logged as a session of its own.
    assert client.get(f"/api/v1/recordings/{recording_id}/media", headers=headers).status_code == 200
    assert len(access_rows(ctx)) == 2
    officer = {"Authorization": f"Bearer {token_for(ctx, scene.officer)}"}
    assert client.get(url, headers=officer).status_code == 404
    assert client.post(f"/api/v1/recordings/{recording_id}/playback", headers=officer).status_code == 404
    flagged = client.post(
        f"/api/v1/recordings/{recording_id}/flag", headers=headers, json={"flagged": True, "note": "case"}
    )
    assert flagged.json() == {"id": recording_id, "flagged_for_investigation": True}
    report = client.get(
        f"/api/v1/facilities/{scene.place.facility_id}/transparency",
        headers={"Authorization": f"Bearer {token_for(ctx, scene.admin)}"},
        params={"from": "2026-03-01", "to": "2026-03-02"},
    )
    assert report.status_code == 200, report.text
    assert report.json()["playbacks"] == 2


def test_the_purge_command_deletes_expired_files(ctx: AppContext, scene: Scene, clock: FrozenClock) -> None:
    expired = recorded(ctx, scene, clock, hours_ago=2)
    kept = recorded(ctx, scene, clock, hours_ago=4)
    with ctx.db.write() as s:
        s.execute(
            sa.update(Recording)
            .where(Recording.id == expired)
            .values(retain_until=datetime(2000, 1, 1, tzinfo=UTC))
        )
        s.execute(
            sa.update(Recording)
            .where(Recording.id == kept)
            .values(retain_until=datetime(2100, 1, 1, tzinfo=UTC))
        )
    env = {
        "OPENVISIT_DATABASE_URL": ctx.settings.database_url,
        "OPENVISIT_MODE": "test",
        "OPENVISIT_SECRET_KEY": TEST_SECRET,
        "OPENVISIT_VAR_DIR": str(ctx.settings.var_dir),
    }
    result = CliRunner().invoke(cli.app, ["purge-recordings"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "1 recordings purged"
    statuses = {r.id: r.status for r in recordings.visit_recordings(ctx, load_visit_id(ctx, expired))}
    assert statuses[expired] is RecordingStatus.PURGED
    with ctx.db.read() as s:
        assert s.get(Recording, kept).status is RecordingStatus.FINALISED  # type: ignore[union-attr]


def load_visit_id(ctx: AppContext, recording_id: int) -> int:
    with ctx.db.read() as s:
        row = s.get(Recording, recording_id)
        assert row is not None
        return row.visit_id
