"""Scheduling on a generated facility: 40 unit kiosks in 10 housing units, 2,000 residents each with an
approved visitor, sessions every day 08:00-20:00 (30-minute visits, 5 minutes' changeover) and 20,000
visits already there, written in bulk: 3,360 in the next fourteen days (one kiosk of each unit booked at
every slot, and in one busy unit three of its four) and 16,640 in the six weeks before. That is about
1.4 visits per resident a week, within DOMAIN.md's "two a week to one or two a month". What is measured
goes through the real code:

- availability: services.scheduling.availability for one resident (as their visitor) over the public
  window of 14 days; p50 and p95 of a few hundred calls for random residents, one in ten of them in the
  busy unit (their p50 is given apart: each of their slots is checked against three full kiosks).
- service bookings/s: services.scheduling.book_visit, one booking after another, each its own transaction
  (p50 and p95 of each call).
- HTTP bookings/s: POST /api/v1/visits with bearer tokens against `uvicorn` (one worker, a process of its
  own), from concurrent keep-alive clients in a third process (a minimal HTTP/1.1 client on asyncio
  streams, so that the load generator takes little of the machine: its CPU per request is printed beside
  the server's); p50 and p95 as the clients see them, and the server process's CPU per booking. Before
  they are measured, a few hundred other bookings warm the server up (its caches of template slots and
  statements, the database's prepared statements on each pooled connection), as a server that has been
  running has them: a booking window opens on a running server.
- HTTP GET /api/v1/me/s: the same server and clients asking only who they are (the bearer token
  checked, nothing else): the most any authenticated request gets on this machine, for comparison.
- contention: that many visitors of one unit POST the same time at once, when one kiosk is left: one must
  win and every other get 409.
- double bookings: afterwards, pairs of active visits that overlap on one station, resident or visitor
  (must be 0).

Every booking measured is one that must succeed (a different resident at a free time). The facility's
allowance is 8 visits a week, so that the generated load never runs into it. For scale: a booking sends
at most 5 SQL statements on PostgreSQL (10 on SQLite), an availability 3, and the bearer token of any
request 1 (tests/test_scheduling_speed.py holds them to it). `python -m
benchmarks.scheduling --quick` runs a small version and prints one JSON line at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx2
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from benchmarks import BenchConfig, Figure
from benchmarks.databases import postgresql_database, sqlite_database
from openvisit.db.database import Database
from openvisit.db.models import (
    ApiToken,
    Connection,
    Facility,
    HousingUnit,
    Resident,
    SessionTemplate,
    Station,
    StationGroup,
    UserAccount,
    Visit,
    Visitor,
    VisitParticipant,
)
from openvisit.domain.enums import (
    ACTIVE_VISIT_STATUSES,
    AccountKind,
    ConnectionKind,
    ConnectionStatus,
    ParticipantRole,
    Relationship,
    StationKind,
    VisitKind,
    VisitMode,
    VisitStatus,
)
from openvisit.domain.principal import Principal
from openvisit.services import scheduling
from openvisit.services.auth import new_token, principal_for_user, token_digest
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from openvisit.settings import Settings

TITLE = "Scheduling: availability, booking, contention"
ZONE = "Europe/Moscow"
FIRST_START = clock_time(8, 0)
SESSION_END = clock_time(20, 0)
SLOT_MINUTES, BUFFER_MINUTES = 30, 5
SLOTS_PER_DAY = 20  # 08:00, 08:35, ... 19:05
WINDOW_DAYS = 14
META = RequestMeta(ip="bench")
BUSY_UNIT = 0
CONTENTION = (WINDOW_DAYS - 1, SLOTS_PER_DAY - 1, BUSY_UNIT)
"""(day, slot, unit) of the contention run: the last slot of the window in the busy unit, where one kiosk
is left and no measured booking goes."""


@dataclass(frozen=True)
class Size:
    units: int
    kiosks_per_unit: int
    residents: int
    visits: int
    availability_calls: int
    service_bookings: int
    http_bookings: int
    http_warmup: int
    """Bookings over HTTP before the measured ones, not counted: a server that has been running."""
    http_clients: int
    contenders: int

    def booked_kiosks(self, unit: int) -> int:
        """How many of a unit's kiosks are booked at every slot of the next fourteen days: all but one in
        the first unit (the busy one), one elsewhere."""
        return self.kiosks_per_unit - 1 if unit == BUSY_UNIT else 1

    @property
    def future_visits(self) -> int:
        return sum(self.booked_kiosks(u) for u in range(self.units)) * SLOTS_PER_DAY * WINDOW_DAYS

    def describe(self) -> str:
        return (
            f"{self.units * self.kiosks_per_unit} stations, {self.residents:,} residents, "
            f"{self.visits:,} visits"
        )


FULL = Size(
    units=10,
    kiosks_per_unit=4,
    residents=2_000,
    visits=20_000,
    availability_calls=300,
    service_bookings=800,
    http_bookings=1_200,
    http_warmup=200,
    http_clients=16,
    contenders=100,
)
QUICK = Size(
    units=2,
    kiosks_per_unit=4,
    residents=200,
    visits=2_000,
    availability_calls=40,
    service_bookings=100,
    http_bookings=200,
    http_warmup=50,
    http_clients=8,
    contenders=50,
)


# --- the generated facility -----------------------------------------------------------------------


@dataclass
class Generated:
    facility_id: int
    units: list[int]
    residents: list[list[int]]
    """Resident ids per unit, in order."""
    visitors: dict[int, tuple[int, int, str]]
    """Per resident: their visitor's id, user id and bearer token."""
    today: date


