"""What keeps scheduling fast, held to account on both databases: how many statements a booking, an
availability and an authenticated request send; the audit chain appended at COMMIT (in order, never for
a transaction that rolled back); a revoked token refused at once; a dropped connection survived."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import event

from openvisit.db.database import Database, create_db_engine
from openvisit.db.models import AuditEntry, Notification, VisitParticipant
from openvisit.domain.enums import ConnectionStatus
from openvisit.domain.principal import SYSTEM
from openvisit.services import audit, auth, scheduling
from openvisit.services.context import AppContext, RequestMeta
from openvisit.services.scheduling import BookingRequest
from tests.factories import (
    PASSWORD,
    connect,
    make_facility,
    make_resident,
    make_schedule,
    make_visitor,
    principal_of,
)

# The clock stands at Monday 2 March 2026, 09:00 UTC; Wednesday 09:00 in Krasnoyarsk (UTC+7) is 02:00 UTC.
WEDNESDAY_NINE = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)
META = RequestMeta(ip="test")

BOOKING_STATEMENTS = {"postgresql": 5, "sqlite": 10}
"""Resident (locked, with the facility's rules and schedule stamp and the caller's link), the day's
templates with the stations (only the first time under a stamp), the party (locked), everything in the
way; then on PostgreSQL the visit with its party, messages and audit entry (chained there), on SQLite
the visit, party, messages, audit head, entry and head again."""


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements sent while the block runs (BEGIN, COMMIT and ROLLBACK left out)."""
    sent: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.split(" ", 1)[0] not in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", count)


def _booking_world(ctx: AppContext) -> tuple[int, str, int]:
    place = make_facility(ctx)
    make_schedule(ctx, place, extra_kiosks=1)
    resident_id, _ = make_resident(ctx, place)
    email, visitor_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    return resident_id, email, visitor_id


def test_a_booking_sends_few_statements(ctx: AppContext, backend: str) -> None:
    resident_id, email, visitor_id = _booking_world(ctx)
    p = principal_of(ctx, email)
    with statements(ctx.db) as sent:
        booked = scheduling.book_visit(ctx, p, BookingRequest(resident_id, WEDNESDAY_NINE), META)
    assert len(sent) <= BOOKING_STATEMENTS[backend], sent
    with ctx.db.read() as s:
        party = s.execute(sa.select(VisitParticipant).where(VisitParticipant.visit_id == booked.visit.id))
        assert [(x.visitor_id, x.role.value) for x in party.scalars()] == [(visitor_id, "lead")]
        channels = s.execute(
            sa.select(Notification.channel).where(Notification.visit_id == booked.visit.id)
        ).scalars()
        assert sorted(c.value for c in channels) == ["email", "station"]
    assert audit.verify(ctx.db).ok
    # The same day again: its templates and stations are known under the facility's stamp.
    scheduling.cancel_visit(ctx, p, booked.visit.id, META)
    with statements(ctx.db) as again:
        scheduling.book_visit(ctx, p, BookingRequest(resident_id, WEDNESDAY_NINE), META)
    assert len(again) <= BOOKING_STATEMENTS[backend] - 1, again


def test_availability_sends_three_statements(ctx: AppContext) -> None:
    resident_id, email, _ = _booking_world(ctx)
    p = principal_of(ctx, email)
    with statements(ctx.db) as sent:
        found = scheduling.availability(ctx, p, resident_id)
    assert found.times
    assert len(sent) == 3, sent
    # Asked again: the facility's templates and stations are known under its stamp.
    with statements(ctx.db) as again:
        assert scheduling.availability(ctx, p, resident_id).times == found.times
    assert len(again) == 2, again


def test_an_authenticated_request_reads_its_caller_in_one_statement(
    ctx: AppContext, client: TestClient
) -> None:
    _, email, _ = _booking_world(ctx)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    client.get("/api/v1/me", headers=headers)
    with statements(ctx.db) as sent:
        me = client.get("/api/v1/me", headers=headers)
    assert me.status_code == 200
    assert len(sent) == 1, sent


