"""openvisit.db.fast runs the booking's statements on psycopg directly: its rows must be SQLAlchemy's,
value for value and type for type, and its failures SQLAlchemy's too, on both databases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from openvisit.db import fast
from openvisit.db.models import Visit, Visitor
from openvisit.domain.enums import ConnectionStatus, VisitStatus
from openvisit.services import scheduling
from openvisit.services.context import AppContext
from tests.factories import connect, make_facility, make_resident, make_schedule, make_visit, make_visitor


def _same(connection: sa.Connection, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """fast.rows and SQLAlchemy's own rows, checked equal with their types; the rows."""
    if connection.dialect.name == "postgresql":
        assert fast._plan_for(statement, connection.dialect) is not None, "run through SQLAlchemy instead"
    ours = [tuple(r) for r in fast.rows(connection, statement, params)]
    theirs = [tuple(r) for r in connection.execute(statement, params).all()]
    assert ours == theirs
    assert [[type(v) for v in r] for r in ours] == [[type(v) for v in r] for r in theirs]
    return ours


def test_the_booking_statements_read_as_sqlalchemy_reads_them(ctx: AppContext) -> None:
    place = make_facility(ctx)
    make_schedule(ctx, place)
    resident_id, _ = make_resident(ctx, place)
    _, visitor_id = make_visitor(ctx)
    _, other_id = make_visitor(ctx)
    connect(ctx, resident_id, visitor_id, ConnectionStatus.APPROVED)
    now = ctx.clock()
    visit_id = make_visit(ctx, place, resident_id, visitor_id, starts_at=now + timedelta(days=1))
    with ctx.db.write() as session:
        connection = session.connection()
        person = _same(
            connection,
            scheduling._PERSON_LOCKED,
            {"resident_id": resident_id, "visitor_id": visitor_id, "now": now},
        )
        assert person[0][0] == resident_id
        assert person[0][6] is ConnectionStatus.APPROVED
        shape = _same(connection, scheduling._SHAPE, {"facility_id": place.facility_id})
        assert {r[0] for r in shape} == {"template", "station"}
        party = _same(
            connection,
            scheduling._PARTY,
            {
                "visitor_ids": [visitor_id, other_id],
                "resident_id": resident_id,
                "facility_id": place.facility_id,
                "at": now,
            },
        )
        assert sorted(r[0] for r in party) == sorted([visitor_id, other_id])
        occupied = _same(
            connection,
            scheduling._occupied_query(True, False, True, True),
            {
                "resident_id": resident_id,
                "facility_id": place.facility_id,
                "unit_id": place.unit_id,
                "start": now,
                "end": now + timedelta(days=2),
                "now": now,
                "station_ids": [place.station_id],
                "visitor_ids": [visitor_id],
                "allowance_start": now - timedelta(days=7),
                "allowance_end": now + timedelta(days=7),
            },
        )
        assert {r[1] for r in occupied} == {visit_id}
        assert all(r[4].tzinfo is not None for r in occupied)


def test_lists_of_any_length_and_statements_without_rows(ctx: AppContext) -> None:
    _, first = make_visitor(ctx)
    _, second = make_visitor(ctx)
    ids: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
    within = sa.select(Visitor.id).where(Visitor.id.in_(ids)).order_by(Visitor.id)
    outside = sa.select(Visitor.id).where(Visitor.id.not_in(ids)).order_by(Visitor.id)
    statuses = sa.select(sa.func.count()).where(Visit.status.in_(sa.bindparam("s", expanding=True)))
    with ctx.db.write() as session:
        connection = session.connection()
        for chosen in ([], [first], [first, second]):
            assert _same(connection, within, {"ids": chosen}) == [(i,) for i in chosen]
            _same(connection, outside, {"ids": chosen})
        assert _same(connection, statuses, {"s": [VisitStatus.HELD, VisitStatus.APPROVED]}) == [(0,)]
        touched = fast.rows(
            connection, sa.update(Visitor).where(Visitor.id == first).values(first_name="A"), {}
        )
        assert touched == []
        # One parameter used twice is sent once; a percent sign in the text stays one.
        twice = sa.bindparam("n", type_=sa.Integer)
        assert _same(connection, sa.select(twice + twice, sa.literal_column("'100%'")), {"n": 4}) == [
            (8, "100%")
        ]
        # A named parameter with a value is the caller's to change; literals of the statement are not.
        optional = sa.bindparam("optional", value=5, type_=sa.Integer)
        given = sa.select(optional, sa.literal(2).in_([1, 2]), sa.literal(VisitStatus.APPROVED))
        assert _same(connection, given, {}) == [(5, True, VisitStatus.APPROVED)]
        assert _same(connection, given, {"optional": 6}) == [(6, True, VisitStatus.APPROVED)]
        if connection.dialect.name == "postgresql":
            plan = fast._plan_for(sa.select(twice + twice), connection.dialect)
            assert plan is not None and "$1" in plan.sql and "$2" not in plan.sql and "%(" not in plan.sql


def test_a_failure_is_sqlalchemys_and_writes_nothing(ctx: AppContext) -> None:
    _, first = make_visitor(ctx)
    _, second = make_visitor(ctx)
    with ctx.db.read() as session:
        user_id = session.get(Visitor, first).user_id  # type: ignore[union-attr]
    clash = sa.update(Visitor).where(Visitor.id == sa.bindparam("who")).values(user_id=sa.bindparam("user"))
    rename = sa.update(Visitor).where(Visitor.id == first).values(first_name="B")

    def both() -> None:
        with ctx.db.write() as session:
            fast.rows(session.connection(), rename, {})
            fast.rows(session.connection(), clash, {"who": second, "user": user_id})

    with pytest.raises(sa.exc.IntegrityError):
        both()
    with ctx.db.read() as session:
        assert session.get(Visitor, first).first_name != "B"  # type: ignore[union-attr]


def test_a_dropped_connection_retires_the_pool_as_sqlalchemy_does(ctx: AppContext, backend: str) -> None:
    """The server went away (a restart): the first statement to find out fails as a disconnect, and the
    pool hands out none of the other connections it held then, which are dead too."""
    if backend != "postgresql":
        return
    engine = ctx.db.engine
    one = sa.select(sa.literal(1))
    with engine.connect() as first, engine.connect() as second:
        pids = [c.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() for c in (first, second)]
    assert isinstance(engine.pool, sa.pool.QueuePool) and engine.pool.checkedin() == 2
    admin = sa.create_engine(engine.url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(
            sa.text("SELECT pg_terminate_backend(p) FROM unnest(CAST(:p AS int[])) AS p"), {"p": pids}
        )
        conn.commit()
    admin.dispose()
    with pytest.raises(sa.exc.DBAPIError) as failed, engine.connect() as connection:
        fast.rows(connection, one, {})
    assert failed.value.connection_invalidated
    # Without the pool's invalidation the next checkout would hand out the other dead connection.
    with engine.connect() as connection:
        assert [tuple(r) for r in fast.rows(connection, one, {})] == [(1,)]
