"""The audit chain holds, and breaks visibly when the database is edited behind our back."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from openvisit.db import fast
from openvisit.db.models import AuditEntry
from openvisit.domain.principal import SYSTEM
from openvisit.services import audit
from openvisit.services.context import AppContext


def _append(ctx: AppContext, n: int) -> None:
    for i in range(n):
        with ctx.db.write() as session:
            audit.record(
                session, SYSTEM, "test.event", "thing", i, at=ctx.clock(), after={"i": i, "name": "Иван"}
            )


def _tamper(ctx: AppContext, sql: str) -> None:
    with ctx.db.engine.begin() as conn:
        if ctx.db.is_postgresql:
            conn.execute(sa.text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_append_only"))
        conn.execute(sa.text(sql))
        if ctx.db.is_postgresql:
            conn.execute(sa.text("ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_append_only"))


def test_chain_verifies(ctx: AppContext) -> None:
    _append(ctx, 5)
    result = audit.verify(ctx.db)
    assert result.ok
    assert result.checked == 5
    assert result.head_seq == 5


def test_edited_entry_is_named(ctx: AppContext) -> None:
    _append(ctx, 5)
    _tamper(ctx, "UPDATE audit_entry SET action = 'forged' WHERE seq = 3")
    result = audit.verify(ctx.db)
    assert not result.ok
    assert result.fault is not None
    assert result.fault.seq == 3
    assert result.checked == 2


def test_deleted_entry_is_found(ctx: AppContext) -> None:
    _append(ctx, 5)
    _tamper(ctx, "DELETE FROM audit_entry WHERE seq = 2")
    result = audit.verify(ctx.db)
    assert result.fault is not None
    assert result.fault.seq == 2


def test_deleted_tail_is_found(ctx: AppContext) -> None:
    _append(ctx, 5)
    _tamper(ctx, "DELETE FROM audit_entry WHERE seq = 5")
    result = audit.verify(ctx.db)
    assert result.fault is not None
    assert result.fault.seq == 5


def test_reordered_entries_are_found(ctx: AppContext) -> None:
    _append(ctx, 4)
    _tamper(ctx, "UPDATE audit_entry SET seq = seq + 100 WHERE seq IN (2, 3)")
    _tamper(ctx, "UPDATE audit_entry SET seq = 3 WHERE seq = 102")
    _tamper(ctx, "UPDATE audit_entry SET seq = 2 WHERE seq = 103")
    result = audit.verify(ctx.db)
    assert result.fault is not None
    assert result.fault.seq == 2


def test_postgresql_refuses_edits(ctx: AppContext) -> None:
    _append(ctx, 1)
    if not ctx.db.is_postgresql:
        return
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), ctx.db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_entry SET action = 'x'"))
    with ctx.db.read() as session:
        assert session.execute(sa.select(AuditEntry.action)).scalar_one() == "test.event"


def test_concurrent_appends_keep_one_linear_chain(ctx: AppContext) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def append(i: int) -> None:
        with ctx.db.write() as session:
            audit.record(session, SYSTEM, "test.concurrent", "thing", i, at=ctx.clock())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(append, range(40)))
    result = audit.verify(ctx.db)
    assert result.ok, result.fault
    assert result.checked == 40


_WRITTEN = sa.select(sa.bindparam("write", type_=sa.Integer).label("id")).where(
    sa.bindparam("write", type_=sa.Integer) > 0
)


def _append_in_statement(ctx: AppContext, write: int, **said: Any) -> list[int]:
    """One statement that 'writes' a row when `write` > 0 and chains its entry there (append_when),
    as the booking's statement does; the ids it returns."""
    written = _WRITTEN.cte("written")
    statement = sa.select(written.c.id).add_cte(*audit.append_when(written))
    entry = audit.new_link(SYSTEM, "test.in_statement", "thing", write, at=ctx.clock(), **said)
    with ctx.db.write() as session:
        found = fast.rows(session.connection(), statement, {"write": write, **audit.append_params(entry)})
    return [r.id for r in found]


def test_postgresql_chains_an_entry_in_the_statement_as_python_would(ctx: AppContext) -> None:
    if not ctx.db.is_postgresql:
        return
    _append(ctx, 2)
    tricky = {
        "note": 'Иван — "брат" \\ 100% \u2028 tab\t',
        "nested": {"z": [1, 2.5, None, True], "a": "ё"},
    }
    assert _append_in_statement(ctx, 7, before=tricky, after={"emoji": "👪"}, ip="203.0.113.9") == [7]
    # Nothing written, nothing chained, and the head not moved.
    assert _append_in_statement(ctx, 0, after=tricky) == []
    _append(ctx, 1)
    assert _append_in_statement(ctx, 8, facility_id=3) == [8]
    result = audit.verify(ctx.db)
    assert result.ok, result.fault
    assert result.checked == 5 and result.head_seq == 5
    with ctx.db.read() as session:
        rows = session.execute(sa.select(AuditEntry).order_by(AuditEntry.seq)).scalars().all()
    assert [(r.action, r.object_id) for r in rows] == [
        ("test.event", "0"),
        ("test.event", "1"),
        ("test.in_statement", "7"),
        ("test.event", "0"),
        ("test.in_statement", "8"),
    ]
    assert rows[2].before == tricky


def test_entries_chained_in_statements_and_at_commit_make_one_chain_under_load(ctx: AppContext) -> None:
    if not ctx.db.is_postgresql:
        return
    from concurrent.futures import ThreadPoolExecutor

    def append(i: int) -> None:
        if i % 2:
            assert _append_in_statement(ctx, i, after={"i": i}) == [i]
        else:
            with ctx.db.write() as session:
                audit.record(session, SYSTEM, "test.concurrent", "thing", i, at=ctx.clock())

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(append, range(1, 81)))
    result = audit.verify(ctx.db)
    assert result.ok, result.fault
    assert result.checked == 80