def test_a_booking_over_http_finds_its_caller_in_its_own_transaction(
    ctx: AppContext, client: TestClient, backend: str
) -> None:
    resident_id, email, _ = _booking_world(ctx)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    body = {"resident_id": resident_id, "starts_at": WEDNESDAY_NINE.isoformat()}
    checkouts: list[object] = []

    def checked_out(*_: object) -> None:
        checkouts.append(_)

    event.listen(ctx.db.engine, "checkout", checked_out)
    try:
        with statements(ctx.db) as sent:
            booked = client.post("/api/v1/visits", json=body, headers=headers)
    finally:
        event.remove(ctx.db.engine, "checkout", checked_out)
    assert booked.status_code == 201, booked.text
    # One pooled connection for the whole request: the token's row is the booking's first statement.
    assert len(checkouts) == 1
    assert len(sent) <= BOOKING_STATEMENTS[backend] + 1, sent
    assert "api_token" in sent[0]


def test_a_booking_survives_a_dropped_connection(ctx: AppContext, client: TestClient, backend: str) -> None:
    if backend != "postgresql":
        return
    resident_id, email, _ = _booking_world(ctx)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    _drop_all_connections(ctx)
    body = {"resident_id": resident_id, "starts_at": WEDNESDAY_NINE.isoformat()}
    booked = client.post("/api/v1/visits", json=body, headers=headers)
    assert booked.status_code == 201, booked.text
    assert audit.verify(ctx.db).ok


def test_a_revoked_token_is_refused_at_once(ctx: AppContext, client: TestClient) -> None:
    _, email, _ = _booking_world(ctx)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    refused = client.get("/api/v1/me", headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "auth.invalid_token"


def test_audit_entries_are_chained_at_commit_in_order(ctx: AppContext) -> None:
    with ctx.db.write() as session:
        for i in range(3):
            audit.record(session, SYSTEM, "test.ordered", "thing", i, at=ctx.clock())
        # Nothing is written, and the head is not locked, before the transaction commits.
        assert session.execute(sa.select(sa.func.count()).select_from(AuditEntry)).scalar_one() == 0

    def failing_use_case() -> None:
        with ctx.db.write() as session:
            audit.record(session, SYSTEM, "test.rolled_back", "thing", 9, at=ctx.clock())
            raise RuntimeError("the use case failed")

    with pytest.raises(RuntimeError):
        failing_use_case()
    with ctx.db.read() as session:
        rows = session.execute(sa.select(AuditEntry.seq, AuditEntry.object_id).order_by(AuditEntry.seq))
        assert [tuple(r) for r in rows] == [(1, "0"), (2, "1"), (3, "2")]
    result = audit.verify(ctx.db)
    assert result.ok and result.head_seq == 3


def test_a_connection_dropped_by_the_server_is_replaced(ctx: AppContext, backend: str) -> None:
    if backend != "postgresql":
        return
    _, email, _ = _booking_world(ctx)
    token = auth.new_token()
    with ctx.db.write() as s:
        user_id = s.execute(sa.text("SELECT id FROM user_account WHERE email = :e"), {"e": email}).scalar()
        s.execute(
            sa.text(
                "INSERT INTO api_token (token_hash, user_id, name, expires_at, created_at)"
                " VALUES (:h, :u, 'test', :x, now())"
            ),
            {"h": auth.token_digest(token), "u": user_id, "x": datetime(2027, 1, 1, tzinfo=UTC)},
        )
    assert auth.principal_from_api_token(ctx, token) is not None

    def drop_all_connections() -> None:
        _drop_all_connections(ctx)

    # Dropped while in the pool and in steady use (no idle ping): the first statement of the next
    # request, the principal's, finds it dead and is tried again on a fresh connection.
    drop_all_connections()
    principal = auth.principal_from_api_token(ctx, token)
    assert principal is not None and principal.user_id == user_id

    # Dropped while idle: a connection idle longer than the threshold is checked at checkout.
    pinged = Database(create_db_engine(ctx.settings.database_url, ping_after_idle=0.0))
    try:
        with pinged.read() as s:
            assert s.execute(sa.text("SELECT 1")).scalar() == 1
        drop_all_connections()
        with pinged.write() as s:
            assert s.execute(sa.text("SELECT 2")).scalar() == 2
    finally:
        pinged.dispose()


def _drop_all_connections(ctx: AppContext) -> None:
    """What a database restart does to the pool: every connection to the test's database is cut."""
    admin = create_db_engine(ctx.settings.database_url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        conn.commit()
    admin.dispose()
