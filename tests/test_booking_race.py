"""Many people book the same time at once, over real HTTP, on SQLite and PostgreSQL.

A real uvicorn server runs on a free port of 127.0.0.1 against the test's database, and 60 requests leave
together (one asyncio client, one connection each); the server's thread pool runs them side by side, so
the database's own guards decide: a single writer (BEGIN IMMEDIATE) on SQLite; on PostgreSQL row locks
on the resident and visitors and the exclusion constraints on time ranges. Exactly one booking wins;
every other gets 409 with the conflict's code, and the database holds the winner's rows and nothing of
the losers': no visit, participant, event, notification or audit entry."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import httpx2
import pytest
import sqlalchemy as sa

from openvisit.db.models import (
    ApiToken,
    AuditEntry,
    Connection,
    Facility,
    HousingUnit,
    Notification,
    Resident,
    SessionTemplate,
    Station,
    StationGroup,
    UserAccount,
    Visit,
    VisitEvent,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    AccountKind,
    ConnectionKind,
    ConnectionStatus,
    Relationship,
    StationKind,
)
from openvisit.services import audit
from openvisit.services.auth import new_token, token_digest
from openvisit.services.context import AppContext
from openvisit.web.app import create_app
from tests.serving import serve_in_thread

CONTENDERS = 60
ZONE = "Asia/Krasnoyarsk"  # UTC+7 all year
# The clock fixture stands at Monday 2 March 2026, 09:00 UTC; Wednesday 10:00 in Krasnoyarsk is 03:00 UTC.
TEN = datetime(2026, 3, 4, 3, 0, tzinfo=UTC)
QUARTER_PAST_TEN = TEN + timedelta(minutes=15)


@pytest.fixture
def server(ctx: AppContext) -> Iterator[str]:
    """The whole app served by uvicorn in a thread, on a port the kernel chose; its base URL."""
    app = create_app(ctx.settings.model_copy(update={"sweep_seconds": 0, "delivery_seconds": 0}), ctx=ctx)
    with serve_in_thread(app, backlog=256) as port:
        yield f"http://127.0.0.1:{port}"


# --- a facility built in one transaction ----------------------------------------------------------


@dataclass
class Scene:
    facility_id: int
    residents: list[int]
    visitors: list[int]
    tokens: list[str]
    """Bearer tokens of the visitors, in the same order."""


def build(
    ctx: AppContext,
    *,
    residents: int,
    visitors: int,
    groups: list[tuple[int, time, StationKind]],
    links: str,
) -> Scene:
    """A facility with one unit; station groups of (how many stations, first start, kind), each with a
    Wednesday session of 30-minute slots from its first start; visitors linked to residents one to one
    (`links="pairs"`) or every visitor to every resident (`"all"`)."""
    now = ctx.clock()
    with ctx.db.write() as s:
        facility = Facility(code="RACE", name="Race", timezone=ZONE, city="Krasnoyarsk")
        s.add(facility)
        s.flush()
        unit = HousingUnit(facility_id=facility.id, code="U", name="U")
        s.add(unit)
        s.flush()
        for g, (count, start, kind) in enumerate(groups):
            group = StationGroup(facility_id=facility.id, name=f"G{g}")
            s.add(group)
            s.flush()
            s.add_all(
                Station(
                    code=f"G{g}S{i:03d}",
                    name=f"Station {g}/{i}",
                    kind=kind,
                    facility_id=facility.id,
                    unit_id=unit.id if kind is StationKind.UNIT_KIOSK else None,
                    room=f"Room {i}" if kind is StationKind.VISITING_ROOM else None,
                    group_id=group.id,
                )
                for i in range(count)
            )
            end = (datetime.combine(date(2026, 1, 1), start) + timedelta(hours=2)).time()
            s.add(
                SessionTemplate(
                    facility_id=facility.id,
                    group_id=group.id,
                    weekday=2,
                    start_time=start,
                    end_time=end,
                    slot_minutes=30,
                    buffer_minutes=0,
                    valid_from=date(2026, 1, 1),
                )
            )
        people = [
            Resident(
                number=f"RACE-{i:04d}",
                last_name="Petrov",
                first_name=str(i),
                birth_date=date(1985, 5, 5),
                facility_id=facility.id,
                unit_id=unit.id,
            )
            for i in range(residents)
        ]
        users = [
            UserAccount(
                email=f"racer{i}@example.org",
                password_hash="-",
                kind=AccountKind.VISITOR,
                display_name=str(i),
            )
            for i in range(visitors)
        ]
        s.add_all([*people, *users])
        s.flush()
        family = [
            Visitor(user_id=u.id, last_name="Ivanova", first_name=str(i), birth_date=date(1980, 1, 1))
            for i, u in enumerate(users)
        ]
        s.add_all(family)
        s.flush()
        pairs = (
            zip(people, family, strict=True) if links == "pairs" else ((r, v) for r in people for v in family)
        )
        s.add_all(
            Connection(
                resident_id=r.id,
                visitor_id=v.id,
                relationship=Relationship.SPOUSE,
                kind=ConnectionKind.SOCIAL,
                status=ConnectionStatus.APPROVED,
            )
            for r, v in pairs
        )
        tokens = [new_token() for _ in users]
        s.add_all(
            ApiToken(token_hash=token_digest(t), user_id=u.id, expires_at=now + timedelta(days=1))
            for t, u in zip(tokens, users, strict=True)
        )
        s.flush()
        return Scene(facility.id, [r.id for r in people], [v.id for v in family], tokens)


# --- firing and counting --------------------------------------------------------------------------


def fire(base_url: str, requests: list[tuple[str, dict[str, Any]]]) -> list[httpx2.Response]:
    """POST every (token, body) to /api/v1/visits at once, one connection each."""

    async def all_at_once() -> list[httpx2.Response]:
        limits = httpx2.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with httpx2.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
            start = asyncio.Event()

            async def one(token: str, body: dict[str, Any]) -> httpx2.Response:
                await start.wait()
                return await client.post(
                    "/api/v1/visits", json=body, headers={"Authorization": f"Bearer {token}"}
                )

            tasks = [asyncio.create_task(one(token, body)) for token, body in requests]
            await asyncio.sleep(0)
            start.set()
            return await asyncio.gather(*tasks)

    return asyncio.run(all_at_once())


def body(resident_id: int, starts_at: datetime) -> dict[str, Any]:
    return {"resident_id": resident_id, "starts_at": starts_at.isoformat()}


@dataclass
class Written:
    visits: list[Visit]
    participants: list[VisitParticipant]
    events: int
    notifications: list[Notification]
    audit_entries: list[AuditEntry]


def written(ctx: AppContext) -> Written:
    with ctx.db.read() as s:
        return Written(
            visits=list(s.execute(sa.select(Visit)).scalars()),
            participants=list(s.execute(sa.select(VisitParticipant)).scalars()),
            events=s.execute(sa.select(sa.func.count()).select_from(VisitEvent)).scalar_one(),
            notifications=list(s.execute(sa.select(Notification)).scalars()),
            audit_entries=list(s.execute(sa.select(AuditEntry)).scalars()),
        )


def outcome(responses: list[httpx2.Response], conflict_codes: set[str]) -> dict[str, Any]:
    """The single winner's body; every other answer is a 409 with one of `conflict_codes`."""
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: len(responses) - 1}, (statuses, [r.text for r in responses][:3])
    codes = Counter(r.json()["error"]["code"] for r in responses if r.status_code == 409)
    assert set(codes) <= conflict_codes, codes
    return next(r.json() for r in responses if r.status_code == 201)


