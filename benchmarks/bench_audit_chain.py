"""How fast the audit chain grows and is verified: services.audit.record and services.audit.verify.

Each append is its own write transaction, as in a use case: it locks the head row, hashes the entry and
commits. Verification walks the whole chain in seq order, in batches.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

from benchmarks import BenchConfig, Figure
from benchmarks.databases import postgresql_database, sqlite_database
from openvisit.db.database import Database
from openvisit.domain.enums import ActorKind
from openvisit.domain.principal import Principal
from openvisit.services import audit

TITLE = "Audit chain: append and verify"
ENTRIES = 20_000
ACTOR = Principal(kind=ActorKind.USER, user_id=1, label="clerk@example.org")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _append(db: Database, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        with db.write() as session:
            audit.record(
                session,
                ACTOR,
                "visit.approve",
                "visit",
                i,
                at=T0 + timedelta(seconds=i),
                facility_id=1 + i % 5,
                before={"status": "requested"},
                after={"status": "approved", "note": "Одобрено"},
                ip="203.0.113.7",
            )
    return time.perf_counter() - started


def _verify(db: Database, n: int) -> float:
    started = time.perf_counter()
    result = audit.verify(db)
    elapsed = time.perf_counter() - started
    if not result.ok or result.checked != n:
        raise RuntimeError(f"the chain did not verify: {result}")
    return elapsed


def run(config: BenchConfig) -> list[Figure]:
    """Append ENTRIES entries one transaction at a time, then verify them, on SQLite and PostgreSQL."""
    n = max(10, int(ENTRIES * config.scale))
    backends: list[AbstractContextManager[tuple[Database, str]]] = [
        sqlite_database(),
        postgresql_database(config.pg_admin_url),
    ]
    figures = []
    for backend in backends:
        with backend as (db, engine):
            config.say(f"  {engine}: appending {n:,} entries")
            appended = _append(db, n)
            config.say(f"  {engine}: verifying")
            verified = _verify(db, n)
        figures.append(
            Figure(
                key={"database": engine},
                values={
                    "entries": f"{n:,}",
                    "appended/s": f"{n / appended:,.0f}",
                    "verified/s": f"{n / verified:,.0f}",
                },
            )
        )
        config.say(f"  {engine}: {n / appended:,.0f} appended/s, {n / verified:,.0f} verified/s")
    return figures
