"""The audit chain holds, and breaks visibly when the database is edited behind our back."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

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