def assert_only_the_winner_was_written(
    ctx: AppContext, winner: dict[str, Any], *, lead_visitor_id: int
) -> None:
    after = written(ctx)
    assert [(v.id, v.status.value) for v in after.visits] == [(winner["id"], "approved")]
    assert after.visits[0].status in ACTIVE_VISIT_STATUSES
    assert [(p.visit_id, p.visitor_id) for p in after.participants] == [(winner["id"], lead_visitor_id)]
    assert after.events == 0
    # The visitor's confirmation and the resident's station message, both about the winner.
    assert len(after.notifications) == 2
    assert {n.visit_id for n in after.notifications} == {winner["id"]}
    assert [(a.action, a.object_id) for a in after.audit_entries] == [("visit.booked", str(winner["id"]))]
    chain = audit.verify(ctx.db)
    assert chain.ok and chain.checked == 1


# --- the races ------------------------------------------------------------------------------------


def test_sixty_families_race_for_the_only_station(ctx: AppContext, server: str) -> None:
    """Sixty residents of one unit, one kiosk, one time: one visit, fifty-nine 'slot taken'."""
    scene = build(
        ctx,
        residents=CONTENDERS,
        visitors=CONTENDERS,
        groups=[(1, time(10, 0), StationKind.UNIT_KIOSK)],
        links="pairs",
    )
    responses = fire(server, [(t, body(r, TEN)) for t, r in zip(scene.tokens, scene.residents, strict=True)])
    winner = outcome(responses, {"visit.slot_taken"})
    assert (winner["starts_at"], winner["status"]) == ("2026-03-04T03:00:00Z", "approved")
    lead = scene.visitors[scene.residents.index(winner["resident_id"])]
    assert_only_the_winner_was_written(ctx, winner, lead_visitor_id=lead)


def test_one_resident_is_booked_once_across_overlapping_times(ctx: AppContext, server: str) -> None:
    """One resident, sixty of their visitors, half at 10:00 on the kiosks and half at 10:15 in the
    visiting rooms (stations to spare in both): the two times overlap, so only one visit is made."""
    scene = build(
        ctx,
        residents=1,
        visitors=CONTENDERS,
        groups=[(3, time(10, 0), StationKind.UNIT_KIOSK), (3, time(10, 15), StationKind.VISITING_ROOM)],
        links="all",
    )
    (resident,) = scene.residents
    times = [TEN if i % 2 else QUARTER_PAST_TEN for i in range(CONTENDERS)]
    responses = fire(server, [(t, body(resident, at)) for t, at in zip(scene.tokens, times, strict=True)])
    winner = outcome(responses, {"visit.resident_busy", "visit.slot_taken"})
    lead = scene.visitors[[r.status_code for r in responses].index(201)]
    assert_only_the_winner_was_written(ctx, winner, lead_visitor_id=lead)


def test_one_visitor_cannot_be_in_sixty_visits_at_once(ctx: AppContext, server: str) -> None:
    """One visitor linked to sixty residents asks for all of them at the same time, stations to spare:
    a visitor is never in two visits at once (PostgreSQL has no constraint on this; the visitor's row
    lock serialises the bookings)."""
    scene = build(
        ctx,
        residents=CONTENDERS,
        visitors=1,
        groups=[(CONTENDERS, time(10, 0), StationKind.UNIT_KIOSK)],
        links="all",
    )
    (token,) = scene.tokens
    responses = fire(server, [(token, body(r, TEN)) for r in scene.residents])
    winner = outcome(responses, {"visit.visitor_busy"})
    assert_only_the_winner_was_written(ctx, winner, lead_visitor_id=scene.visitors[0])