def slot_start(day: date, k: int) -> datetime:
    """The k-th visit of the day in the facility's time, in UTC."""
    wall = datetime.combine(day, FIRST_START) + timedelta(minutes=k * (SLOT_MINUTES + BUFFER_MINUTES))
    return wall.replace(tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


def existing_resident(day_offset: int, k: int, j: int, per_unit: int) -> int:
    """Which resident of a unit has the visit on kiosk j at slot k of a day: they take turns, three per
    slot at most, so the resident `per_unit // 2` places further on is free at that time."""
    return (day_offset * 3 * SLOTS_PER_DAY + k * 3 + j) % per_unit


def generate(db: Database, size: Size, say: Any) -> Generated:
    """The facility, its people and its visits, in bulk (not through the services)."""
    rnd = random.Random(7)
    today = datetime.now(ZoneInfo(ZONE)).date()
    per_unit = size.residents // size.units
    with db.write() as s:
        facility = Facility(
            code="BENCH", name="Bench colony", timezone=ZONE, city="Moscow", allowance_count=8
        )
        s.add(facility)
        s.flush()
        units, groups = [], []
        for u in range(size.units):
            unit = HousingUnit(facility_id=facility.id, code=f"U{u}", name=f"Unit {u}")
            group = StationGroup(facility_id=facility.id, name=f"Kiosks {u}")
            s.add_all([unit, group])
            s.flush()
            units.append(unit.id)
            groups.append(group.id)
        stations: list[list[int]] = []
        for u, (unit_id, group_id) in enumerate(zip(units, groups, strict=True)):
            kiosks = [
                Station(
                    code=f"K{u:02d}-{j}",
                    name=f"Kiosk {u}/{j}",
                    kind=StationKind.UNIT_KIOSK,
                    facility_id=facility.id,
                    unit_id=unit_id,
                    group_id=group_id,
                )
                for j in range(size.kiosks_per_unit)
            ]
            s.add_all(kiosks)
            s.add_all(
                SessionTemplate(
                    facility_id=facility.id,
                    group_id=group_id,
                    weekday=weekday,
                    start_time=FIRST_START,
                    end_time=SESSION_END,
                    slot_minutes=SLOT_MINUTES,
                    buffer_minutes=BUFFER_MINUTES,
                    valid_from=today - timedelta(days=60),
                )
                for weekday in range(7)
            )
            s.flush()
            stations.append([k.id for k in kiosks])
        say(f"    {size.residents:,} residents and their visitors")
        s.execute(
            sa.insert(Resident),
            [
                {
                    "number": f"B-{n:06d}",
                    "last_name": "Петров",
                    "first_name": "Иван",
                    "middle_name": "",
                    "birth_date": date(1960, 1, 1) + timedelta(days=rnd.randrange(365 * 40)),
                    "facility_id": facility.id,
                    "unit_id": units[n // per_unit],
                }
                for n in range(size.residents)
            ],
        )
        resident_ids = list(s.execute(sa.select(Resident.id).order_by(Resident.id)).scalars())
        s.execute(
            sa.insert(UserAccount),
            [
                {
                    "email": f"family{n}@example.org",
                    "password_hash": "-",
                    "kind": AccountKind.VISITOR,
                    "display_name": f"Family {n}",
                    "language": "ru",
                    "timezone": ZONE,
                }
                for n in range(size.residents)
            ],
        )
        user_ids = list(s.execute(sa.select(UserAccount.id).order_by(UserAccount.id)).scalars())
        s.execute(
            sa.insert(Visitor),
            [
                {
                    "user_id": user_id,
                    "last_name": "Петрова",
                    "first_name": "Анна",
                    "birth_date": date(1975, 1, 1),
                }
                for user_id in user_ids
            ],
        )
        visitor_ids = list(s.execute(sa.select(Visitor.id).order_by(Visitor.id)).scalars())
        s.execute(
            sa.insert(Connection),
            [
                {
                    "resident_id": r,
                    "visitor_id": v,
                    "relationship": Relationship.SPOUSE,
                    "kind": ConnectionKind.SOCIAL,
                    "status": ConnectionStatus.APPROVED,
                }
                for r, v in zip(resident_ids, visitor_ids, strict=True)
            ],
        )
        tokens = [new_token() for _ in user_ids]
        expires = datetime.now(UTC) + timedelta(days=2)
        s.execute(
            sa.insert(ApiToken),
            [
                {"token_hash": token_digest(t), "user_id": user_id, "name": "bench", "expires_at": expires}
                for t, user_id in zip(tokens, user_ids, strict=True)
            ],
        )
        by_unit = [resident_ids[u * per_unit : (u + 1) * per_unit] for u in range(size.units)]
        visitor_of = {
            r: (v, user_id, t)
            for r, v, user_id, t in zip(resident_ids, visitor_ids, user_ids, tokens, strict=True)
        }

        say(f"    {size.visits:,} visits")
        rows: list[dict[str, Any]] = []
        # The coming fourteen days: kiosks 0..n-2 of every unit at every slot.
        for d in range(WINDOW_DAYS):
            for k in range(SLOTS_PER_DAY):
                start = slot_start(today + timedelta(days=d), k)
                for u in range(size.units):
                    for j in range(size.booked_kiosks(u)):
                        resident = by_unit[u][existing_resident(d, k, j, per_unit)]
                        rows.append(
                            _visit(facility.id, resident, stations[u][j], start, VisitStatus.APPROVED)
                        )
        # The past: the two first kiosks of every unit, day after day backwards; one in ten cancelled.
        d, k, u, j = -1, 0, 0, 0
        while len(rows) < size.visits:
            start = slot_start(today + timedelta(days=d), k)
            resident = by_unit[u][existing_resident(d, k, j, per_unit)]
            status = VisitStatus.CANCELLED if rnd.random() < 0.1 else VisitStatus.COMPLETED
            rows.append(_visit(facility.id, resident, stations[u][j], start, status))
            j = (j + 1) % 2
            if j == 0:
                u = (u + 1) % size.units
                if u == 0:
                    k = (k + 1) % SLOTS_PER_DAY
                    d -= 1 if k == 0 else 0
        for chunk in range(0, len(rows), 5_000):
            s.execute(sa.insert(Visit), rows[chunk : chunk + 5_000])
        visits = s.execute(sa.select(Visit.id, Visit.resident_id).order_by(Visit.id)).all()
        s.execute(
            sa.insert(VisitParticipant),
            [
                {"visit_id": visit_id, "visitor_id": visitor_of[resident_id][0], "role": ParticipantRole.LEAD}
                for visit_id, resident_id in visits
            ],
        )
    # Statistics, as autovacuum would have them on a server in use (committed: ANALYZE is transactional).
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return Generated(facility.id, units, by_unit, visitor_of, today)


def _visit(
    facility_id: int, resident_id: int, station_id: int, start: datetime, status: VisitStatus
) -> dict[str, Any]:
    return {
        "kind": VisitKind.SOCIAL,
        "mode": VisitMode.HOME,
        "status": status,
        "facility_id": facility_id,
        "resident_id": resident_id,
        "station_id": station_id,
        "starts_at": start,
        "ends_at": start + timedelta(minutes=SLOT_MINUTES),
        "reason": "visitor_cancelled" if status is VisitStatus.CANCELLED else None,
        "notes": "",
        "reason_note": "",
    }


def free_bookings(f: Generated, size: Size) -> list[tuple[int, datetime]]:
    """(resident, start) pairs that can all be booked, each on a unit's last kiosk at a slot of its own,
    from the day after tomorrow (clear of the 24 hours' notice) to the end of the window."""
    per_unit = size.residents // size.units
    found = []
    for d in range(2, WINDOW_DAYS):
        for k in range(SLOTS_PER_DAY):
            for u in range(size.units):
                if (d, k, u) == CONTENTION:
                    continue
                resident = f.residents[u][(existing_resident(d, k, 0, per_unit) + per_unit // 2) % per_unit]
                found.append((resident, slot_start(f.today + timedelta(days=d), k)))
    random.Random(11).shuffle(found)
    return found


# --- measuring ------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def principal(db: Database, user_id: int) -> Principal:
    with db.read() as s:
        user = s.get(UserAccount, user_id)
        assert user is not None
        return principal_for_user(s, user)


def measure_availability(ctx: AppContext, f: Generated, size: Size) -> tuple[list[float], list[float]]:
    """Seconds per call for residents of every unit (one in ten from the busy one), and for those of the
    busy unit alone."""
    rnd = random.Random(3)
    elsewhere = [r for u, unit in enumerate(f.residents) if u != BUSY_UNIT for r in unit]
    chosen = rnd.sample(f.residents[BUSY_UNIT], 5) + rnd.sample(elsewhere, 45)
    rnd.shuffle(chosen)
    people = {r: principal(ctx.db, f.visitors[r][1]) for r in chosen}
    busy = set(f.residents[BUSY_UNIT])
    for r in chosen[:3]:  # warm up
        scheduling.availability(ctx, people[r], r)
    samples, busy_samples = [], []
    for i in range(size.availability_calls):
        r = chosen[i % len(chosen)]
        started = time.perf_counter()
        result = scheduling.availability(ctx, people[r], r)
        elapsed = time.perf_counter() - started
        samples.append(elapsed)
        if r in busy:
            busy_samples.append(elapsed)
        if not result.times:
            raise RuntimeError("availability offered nothing; the generated facility is wrong")
    return samples, busy_samples


def measure_service_bookings(
    ctx: AppContext, f: Generated, todo: list[tuple[int, datetime]]
) -> tuple[float, list[float]]:
    people = {r: principal(ctx.db, f.visitors[r][1]) for r, _ in todo}
    samples = []
    started = time.perf_counter()
    for resident, starts_at in todo:
        t0 = time.perf_counter()
        scheduling.book_visit(
            ctx, people[resident], BookingRequest(resident_id=resident, starts_at=starts_at), META
        )
        samples.append(time.perf_counter() - t0)
    return time.perf_counter() - started, samples


@dataclass
class Server:
    """The uvicorn process: its address, and the CPU it used while a load ran."""

    base: str
    pid: int
    cpu_used: float = 0.0

    def cpu_seconds(self) -> float:
        """User and system CPU time of the server process so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def http_server(database_url: str) -> Iterator[Server]:
    """`uvicorn` serving the app over `database_url` in a process of its own, with the real clock."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="openvisit-bench-var-") as var:
        env = {
            **os.environ,
            "OPENVISIT_MODE": "test",
            "OPENVISIT_DATABASE_URL": database_url,
            "OPENVISIT_SECRET_KEY": secrets.token_hex(32),
            "OPENVISIT_VAR_DIR": var,
            "OPENVISIT_SWEEP_SECONDS": "0",
            "OPENVISIT_DELIVERY_SECONDS": "0",
        }
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "openvisit.cli:app_from_environment",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        process = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter and module
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP server did not start")
                time.sleep(0.1)
            yield Server(base, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)


@dataclass(frozen=True)
class Request:
    """One HTTP request of the load: method, path, bearer token and JSON body (or none)."""

    method: str
    path: str
    token: str
    body: bytes | None = None

    def encode(self, host: str) -> bytes:
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {self.token}\r\nAccept: application/json\r\n"
        )
        if self.body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n"
        return (head + "\r\n").encode("ascii") + (self.body or b"")


@dataclass(frozen=True)
class LoadResult:
    """What the clients saw, and how much CPU the load generator itself used (to check it was not the
    bottleneck)."""

    elapsed: float
    latencies: list[float]
    outcomes: Counter[str]
    client_cpu_s: float


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one request on a keep-alive connection and read its response (Content-Length bodies)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
        elif name.strip().lower() == "transfer-encoding":
            raise RuntimeError("the load generator reads Content-Length bodies only")
    body = await reader.readexactly(length) if length else b""
    return status, body


async def _run_load(host: str, port: int, requests: list[Request], clients: int) -> LoadResult:
    """Every request once, from `clients` concurrent keep-alive connections, each waiting for its answer
    before sending the next (no pipelining), as browsers and API clients do."""
    queue = [r.encode(f"{host}:{port}") for r in reversed(requests)]
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                request = queue.pop()
                t0 = time.perf_counter()
                status, body = await _exchange(reader, writer, request)
                latencies.append(time.perf_counter() - t0)
                outcomes[str(status) if status < 400 else json.loads(body)["error"]["code"]] += 1
        finally:
            writer.close()
            await writer.wait_closed()

    cpu = time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return LoadResult(elapsed, latencies, outcomes, time.process_time() - cpu)


def _load_process(base: str, requests: list[Request], clients: int) -> LoadResult:
    host, _, port = base.removeprefix("http://").partition(":")
    return asyncio.run(_run_load(host, int(port), requests, clients))


def load(server: Server, requests: list[Request], clients: int) -> LoadResult:
    """Run the load from a process of its own (not this one, whose CPU the server would share with the
    interpreter that generated the facility), and note how much CPU the server used meanwhile."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        pool.submit(int, 0).result()  # the process started and imported before the clock starts
        before = server.cpu_seconds()
        result = pool.submit(_load_process, server.base, requests, clients).result()
        server.cpu_used += server.cpu_seconds() - before
    return result


def measure_http_floor(server: Server, f: Generated, size: Size) -> LoadResult:
    """GET /api/v1/me (bearer token checked, the caller read, nothing else): what the server, the clients
    and the machine allow any authenticated request, booking or not."""
    tokens = [token for _, _, token in f.visitors.values()][: size.http_bookings]
    result = load(server, [Request("GET", "/api/v1/me", t) for t in tokens], size.http_clients)
    if result.outcomes != Counter({"200": len(tokens)}):
        raise RuntimeError(f"GET /api/v1/me did not always answer 200: {dict(result.outcomes)}")
    return result


def _booking(f: Generated, resident: int, starts_at: datetime) -> Request:
    body = json.dumps({"resident_id": resident, "starts_at": starts_at.isoformat()}).encode()
    return Request("POST", "/api/v1/visits", f.visitors[resident][2], body)


def measure_http_bookings(
    server: Server, f: Generated, todo: list[tuple[int, datetime]], clients: int
) -> LoadResult:
    result = load(server, [_booking(f, r, at) for r, at in todo], clients)
    if result.outcomes != Counter({"201": len(todo)}):
        raise RuntimeError(f"bookings that should all succeed did not: {dict(result.outcomes)}")
    return result


def measure_contention(server: Server, f: Generated, size: Size) -> LoadResult:
    """`contenders` residents of one unit (free at that time) want the last kiosk at one slot, at once."""
    per_unit = size.residents // size.units
    d, k, _ = CONTENTION
    taken = {existing_resident(d, k, j, per_unit) for j in range(size.booked_kiosks(BUSY_UNIT))}
    taken.add((existing_resident(d, k, 0, per_unit) + per_unit // 2) % per_unit)
    free = [i for i in range(per_unit) if i not in taken][: size.contenders]
    starts_at = slot_start(f.today + timedelta(days=d), k)
    requests = [_booking(f, f.residents[0][i], starts_at) for i in free]
    return load(server, requests, len(requests))


def double_bookings(db: Database) -> int:
    """Pairs of active visits that overlap on one station, one resident or one visitor."""
    a, b = aliased(Visit), aliased(Visit)
    pa, pb = aliased(VisitParticipant), aliased(VisitParticipant)
    active = tuple(ACTIVE_VISIT_STATUSES)

    def overlapping(*on: sa.ColumnElement[bool]) -> sa.Select[Any]:
        return (
            sa.select(sa.func.count())
            .select_from(a)
            .join(b, sa.and_(a.id < b.id, a.starts_at < b.ends_at, b.starts_at < a.ends_at, *on))
            .where(a.status.in_(active), b.status.in_(active))
        )

    with db.read() as s:
        by_station: int = s.execute(overlapping(a.station_id == b.station_id)).scalar_one()
        by_resident: int = s.execute(overlapping(a.resident_id == b.resident_id)).scalar_one()
        by_visitor: int = s.execute(
            overlapping()
            .join(pa, pa.visit_id == a.id)
            .join(pb, sa.and_(pb.visit_id == b.id, pb.visitor_id == pa.visitor_id))
        ).scalar_one()
    return by_station + by_resident + by_visitor


# --- one database, then all -----------------------------------------------------------------------


def measure_backend(db: Database, engine: str, size: Size, say: Any) -> dict[str, Any]:
    """Generate the facility in `db` and run every measurement; the figures as plain numbers."""
    if size.visits < size.future_visits:
        raise ValueError(f"{size} has fewer visits than the next fourteen days hold")
    say(f"  {engine}: generating {size.describe()}")
    started = time.perf_counter()
    f = generate(db, size, say)
    say(f"    in {time.perf_counter() - started:.1f} s")
    ctx = AppContext(settings=Settings(mode="test", database_url="sqlite://", secret_key="x" * 40), db=db)  # type: ignore[arg-type]
    todo = free_bookings(f, size)
    service_todo = todo[: size.service_bookings]
    http_todo = todo[size.service_bookings : size.service_bookings + size.http_bookings]
    warmup_todo = todo[size.service_bookings + size.http_bookings :][: size.http_warmup]
    if len(http_todo) < size.http_bookings or len(warmup_todo) < size.http_warmup:
        raise RuntimeError("the generated facility has too few free times for the bookings asked for")

    say(f"  {engine}: availability, {size.availability_calls} calls")
    availability, busy_unit = measure_availability(ctx, f, size)
    say(f"  {engine}: {len(service_todo)} bookings through the service layer")
    service_elapsed, service = measure_service_bookings(ctx, f, service_todo)
    url = db.engine.url.render_as_string(hide_password=False)
    with http_server(url) as server:
        say(f"  {engine}: {size.http_bookings} GET /api/v1/me from {size.http_clients} clients")
        floor = measure_http_floor(server, f, size)
        say(f"  {engine}: {len(warmup_todo)} bookings over HTTP to warm up, not counted")
        measure_http_bookings(server, f, warmup_todo, size.http_clients)
        say(f"  {engine}: {len(http_todo)} bookings over HTTP from {size.http_clients} clients")
        server.cpu_used = 0.0
        http = measure_http_bookings(server, f, http_todo, size.http_clients)
        http_server_cpu = server.cpu_used
        say(f"  {engine}: contention, {size.contenders} requests for one kiosk at once")
        contention = measure_contention(server, f, size)
    doubles = double_bookings(db)
    figures = {
        "availability_p50_ms": statistics.median(availability) * 1000,
        "availability_p95_ms": percentile(availability, 0.95) * 1000,
        "availability_busy_unit_p50_ms": statistics.median(busy_unit) * 1000,
        "service_bookings_per_s": len(service) / service_elapsed,
        "service_p50_ms": statistics.median(service) * 1000,
        "service_p95_ms": percentile(service, 0.95) * 1000,
        "http_bookings_per_s": len(http.latencies) / http.elapsed,
        "http_p50_ms": statistics.median(http.latencies) * 1000,
        "http_p95_ms": percentile(http.latencies, 0.95) * 1000,
        "http_clients": size.http_clients,
        "http_server_cpu_ms": http_server_cpu / len(http.latencies) * 1000,
        "http_client_cpu_ms": http.client_cpu_s / len(http.latencies) * 1000,
        "http_me_per_s": len(floor.latencies) / floor.elapsed,
        "contenders": size.contenders,
        "contention_booked": contention.outcomes.get("201", 0),
        "contention_refused": dict(sorted((k, v) for k, v in contention.outcomes.items() if k != "201")),
        "contention_s": contention.elapsed,
        "double_bookings": doubles,
    }
    say(f"  {engine}: {json.dumps(figures)}")
    if figures["contention_booked"] != 1 or doubles:
        raise RuntimeError(f"a booking was doubled: {figures}")
    return figures


def measure_all(config: BenchConfig, size: Size) -> dict[str, dict[str, Any]]:
    backends: list[AbstractContextManager[tuple[Database, str]]] = [
        sqlite_database(),
        postgresql_database(config.pg_admin_url),
    ]
    results = {}
    for backend in backends:
        with backend as (db, engine):
            results[engine] = measure_backend(db, engine, size, config.say)
    return results


def _row(size: Size, figures: dict[str, Any]) -> dict[str, str]:
    refused = ", ".join(f"{n} {code}" for code, n in figures["contention_refused"].items())
    return {
        "facility": size.describe(),
        "availability p50 / p95": (
            f"{figures['availability_p50_ms']:.1f} / {figures['availability_p95_ms']:.1f} ms"
        ),
        "busy unit p50": f"{figures['availability_busy_unit_p50_ms']:.1f} ms",
        "service bookings/s (p50 / p95)": (
            f"{figures['service_bookings_per_s']:,.0f} ({figures['service_p50_ms']:.1f} / "
            f"{figures['service_p95_ms']:.1f} ms)"
        ),
        "HTTP bookings/s (p50 / p95)": (
            f"{figures['http_bookings_per_s']:,.0f} ({figures['http_p50_ms']:.1f} / "
            f"{figures['http_p95_ms']:.1f} ms, {figures['http_clients']} clients)"
        ),
        "server CPU per HTTP booking": f"{figures['http_server_cpu_ms']:.1f} ms",
        "HTTP GET /api/v1/me/s": f"{figures['http_me_per_s']:,.0f}",
        "contention": (
            f"{figures['contenders']} at once: {figures['contention_booked']} booked, {refused},"
            f" {figures['contention_s']:.2f} s"
        ),
        "double bookings": str(figures["double_bookings"]),
    }


def run(config: BenchConfig) -> list[Figure]:
    """The full run (or the quick one when `python -m benchmarks --scale` asks for less), both databases."""
    size = FULL if config.scale >= 1 else QUICK
    return [
        Figure(key={"database": engine}, values=_row(size, figures))
        for engine, figures in measure_all(config, size).items()
    ]


def summary(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One JSON object: the worst availability figures, HTTP bookings/s on PostgreSQL (the target's
    setting; SQLite's when there is no PostgreSQL), double bookings summed, and every backend's figures."""
    pg = [f for engine, f in results.items() if engine.startswith("PostgreSQL")]
    main = pg[0] if pg else next(iter(results.values()))
    return {
        "availability_p50_ms": round(max(f["availability_p50_ms"] for f in results.values()), 2),
        "availability_p95_ms": round(max(f["availability_p95_ms"] for f in results.values()), 2),
        "bookings_per_s": round(main["http_bookings_per_s"], 1),
        "service_bookings_per_s": round(min(f["service_bookings_per_s"] for f in results.values()), 1),
        "double_bookings": sum(f["double_bookings"] for f in results.values()),
        "backends": {
            engine: {k: round(v, 2) if isinstance(v, float) else v for k, v in f.items()}
            for engine, f in results.items()
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scheduling", description=TITLE)
    parser.add_argument(
        "--quick", action="store_true", help="a small facility and few calls (under a minute)"
    )
    args = parser.parse_args(argv)
    config = BenchConfig(say=lambda line: print(line, file=sys.stderr, flush=True))
    results = measure_all(config, QUICK if args.quick else FULL)
    print(json.dumps(summary(results), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
